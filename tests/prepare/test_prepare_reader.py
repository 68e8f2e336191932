"""Streaming CTR samples from a prepared directory: lengths from the footers, batches of a rank's
shards padded as the in-memory recipe pads them, every row once over the ranks, and ``seqrec
train`` of DIN from ``data.prepared`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqrec.cli import main
from seqrec.config import load_run_config
from seqrec.errors import ConfigError
from seqrec.prepare.driver import prepare
from seqrec.prepare.layout import read_manifest
from seqrec.prepare.reader import PreparedSamples, load_prepared_ctr

DAY = 86400


def _log(path, users: int = 40, per_user: int = 30):
    rng = np.random.default_rng(0)
    lines = ["user,item,cate,ts,behaviour"]
    for u in range(users):
        t = np.sort(rng.uniform(1_511_539_200, 1_511_539_200 + 4 * DAY, per_user)).round()
        for k in range(per_user):
            item = int(rng.integers(0, 60))
            lines.append(f"{u},{item},{item % 7},{int(t[k])},{'pv' if rng.random() < 0.8 else 'cart'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _raw(path, out=""):
    return {"data": {"dataset": "mylog", "path": str(path), "max_len": 10, "prepared": str(out),
                     "columns": {"user_id": "user", "item_id": "item", "category_id": "cate", "timestamp": "ts",
                                 "event_type": "behaviour"}},
            "model": {"name": "din", "embedding_dim": 8}, "train": {"epochs": 1, "batch_size": 64, "optimizer": "adam",
                                                                    "lr": 0.01, "progress": False}}


@pytest.fixture(scope="module")
def prepared_log(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("log")
    csv = _log(tmp / "log.csv")
    out = tmp / "prep"
    prepare(load_run_config(raw=_raw(csv)), out, shards=4)
    return csv, out


def test_streamed_batches_match_the_split_in_memory(prepared_log):
    csv, out = prepared_log
    task = load_prepared_ctr(load_run_config(raw=_raw(csv, out)))
    train = task.train
    assert train.streamed and len(train) == read_manifest(out)["rows"]["train"]
    mem = train.to_memory()
    assert mem.columns["hist_item"].shape[1] == 10 and len(train.labels()) == len(mem)
    got = [b for b in train.batches(7)]
    assert sum(b.size for b in got) == len(mem)
    for k in ("hist_item", "hist_cate", "hist_time", "label", "user"):
        cat = np.concatenate([b[k].numpy() for b in got])
        assert np.array_equal(cat, mem.columns[k]), k
    seen = []
    for rank in range(3):  # three ranks read disjoint shards and together every row
        seen += [b["user"].numpy() for b in train.batches(16, shuffle=True, seed=1, rank=rank, world=3)]
    assert sorted(np.concatenate(seen).tolist()) == sorted(train.users().tolist())
    a = np.concatenate([b["item"].numpy() for b in train.batches(16, shuffle=True, seed=1)])
    b = np.concatenate([b["item"].numpy() for b in train.batches(16, shuffle=True, seed=2)])
    assert not np.array_equal(a, b) and sorted(a.tolist()) == sorted(b.tolist())


def test_wrong_dataset_or_missing_directory_is_a_config_error(prepared_log, tmp_path):
    csv, out = prepared_log
    raw = _raw(csv, out)
    raw["data"]["max_len"] = 20
    with pytest.raises(ConfigError, match="max_len"):
        load_prepared_ctr(load_run_config(raw=raw))
    with pytest.raises(ConfigError, match="not a prepared directory"):
        load_prepared_ctr(load_run_config(raw=_raw(csv, tmp_path / "nothing")))
    with pytest.raises(ConfigError, match="no split"):
        PreparedSamples(out, "train_full")


def test_seqrec_train_from_prepared_shards(prepared_log, tmp_path, capsys):
    csv, out = prepared_log
    cfg = tmp_path / "din.toml"
    cols = ", ".join(f'{k} = "{v}"' for k, v in _raw(csv)["data"]["columns"].items())
    cfg.write_text(f'[data]\ndataset = "mylog"\npath = "{csv}"\nmax_len = 10\nprepared = "{out}"\n'
                   f"columns = {{{cols}}}\n"
                   '[model]\nname = "din"\nembedding_dim = 8\n[train]\nepochs = 1\nbatch_size = 64\n'
                   'optimizer = "adam"\nlr = 0.01\n')
    rc = main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["n_train"] == read_manifest(out)["rows"]["train"] and 0.0 <= m["test"]["auc"] <= 1.0
