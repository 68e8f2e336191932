"""Bad input: both engines raise the local reader's one-line error (same class, same text, naming
the file, the column and the row), and ``seqrec prepare`` exits 2 with that line."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from seqrec.cli import main
from seqrec.config import load_run_config
from seqrec.errors import SeqrecError
from seqrec.prepare.driver import prepare

GOOD = [("1", "10", "1511544070", "pv"), ("1", "11", "1511544100", "pv"), ("2", "10", "1511544200", "cart")]
COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts", "event_type": "behaviour"}


def _csv(path: Path, rows, header=("user", "item", "ts", "behaviour")) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def _cfg(path: Path, columns=COLUMNS):
    return load_run_config(raw={"data": {"dataset": "mylog", "path": str(path), "columns": dict(columns)},
                                "model": {"name": "din"}})


def _error(cfg, out: Path, engine: str, spark=None) -> SeqrecError:
    with pytest.raises(SeqrecError) as exc:
        prepare(cfg, out, engine=engine, spark=spark)
    assert not out.exists()  # nothing half-written
    return exc.value


def _cases(tmp: Path) -> dict:
    return {
        "missing column": (_csv(tmp / "a.csv", GOOD, header=("user", "item", "ts", "type")), "'behaviour'"),
        "non-numeric time": (_csv(tmp / "b.csv", [GOOD[0], ("1", "11", "soon", "pv"), GOOD[2]]),
                             "column 'ts' row 2: cannot parse 'soon' as a time"),
        "null user": (_csv(tmp / "c.csv", [GOOD[0], GOOD[1], ("", "12", "1511544300", "pv")]),
                      "column 'user' row 3: is empty"),
        "non-integer item": (_csv(tmp / "d.csv", [GOOD[0], ("1", "1.5", "1511544100", "pv"), GOOD[2]]),
                             "column 'item' row 2: '1.5' is not an integer id"),
    }


def _parquet_cases(tmp: Path) -> dict:
    df = pl.DataFrame({"user": [1, 1, None], "item": [10, 11, 12], "ts": ["1511544070", "1511544100", "1511544200"],
                       "behaviour": ["pv", "pv", "pv"]})
    df.write_parquet(tmp / "e.parquet")
    df.with_columns(pl.col("user").fill_null(2), pl.Series("ts", ["1511544070", "x", "1511544200"])).write_parquet(
        tmp / "f.parquet")
    return {"parquet null user": (tmp / "e.parquet", "column 'user' row 3: is empty"),
            "parquet bad time": (tmp / "f.parquet", "column 'ts' row 2: cannot parse 'x' as a time")}


def test_polars_engine_errors_are_the_local_readers(tmp_path):
    for what, (path, needle) in {**_cases(tmp_path), **_parquet_cases(tmp_path)}.items():
        err = _error(_cfg(path), tmp_path / "out", "polars")
        msg = str(err)
        assert str(path) in msg and needle in msg and "\n" not in msg, (what, msg)


@pytest.mark.slow
def test_spark_engine_gives_the_same_errors(tmp_path, spark):
    for what, (path, _) in {**_cases(tmp_path), **_parquet_cases(tmp_path)}.items():
        a = _error(_cfg(path), tmp_path / "out", "polars")
        b = _error(_cfg(path), tmp_path / "out", "spark", spark)
        assert (type(a), str(a)) == (type(b), str(b)), what


@pytest.mark.slow
def test_taobao_file_errors_match(tmp_path, spark):
    folder = tmp_path / "session" / "taobao_userbehavior_sample"
    folder.mkdir(parents=True)
    rows = {"bad behaviour": "1,2,3,click,1511544070", "bad time": "1,2,3,pv,yesterday",
            "empty item": "1,,3,pv,1511544070", "time out of range": "1,2,3,pv,-5"}
    for what, bad in rows.items():
        (folder / "UserBehavior_head.csv").write_text(f"1,2,3,pv,1511544070\n{bad}\n")
        cfg = load_run_config(raw={"data": {"dataset": "taobao", "data_dir": str(tmp_path)}, "model": {"name": "din"}})
        a = _error(cfg, tmp_path / "out", "polars")
        b = _error(cfg, tmp_path / "out", "spark", spark)
        assert "row 2" in str(a), (what, str(a))
        assert (type(a), str(a)) == (type(b), str(b)), what


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    path = _cases(tmp_path)["null user"][0]
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndataset = "mylog"\npath = "{path}"\ncolumns = {{user_id = "user", item_id = "item", '
                   'timestamp = "ts", event_type = "behaviour"}\n[model]\nname = "din"\n')
    rc = main(["prepare", str(cfg), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "column 'user' row 3: is empty" in err and err.startswith("seqrec prepare: error:")


def test_out_that_is_not_prepared_is_refused(tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    path = _csv(tmp_path / "ok.csv", GOOD)
    with pytest.raises(SeqrecError, match="not a prepared directory"):
        prepare(_cfg(path), other)
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_cli_prepares_a_registered_dataset_and_replaces_its_own_output(tmp_path, capsys, data_root):
    """``seqrec prepare CONFIG --out DIR`` end to end (polars, gowalla): the summary line, the
    manifest and shard files it names, ``--json``, and a second run replacing the first."""
    import json

    out = tmp_path / "gowalla"
    args = ["prepare", "configs/youtube_dnn_gowalla.toml", "--out", str(out), "--shards", "3",
            "--set", f"data.data_dir={data_root}"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("prepared gowalla (retrieval, retrieval-bars) with polars in ") and str(out) in line
    manifest = json.loads((out / "prepared.json").read_text())
    assert manifest["engine"] == "polars" and manifest["shards"] == 3
    assert sorted(p.name for p in (out / "train").iterdir()) == [f"part-0000{k}.parquet" for k in range(3)]
    assert main(args + ["--json"]) == 0  # an existing prepared directory is replaced
    shown = json.loads(capsys.readouterr().out)
    assert shown["rows"] == manifest["rows"] and "data" not in shown
    assert not list(tmp_path.glob("gowalla.tmp-*"))  # no temporary directory left behind
