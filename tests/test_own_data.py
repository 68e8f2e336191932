"""Your own data from the CLI, as a new user would bring it (issue #21): a config with ``[data]
path`` / ``columns`` / ``split`` trains, evaluates and recommends with no Python written.

Every file here is real data re-dressed: yoochoose_100k's TSVs as one CSV with other column
names, a slice of diginetica's SR-GNN pickles as a folder, the Taobao log as a CSV with a
header for the CTR and purchase families."""

from __future__ import annotations

import json
import pickle

import polars as pl
import pytest

from seqrec.cli import main

pytestmark = pytest.mark.slow

GRU = """
[model]
name = "gru4rec"
layers = [32]

[loss]
n_sample = 128

[train]
epochs = 1
batch_size = 64
"""


def _cli(capsys, argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _write(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def clicks_csv(data_root, tmp_path_factory):
    """yoochoose_100k (train_full + test) as ``clicks.csv`` with columns sid, product, ts."""
    folder = data_root / "session" / "yoochoose_100k"
    parts = [pl.read_csv(p, separator="\t") for p in sorted(folder.glob("*_train_full.txt"))
             + sorted(folder.glob("*_test.txt"))]
    df = pl.concat(parts).rename({"SessionId": "sid", "ItemId": "product", "Time": "ts"})
    out = tmp_path_factory.mktemp("own") / "clicks.csv"
    df.select("ts", "product", "sid").write_csv(out)  # columns in another order, too
    return out


def _clicks_config(folder, extra: str = "") -> object:
    return _write(folder / "own.toml", f"""
[data]
path = "clicks.csv"
format = "csv"
columns = {{session_id = "sid", item_id = "product", timestamp = "ts"}}
split = {{kind = "time", test_days = 1}}
{extra}
{GRU}""")


def test_clicks_csv_check_train_evaluate_recommend(clicks_csv, capsys, tmp_path):
    cfg = _clicks_config(clicks_csv.parent)
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg])
    assert rc == 0, err
    assert "clicks (session family): data OK" in out
    full = pl.read_csv(clicks_csv)
    assert f"file         events {full.height:,}, items " in out  # the file as read, before the split
    assert f"sessions {full['sid'].n_unique():,}, time_range [{full['ts'].min()}" in out
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg, "--json"])
    report = json.loads(out)
    assert report["train_full"]["events"] + report["test"]["events"] <= full.height
    assert report["test"]["sessions"] > 1000 and report["train"]["items"] > 1000

    run = tmp_path / "run"
    rc, out, err = _cli(capsys, ["train", cfg, "--out", run, "--no-progress"])
    assert rc == 0, err
    assert out.startswith("gru4rec on clicks: test recall@20=")
    saved = json.loads((run / "config.json").read_text())
    assert saved["family"] == "session" and saved["data"]["path"] == str(clicks_csv)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["recall@20"] > 0.3  # 1 epoch, 32 units: far above POP (~0.01)

    rc, out, err = _cli(capsys, ["evaluate", run, "--json"])
    assert rc == 0, err
    assert json.loads(out)["recall@20"] == pytest.approx(metrics["test"]["recall@20"])

    first = full.filter(pl.col("sid") == full["sid"][0])["product"].to_list()
    rc, out, err = _cli(capsys, ["recommend", run, "--items", ",".join(map(str, first[:2])) + ",999", "-k", "5"])
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 5 and "999" in err


def test_clicks_csv_bad_column_and_split_are_one_line(clicks_csv, capsys, tmp_path):
    cfg = _write(tmp_path / "bad.toml", f"""
[data]
path = "{clicks_csv}"
columns = {{session_id = "SessionId", item_id = "product", timestamp = "ts"}}
{GRU}""")
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg])
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "'SessionId'" in err and "clicks.csv" in err
    cfg = _write(tmp_path / "bad2.toml", f"""
[data]
path = "{clicks_csv}"
split = {{kind = "weekly"}}
{GRU}""")
    rc, out, err = _cli(capsys, ["train", cfg, "--out", tmp_path / "r"])
    assert rc == 2 and "split.kind" in err and len(err.strip().splitlines()) == 1
    cfg = _write(tmp_path / "bad3.toml", f"""
[data]
dataset = "yoochoose_100k"
path = "{clicks_csv}"
{GRU}""")
    rc, out, err = _cli(capsys, ["train", cfg, "--out", tmp_path / "r"])
    assert rc == 2 and "registered dataset" in err
    assert not (tmp_path / "r").exists()  # nothing half-written


