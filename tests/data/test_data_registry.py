"""Dataset registry: data_dir resolution, status, missing files, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data import registry
from seqrec.data.registry import (
    DATASETS,
    DatasetInfo,
    data_dir,
    dataset_status,
    get_dataset_info,
    load_dataset,
)
from seqrec.errors import ConfigError, DataNotFoundError

NAMES = {
    "diginetica", "yoochoose1_64", "retailrocket", "yoochoose_100k",
    "diginetica_raw_sample", "taobao", "retailrocket_users",
}  # fmt: skip


def test_registered_names_and_fields():
    assert set(DATASETS) == NAMES
    for name, info in DATASETS.items():
        assert isinstance(info, DatasetInfo) and info.name == name
        assert info.subdir.startswith("session/") and info.files
        assert "research-only" in info.licence
        assert "commit" in info.source and callable(info.reader)
        assert info.description and info.split


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ConfigError) as err:
        get_dataset_info("movielens")
    assert "movielens" in str(err.value) and "yoochoose_100k" in str(err.value)
    with pytest.raises(ConfigError, match="unknown dataset 'movielens'"):
        load_dataset("movielens")


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    assert data_dir() == tmp_path / "env"  # returned even though it does not exist
    monkeypatch.delenv("SEQREC_DATA")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert data_dir() == (tmp_path / "shared" / "data").resolve()
    monkeypatch.chdir(tmp_path)  # no ../shared/data here: found from the package location
    pkg_parents = Path(registry.__file__).resolve().parents
    found = [p / "shared" / "data" for p in pkg_parents if (p / "shared" / "data").is_dir()]
    assert data_dir() == (found[0] if found else tmp_path.parent / "shared" / "data")


def test_missing_dataset_file_message(tmp_path):
    folder = tmp_path / "session" / "yoochoose_100k"
    folder.mkdir(parents=True)
    (folder / "yoochoose-clicks-100k_test.txt").write_text("SessionId\tItemId\tTime\n")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("yoochoose_100k", tmp_path)
    msg = str(err.value)
    assert str(folder / "yoochoose-clicks-100k_train_full.txt") in msg
    assert "yoochoose-clicks-100k_test.txt" not in msg.split("Source")[0]
    assert "rn5l/session-rec" in msg and "SEQREC_DATA" in msg
    assert f"{folder}/" in msg


def test_dataset_status(tmp_path):
    rows = dataset_status(tmp_path)
    assert [r["name"] for r in rows] == list(DATASETS)
    for r in rows:
        assert not r["found"] and r["missing"] == list(DATASETS[r["name"]].files)
        assert set(r) == {
            "name", "path", "found", "missing", "description", "split", "source", "licence",
            "has_users", "has_time",
        }  # fmt: skip
        assert r["licence"] == DATASETS[r["name"]].licence and r["source"]
        assert r["path"] == str(tmp_path / DATASETS[r["name"]].subdir)


def test_dataset_status_real(data_root):
    rows = dataset_status(data_root)
    assert all(r["found"] and not r["missing"] for r in rows), rows
