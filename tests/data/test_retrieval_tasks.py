"""Retrieval tasks: the BARS and leave-one-out protocols, on tiny files and on the real data."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.registry import get_dataset, require_files
from seqrec.data.tasks.retrieval import CSR, bars_task, loo_task, read_user_lines
from seqrec.errors import ConfigError, DataValidationError


def _bars(tmp_path, train: str, test: str):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    return tmp_path


def test_bars_test_excludes_train_items_and_valid_is_held_out(tmp_path):
    folder = _bars(tmp_path, "0 10 11 12 13 14 15 16 17 18 19\n1 10 12\n2 13\n", "0 20\n1 11\n2 10 14\n")
    task = bars_task("tiny", folder, train_split="train", valid_fraction=0.2, seed=3)
    assert task.n_users == 3 and task.n_items == 11
    full = {u: set(task.test.exclude.row(i).tolist()) for i, u in enumerate(task.test.users)}
    for i, u in enumerate(task.valid.users):
        held = set(task.valid.targets.row(i).tolist())
        kept = set(task.train.row(u).tolist())
        assert held and not held & kept and held | kept == full[u]  # a partition of the train items
        assert set(task.valid.exclude.row(i).tolist()) == kept
    assert 2 not in set(task.valid.users.tolist())  # one train item: nothing to hold out
    for i in range(len(task.test)):
        assert not set(task.test.targets.row(i).tolist()) & set(task.test.exclude.row(i).tolist())
    full_task = bars_task("tiny", folder, train_split="train_full")
    assert full_task.valid is None and int(full_task.train.indptr[-1]) == 13
    with pytest.raises(ConfigError, match="no validation split"):
        full_task.split("valid")


def test_bars_refuses_a_test_item_that_is_a_train_item(tmp_path):
    folder = _bars(tmp_path, "0 10 11\n", "0 11\n")
    with pytest.raises(DataValidationError, match=r"test.txt: user 0 has test items that are also train"):
        bars_task("tiny", folder)


@pytest.mark.parametrize("line, what", [("0 12 x3\n", "row 2: 'x3' is not an integer"),
                                        ("0\n", "row 2: expected 'user item ...'"),
                                        ("0 99999999999999999999\n", "row 2: '99999999999999999999'")])
def test_bad_lines_name_file_and_row(tmp_path, line, what):
    p = tmp_path / "train.txt"
    p.write_text("1 10\n" + line)
    with pytest.raises(DataValidationError, match=what):
        read_user_lines(p)


def test_empty_file_is_an_error(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        read_user_lines(p)


def test_leave_one_out_splits():
    rows = [np.array([5, 6, 7, 8]), np.array([9, 5, 6])]
    task = loo_task("t", np.array([1, 2]), rows, train_split="train")
    idx = {raw: i + 1 for i, raw in enumerate(task.item_ids.tolist())}
    assert task.train.row(0).tolist() == [idx[5], idx[6]]
    assert task.valid.targets.row(0).tolist() == [idx[7]] and task.test.targets.row(0).tolist() == [idx[8]]
    assert task.test.history.row(0).tolist() == [idx[5], idx[6], idx[7]] == task.test.exclude.row(0).tolist()
    assert task.valid.history.row(1).tolist() == [idx[9]]
    full = loo_task("t", np.array([1, 2]), rows, train_split="train_full")
    assert full.train.row(0).tolist() == [idx[5], idx[6], idx[7]]
    with pytest.raises(DataValidationError, match="user 3 has 2 item"):
        loo_task("t", np.array([3]), [np.array([1, 2])])


def test_padded_tail_left_pads_the_most_recent():
    csr = CSR.from_lists([np.array([1, 2, 3]), np.array([4])])
    assert csr.padded_tail(np.array([0, 1]), 2).tolist() == [[2, 3], [0, 4]]
    assert csr.take(np.array([1, 0])).row(1).tolist() == [1, 2, 3]


def _real(name, **kw):
    entry = get_dataset(name, "retrieval")
    try:
        folder = require_files(entry)
    except Exception as exc:  # pragma: no cover - CI has the data
        pytest.skip(str(exc))
    return entry.recipes["retrieval"].build(name, folder, **kw)


@pytest.mark.parametrize("name, users, items, train, test", [
    ("gowalla", 29_858, 40_981, 810_128, 217_242), ("movielens1m_m1", 6_022, 3_043, 796_244, 99_455)])
def test_bars_counts_match_the_data_readme(name, users, items, train, test):
    task = _real(name, train_split="train_full")
    assert (task.n_users, task.n_items, int(task.train.indptr[-1])) == (users, items, train)
    assert (len(task.test), int(task.test.targets.indptr[-1])) == (users, test)


def test_amazon_beauty_leave_one_out_counts():
    task = _real("amazon_beauty", train_split="train")
    assert (task.n_users, task.n_items) == (22_363, 12_101)
    assert int(task.train.indptr[-1]) + 2 * task.n_users == 198_502


def test_ml100k_has_features_and_times():
    task = _real("ml-100k", train_split="train")
    assert (task.n_users, task.n_items) == (943, 1682)
    assert set(task.user_features) == {"age", "gender", "occupation"}
    assert all(task.user_features[k].max() < task.feature_sizes[k] for k in task.user_features)
    assert task.train_times is not None and len(task.train_times) == len(task.train.values)
    for u in range(5):  # time order within each user
        t = task.train_times[task.train.indptr[u]:task.train.indptr[u + 1]]
        assert (np.diff(t) >= 0).all()
