"""Dataset registry: data_dir resolution, status, missing files, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data import registry
from seqrec.data.registry import (
    DATASETS,
    DatasetEntry,
    SessionRecipe,
    data_dir,
    dataset_status,
    get_dataset,
    load_dataset,
)
from seqrec.errors import ConfigError, DataNotFoundError

SESSION = {
    "diginetica", "yoochoose1_64", "retailrocket", "yoochoose_100k",
    "diginetica_raw_sample", "taobao", "retailrocket_users",
}  # fmt: skip
CTR = {"amazon_beauty", "amazon_sports", "taobao"}
PURCHASE = {"instacart", "taobao", "cdnow", "tafeng"}


def test_one_registry_for_every_family():
    families = ("session", "ctr", "purchase", "retrieval", "multitask")
    by_family = {f: {n for n, e in DATASETS.items() if f in e.recipes} for f in families}
    retrieval = {"gowalla", "movielens1m_m1", "amazon_beauty", "amazon_sports", "ml-100k", "taobao"}
    multitask = {"census_income", "taobao"}
    assert by_family == {"session": SESSION, "ctr": CTR, "purchase": PURCHASE, "retrieval": retrieval,
                         "multitask": multitask}
    assert set(DATASETS) == SESSION | CTR | PURCHASE | retrieval | multitask
    assert DATASETS["taobao"].families == families  # one file, five recipes
    for name, info in DATASETS.items():
        assert isinstance(info, DatasetEntry) and info.name == name
        assert info.files and info.licence and info.source and info.description
    for name in SESSION:
        rec = DATASETS[name].recipes["session"]
        assert isinstance(rec, SessionRecipe) and callable(rec.read) and rec.how
        assert DATASETS[name].subdir.startswith("session/") and "commit" in DATASETS[name].source


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ConfigError) as err:
        get_dataset("movielens")
    assert "movielens" in str(err.value) and "yoochoose_100k" in str(err.value)
    with pytest.raises(ConfigError, match="unknown dataset 'movielens'"):
        load_dataset("movielens")
    with pytest.raises(ConfigError, match="has no session recipe.*ctr"):
        load_dataset("amazon_beauty")


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
            "name", "families", "path", "found", "missing", "description", "recipes", "source", "licence",
        }  # fmt: skip
        assert r["families"] == list(DATASETS[r["name"]].recipes)
        assert r["licence"] == DATASETS[r["name"]].licence and r["source"]
        assert r["path"] == str(tmp_path / DATASETS[r["name"]].subdir)


def test_dataset_status_real(data_root):
    rows = dataset_status(data_root)
    assert all(r["found"] and not r["missing"] for r in rows), rows