@pytest.fixture(scope="module")
def srgnn_folder(data_root, tmp_path_factory):
    """The first 3,000 diginetica train sessions and the test prefixes on their items."""
    src = data_root / "session" / "diginetica"
    train = pickle.loads((src / "all_train_seq.txt").read_bytes())[:3000]
    seqs, labels = pickle.loads((src / "test.txt").read_bytes())
    items = {i for s in train for i in s}
    keep = [k for k in range(len(labels)) if labels[k] in items and set(seqs[k]) <= items][:1500]
    out = tmp_path_factory.mktemp("srgnn") / "my_sessions"
    out.mkdir()
    (out / "all_train_seq.txt").write_bytes(pickle.dumps(train))
    (out / "test.txt").write_bytes(pickle.dumps(([seqs[k] for k in keep], [labels[k] for k in keep])))
    return out


def test_srgnn_folder_check_train_evaluate_recommend(srgnn_folder, capsys, tmp_path):
    cfg = _write(tmp_path / "srgnn.toml", f"""
[data]
path = "{srgnn_folder}"
{GRU}""")
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg])
    assert rc == 0, err
    assert "my_sessions (session family): data OK" in out and "Given" not in out
    run = tmp_path / "run"
    rc, out, err = _cli(capsys, ["train", cfg, "--out", run, "--no-progress"])
    assert rc == 0, err
    m = json.loads((run / "metrics.json").read_text())
    assert m["dataset"] == "my_sessions" and m["test"]["n_events"] > 1000
    rc, out, err = _cli(capsys, ["evaluate", run, "--json"])
    assert rc == 0 and json.loads(out)["n_events"] == m["test"]["n_events"]
    train = pickle.loads((srgnn_folder / "all_train_seq.txt").read_bytes())
    rc, out, err = _cli(capsys, ["recommend", run, "--items", ",".join(map(str, train[0][:3])), "-k", "3"])
    assert rc == 0 and len(out.strip().splitlines()) == 3, err


@pytest.fixture(scope="module")
def taobao_csv(data_root, tmp_path_factory):
    """The Taobao sample as a user log with a header and readable times."""
    from seqrec.data.readers.raw_logs import read_taobao_raw

    df = read_taobao_raw(data_root / "session" / "taobao_userbehavior_sample" / "UserBehavior_head.csv")
    df = df.filter(pl.col("timestamp").is_between(1511539200, 1512316800, closed="left"))
    df = df.select(visitor=pl.col("user_id"), sku=pl.col("item_id"), cat=pl.col("category_id"),
                   action=pl.col("event_type"), when=pl.from_epoch(pl.col("timestamp").cast(pl.Int64)))
    out = tmp_path_factory.mktemp("taobao") / "behaviour.csv"
    df.write_csv(out)
    return out


COLUMNS = 'columns = {user_id = "visitor", item_id = "sku", category_id = "cat", event_type = "action", timestamp = "when"}'


def test_ctr_from_a_user_log(taobao_csv, capsys, tmp_path):
    cfg = _write(tmp_path / "ctr.toml", f"""
[data]
path = "{taobao_csv}"
{COLUMNS}
max_len = 20

[model]
name = "din"
embedding_dim = 8

[train]
epochs = 1
batch_size = 256
optimizer = "adam"
lr = 0.001
""")
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg, "--json"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["family"] == "ctr" and report["test"]["samples"] > 1000
    assert report["test"]["positives"] * 2 == report["test"]["samples"]  # one negative per click
    run = tmp_path / "run"
    rc, out, err = _cli(capsys, ["train", cfg, "--out", run, "--no-progress"])
    assert rc == 0, err
    m = json.loads((run / "metrics.json").read_text())
    assert m["family"] == "ctr" and m["test"]["auc"] > 0.6
    rc, out, err = _cli(capsys, ["evaluate", run, "--json"])
    assert rc == 0 and json.loads(out)["auc"] == pytest.approx(m["test"]["auc"])
    rc, out, err = _cli(capsys, ["recommend", run, "--items", "1"])
    assert rc == 2 and "not available for ctr" in err


def test_purchase_from_an_orders_log(taobao_csv, capsys, tmp_path):
    cfg = _write(tmp_path / "purchase.toml", f"""
[data]
path = "{taobao_csv}"
{COLUMNS}

[data.purchase]
category = "any"
window = 2

[model]
name = "bought_before"
""")
    rc, out, err = _cli(capsys, ["datasets", "--check", cfg, "--json"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["family"] == "purchase" and report["unit"] == "day" and report["users"] > 500
    run = tmp_path / "run"
    rc, out, err = _cli(capsys, ["train", cfg, "--out", run, "--no-progress"])
    assert rc == 0, err
    assert out.startswith("bought_before on behaviour / any: test precision=")
    rc, out, err = _cli(capsys, ["evaluate", run, "--json"])
    assert rc == 0 and 0.5 < json.loads(out)["auc"] <= 1.0
