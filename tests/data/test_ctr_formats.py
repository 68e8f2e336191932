"""CTR readers on the staged PaddleRec / DeepCTR samples (counts from the folder READMEs,
hand-decoded first samples) and every error path on small files written to tmp_path."""

from __future__ import annotations

import csv
import datetime as dt
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from _ctr_dsin import load_data_pickle, read_dsin_pickles
from _ctr_formats import (
    read_deepctr_avazu,
    read_deepctr_criteo,
    read_deepctr_movielens,
    read_dmr_alimama,
    read_paddle_bst,
    read_paddle_din,
)

from seqrec.data.registry import data_dir
from seqrec.data.samples import LabeledSamples, sample_batches, validate
from seqrec.errors import DataNotFoundError, DataValidationError, SchemaError
from seqrec.layers.sessions import session_layout, to_sessions

DIN = "amazon_electronics_din_sample/din_sample_data.txt"
BST = "amazon_electronics_din_sample/bst_paddle_train.txt"
DMR = "alimama_ad_click_sample/dmr_alimama_sampled_train.txt"
DSIN = "alimama_ad_click_sample/dsin_sample_pkl"
CRITEO = "deepctr_examples/criteo_sample.txt"
AVAZU = "deepctr_examples/avazu_sample.txt"
MOVIELENS = "deepctr_examples/movielens_sample.txt"


def staged(rel: str) -> Path:
    path = data_dir() / "ctr" / rel
    if not path.exists():
        pytest.skip(f"staged CTR sample {path} not found (set SEQREC_DATA to the shared data dir)")
    return path


def lengths(data: LabeledSamples, name: str) -> np.ndarray:
    return (data.columns[name] > 0).sum(1)


def check(data: LabeledSamples) -> None:
    """Validation passes, tables are sized distinct + 2, one batch of every column."""
    validate(data)
    LabeledSamples(data.schema, data.columns, data.name)
    for t in data.schema.tables:
        assert t.rows == len(data.vocabs[t.name]) + 2 and t.dim == 16
        assert sorted(data.vocabs[t.name].values()) == list(range(2, t.rows))
    part = data.subset(np.arange(3))
    assert len(part) == 3 and part.vocabs is data.vocabs
    batch = next(sample_batches(data, 7))
    assert set(batch) == set(data.columns) and len(batch[data.schema.label]) == 7


# -- staged samples -------------------------------------------------------------------------
def test_paddle_din_sample():
    path = staged(DIN)
    d = read_paddle_din(path, max_len=200)
    check(d)
    assert len(d) == 100 and Counter(d.labels().tolist()) == {1.0: 48, 0.0: 52}
    n = lengths(d, "hist_item")
    assert (n.min(), n.max()) == (1, 152) and (n == lengths(d, "hist_cate")).all()
    assert d.schema.user == "" and d.users() is None
    # first line: 3737 19450;288 196;18486;674;1
    assert n[0] == 2 and d.raw_ids("item", d.columns["hist_item"][0, :2]) == [3737, 19450]
    assert d.raw_ids("cate", d.columns["hist_cate"][0, :2]) == [288, 196]
    assert d.raw_ids("item", [d.columns["item"][0]]) == [18486]
    assert d.raw_ids("cate", [d.columns["cate"][0]]) == [674] and d.labels()[0] == 1
    rows = [line.split(";") for line in path.read_text().splitlines()]
    items = {int(x) for r in rows for x in (*r[0].split(), r[2])}
    assert d.schema.table("item").rows == len(items) + 2  # history and target share the table
    # default max_len 50: the most recent 50 kept (the file lists oldest first)
    short = read_paddle_din(path)
    i = int(np.argmax(n))
    assert short.schema.max_len() == 50 and lengths(short, "hist_item").max() == 50
    kept = short.raw_ids("item", short.columns["hist_item"][i])
    assert kept == [int(x) for x in rows[i][0].split()][-50:]


def test_paddle_bst_sample():
    d = read_paddle_bst(staged(BST), max_len=200)
    check(d)
    assert len(d) == 99 and Counter(d.labels().tolist()) == {0.0: 50, 1.0: 49}
    assert d.schema.user == "userid" and len(set(d.users().tolist())) == 99
    n = lengths(d, "hist_item")
    assert (n.min(), n.max()) == (1, 101)
    assert (n == lengths(d, "hist_cate")).all() and (n == lengths(d, "hist_position")).all()
    # userid:103944 history:17704 history:37473 cate:6 cate:770 position:31 position:31
    # target:53346 target_cate:347 target_position:0 label:0
    c = d.columns
    assert d.raw_ids("userid", [c["userid"][0]]) == [103944] and n[0] == 2
    assert d.raw_ids("item", c["hist_item"][0, :2]) == [17704, 37473]
    assert d.raw_ids("cate", c["hist_cate"][0, :2]) == [6, 770]
    assert d.raw_ids("position", c["hist_position"][0, :2]) == [31, 31]
    assert d.raw_ids("item", [c["item"][0]]) == [53346]
    assert d.raw_ids("cate", [c["cate"][0]]) == [347]
    assert d.raw_ids("position", [c["position"][0]]) == [0] and d.labels()[0] == 0
    assert lengths(read_paddle_bst(staged(BST)), "hist_item").max() == 50


def test_dmr_alimama_sample():
    d = read_dmr_alimama(staged(DMR))
    check(d)
    c = d.columns
    assert len(d) == 500 and Counter(d.labels().tolist()) == {0.0: 290, 1.0: 210}
    assert len(set(c["userid"].tolist())) == 230 and len(set(c["adgroup_id"].tolist())) == 297
    # history mask: 1 = real, 0 = padding in front; 4 rows are shorter than 50
    n = lengths(d, "hist_cate")
    assert Counter(n.tolist()) == {50: 496, 28: 1, 2: 1, 48: 1, 1: 1}
    assert (n == lengths(d, "hist_brand")).all() and (n == lengths(d, "hist_btag")).all()
    assert set(d.vocabs["btag"]) == {1, 2, 3, 4}  # 0 only ever appears as padding
    # row 1: 1x50 | 8998x50 | ... | 1000043,27,4,2,4,1,2,0,4 | 328301,6410,233148,206117,
    # 121422,0.98971260954681 | 1 | 0
    assert d.raw_ids("btag", c["hist_btag"][0]) == [1] * 50
    assert d.raw_ids("cate", c["hist_cate"][0]) == [8998] * 50
    profile = ("userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
               "pvalue_level", "shopping_level", "occupation", "new_user_class_level")  # fmt: skip
    ad = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "pid")
    raw = [d.raw_ids(d.schema.feature(f).table, [c[f][0]])[0] for f in profile + ad]
    assert raw == [1000043, 27, 4, 2, 4, 1, 2, 0, 4, 328301, 6410, 233148, 206117, 121422, 1]
    assert c["price"][0, 0] == pytest.approx(0.98971260954681) and d.labels()[0] == 0
    # line 60 has 22 padding positions first, then 28 behaviours (left-aligned here)
    i = int(np.flatnonzero(n == 28)[0])
    assert i == 59 and d.raw_ids("cate", c["hist_cate"][i, :3]) == [4633, 4633, 6617]
    assert d.raw_ids("brand", c["hist_brand"][i, :2]) == [134790, 136609]
    assert c["hist_cate"][i, 28:].tolist() == [0] * 22
    assert c["match_mask"].sum() == 498 and c["match_mask"][np.flatnonzero(n <= 2)].sum() == 0


def test_dsin_pickles_sample():
    d = read_dsin_pickles(staged(DSIN))
    check(d)
    c = d.columns
    assert len(d) == 512 and Counter(d.labels().tolist()) == {0.0: 489, 1.0: 23}
    distinct = {f: len(set(c[f].tolist())) for f in ("userid", "adgroup_id", "cate_id", "brand")}
    assert distinct == {"userid": 486, "adgroup_id": 237, "cate_id": 205, "brand": 173}
    assert "new_user_class_level" in c and d.schema.user == "userid"
    sl = c["session_length"]
    assert sl.dtype == np.int64 and (sl.min(), sl.max()) == (0, 5) and (sl == 5).sum() == 461
    # one flattened group: sessions oldest first, hist_session 1..n (0 = padding)
    assert [f.name for f in d.schema.sequence_group("hist")] == ["hist_cate", "hist_brand"]
    assert d.schema.max_len() == 50 and "hist_session" in d.schema.time_columns
    n, sess = lengths(d, "hist_cate"), c["hist_session"]
    assert (n == lengths(d, "hist_brand")).all() and ((sess > 0).sum(1) == n).all()
    assert (sess.max(1) == sl).all() and (np.diff(sess, axis=1)[sess[:, 1:] > 0] >= 0).all()
    # first sample: 208431 35 0 0 9 0 3 0 2 0 0 169119 24114 2979 44441 0.011701
    raw = [d.raw_ids(d.schema.feature(f).table, [c[f][0]])[0]
           for f in ("userid", "adgroup_id", "cms_group_id", "campaign_id", "cate_id", "brand")]  # fmt: skip
    assert raw == [208431, 35, 9, 169119, 2979, 44441]
    assert c["price"][0, 0] == pytest.approx(0.011701, abs=1e-6) and sl[0] == 5
    # its sessions in the pickle, newest first, have 10, 4, 10, 10, 10 behaviours
    assert sess[0].tolist() == [1] * 10 + [2] * 10 + [3] * 10 + [4] * 4 + [5] * 10 + [0] * 6
    cates = d.raw_ids("cate", c["hist_cate"][0])
    assert cates[:10] == [8155] * 6 + [6638, 424, 7998, 7399]  # the oldest session
    assert cates[30:44] == [5672] * 4 + [5672, 5672, 5677, 5672, 5669, 5677, 5672, 5672, 5672, 6525]
    assert d.raw_ids("brand", c["hist_brand"][0, 30:34]) == [82183, 71670, 71670, 71670]
    # DSIN's session layout of the flattened history gives back the pickle's 5 x 10 cells
    src = load_data_pickle(staged(DSIN) / "sample_sess_input.pkl")[:, 0::2]  # newest first
    lookup = np.vectorize(lambda v: d.vocabs["cate"].get(int(v), 0), otypes=[np.int64])
    want = np.zeros_like(src)
    for i, k in enumerate(sl):
        want[i, :k] = lookup(src[i, :k][::-1])
    slot, cell = session_layout(torch.from_numpy(sess), torch.from_numpy(sess > 0), 5, 10)
    got = to_sessions(torch.from_numpy(c["hist_cate"]).double()[..., None], slot, 5, 10)
    assert (got[..., 0].long().numpy() == want).all() and (cell.numpy() == (want > 0)).all()


def test_deepctr_criteo_sample():
    d = read_deepctr_criteo(staged(CRITEO))
    check(d)
    c = d.columns
    assert len(d) == 200 and Counter(d.labels().tolist()) == {0.0: 151, 1.0: 49}
    assert d.schema.dense_dim() == 13 and len(d.schema.of_kind("sparse")) == 26
    # 0,,3,260.0,,17668.0,,,33.0,,,,0.0,,05db9164,...; second row has I2 = -1
    assert c["I1"][0, 0] == 0 and c["I2"][0, 0] == pytest.approx(np.log1p(3))
    assert c["I3"][0, 0] == pytest.approx(np.log1p(260)) and c["I2"][1, 0] == -1
    assert d.raw_ids("C1", [c["C1"][0]]) == ["05db9164"]
    assert d.raw_ids("C19", [c["C19"][0]]) == [""] and d.vocabs["C19"][""] == 2  # missing id
    assert (c["C19"] == 2).sum() == 82  # the README's 82 empty C19 cells


def test_deepctr_avazu_sample():
    d = read_deepctr_avazu(staged(AVAZU))
    check(d)
    assert len(d) == 100 and Counter(d.labels().tolist()) == {0.0: 80, 1.0: 20}
    assert len(d.schema.of_kind("sparse")) == 22 and not d.schema.of_kind("dense")
    assert d.vocabs["hour"] == {"00": 2} and "id" not in d.columns
    c = d.columns
    assert d.raw_ids("site_id", [c["site_id"][0]]) == ["1fbe01fe"]
    assert d.raw_ids("C20", c["C20"][:2]) == ["-1", "100084"]


def test_deepctr_movielens_sample():
    path = staged(MOVIELENS)
    d = read_deepctr_movielens(path)
    check(d)
    c = d.columns
    with open(path, newline="") as fh:
        ratings = [int(r["rating"]) for r in csv.DictReader(fh)]
    assert len(d) == 200 and d.labels().sum() == sum(r >= 4 for r in ratings) == 113
    assert len(set(d.users().tolist())) == 193 and len(set(c["movie_id"].tolist())) == 187
    assert d.schema.feature("genres").kind == "multihot" and d.schema.feature("genres").max_len == 5
    # 3299,235,4,968035345,Ed Wood (1994),Comedy|Drama,F,25,4,19119
    raw = [d.raw_ids(f, [c[f][0]])[0] for f in ("user_id", "movie_id", "gender", "age", "occupation", "zip")]  # fmt: skip
    assert raw == [3299, 235, "F", 25, 4, "19119"] and d.labels()[0] == 1
    assert d.raw_ids("genre", c["genres"][0]) == ["Comedy", "Drama", None, None, None]
    assert c["rating"][:2].tolist() == [4, 3] and c["time"][0] == 968035345
    first, last = (dt.datetime.fromtimestamp(t, dt.timezone.utc).date() for t in (c["time"].min(), c["time"].max()))  # fmt: skip
    assert (first, last) == (dt.date(2000, 4, 26), dt.date(2002, 11, 24))
    # the quoted title with a comma (third row) does not shift the columns
    assert d.raw_ids("zip", [c["zip"][2]]) == ["55408"]


# -- error paths -------------------------------------------------------------------------
def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


READERS = [read_paddle_din, read_paddle_bst, read_dmr_alimama, read_deepctr_criteo,
           read_deepctr_avazu, read_deepctr_movielens]  # fmt: skip


@pytest.mark.parametrize("reader", READERS)
def test_missing_and_empty_files(tmp_path, reader):
    with pytest.raises(DataNotFoundError, match="nope.txt"):
        reader(tmp_path / "nope.txt")
    with pytest.raises(DataValidationError, match="empty"):
        reader(write(tmp_path, "empty.txt", ""))


DIN_OK = "1 2;5 6;3;7;1\n"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1 2;5 6;3;1", r"line 3: expected 5 ';'-separated fields .* got 4"),
        ("1 x;5 6;3;7;1", r"line 3, field 'hist_items': not an integer id: 'x'"),
        ("1 2;5;3;7;1", r"line 3, field 'hist_cates': 1 categories for 2 items"),
        ("1 2;5 6;3;7;2", r"line 3, field 'label': label must be 0 or 1, got '2'"),
        ("1 2;5 6;3.5;7;1", r"line 3, field 'target_item'"),
    ],
)
def test_din_malformed_lines(tmp_path, line, match):
    path = write(tmp_path, "din.txt", DIN_OK + "\n" + line + "\n")  # blank line 2 is skipped
    with pytest.raises(DataValidationError, match=match) as err:
        read_paddle_din(path)
    assert str(path) in str(err.value)


def test_din_empty_history_and_blank_lines(tmp_path):
    d = read_paddle_din(write(tmp_path, "d.txt", "\n;;3;7;0\n" + DIN_OK + "\n"), max_len=1)
    assert len(d) == 2 and d.columns["hist_item"].tolist() == [[0], [d.vocabs["item"][2]]]


BST_OK = "userid:1 history:5 history:6 cate:2 cate:3 position:9 position:0 target:7 target_cate:2 target_position:0 label:1"  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (" label:1", "", r"line 2, field 'label': missing token\(s\) \['label'\]"),
        ("label:1", "label:3", r"line 2, field 'label': label must be 0 or 1"),
        ("cate:3 ", "", r"line 2, field 'cate': 1 cate tokens for 2 history tokens"),
        ("history:6", "history:six", r"line 2, field 'history': not an integer id"),
        ("userid:1", "user:1", r"line 2, field 'user': token 'user:1' is not key:value"),
        ("target:7", "target:7 target:8", r"line 2, field 'target': token 'target:8' given twice"),
    ],
)
def test_bst_malformed_lines(tmp_path, old, new, match):
    path = write(tmp_path, "bst.txt", BST_OK + "\n" + BST_OK.replace(old, new) + "\n")
    with pytest.raises(DataValidationError, match=match):
        read_paddle_bst(path)


def dmr_line(**changes: str) -> str:
    f = ["1"] * 50 + ["8"] * 50 + ["9"] * 50 + ["0"] * 10 + ["1"] * 40 + ["1"] * 50
    f += ["100", "1", "2", "1", "3", "0", "1", "0", "2"]  # user profile
    f += ["11", "8", "12", "13", "9", "0.5", "1", "0"]  # ad, price, pid, label
    for j, v in changes.items():
        f[int(j[1:])] = v
    return ",".join(f)


def test_dmr_small_file_and_errors(tmp_path):
    d = read_dmr_alimama(write(tmp_path, "ok.txt", dmr_line() + "\n" + dmr_line(c266="1") + "\n"))
    assert lengths(d, "hist_cate").tolist() == [40, 40] and d.labels().tolist() == [0, 1]
    assert d.vocabs["cate"] == {8: 2} and d.columns["match_mask"].tolist() == [1, 1]
    cases = [
        (dmr_line() + ",1", r"line 2: expected 267 comma-separated fields, got 268"),
        (dmr_line(c60="x"), r"line 2, field 'column 60 \(cate history 10\)': not an integer"),
        (dmr_line(c170="2"), r"field 'column 170 \(history mask 20\)': mask must be 0 or 1"),
        (dmr_line(c259="a1"), r"line 2, field 'adgroup_id': not an integer id"),
        (dmr_line(c264="nan"), r"line 2, field 'price': not a finite number"),
        (dmr_line(c266="0.5"), r"line 2, field 'label': label must be 0 or 1"),
    ]
    for line, match in cases:
        with pytest.raises(DataValidationError, match=match):
            read_dmr_alimama(write(tmp_path, "bad.txt", dmr_line() + "\n" + line + "\n"))


CRITEO_HEAD = ",".join(["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))])  # fmt: skip
CRITEO_ROW = "1," + ",".join(["2"] * 13) + "," + ",".join(["ab"] * 26)


def test_criteo_small_file_and_errors(tmp_path):
    d = read_deepctr_criteo(write(tmp_path, "c.csv", f"{CRITEO_HEAD}\n{CRITEO_ROW}\n"))
    assert d.columns["I5"].tolist() == [[pytest.approx(np.log1p(2))]] and len(d) == 1
    with pytest.raises(DataValidationError, match="empty"):
        read_deepctr_criteo(write(tmp_path, "h.csv", CRITEO_HEAD + "\n"))
    cases = [
        (CRITEO_ROW + ",x", r"line 3: expected 40 comma-separated fields, got 41"),
        ("2" + CRITEO_ROW[1:], r"line 3, field 'label': label must be 0 or 1, got '2'"),
        (CRITEO_ROW.replace(",2,", ",two,", 1), r"line 3, field 'I1': not a finite number"),
    ]
    for row, match in cases:
        with pytest.raises(DataValidationError, match=match):
            read_deepctr_criteo(write(tmp_path, "b.csv", f"{CRITEO_HEAD}\n{CRITEO_ROW}\n{row}\n"))
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['C26'\]"):
        read_deepctr_criteo(write(tmp_path, "s.csv", CRITEO_HEAD[:-4] + "\n"))


def test_avazu_and_movielens_errors(tmp_path):
    head = "id,click,hour," + ",".join(
        ["C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
         "app_category", "device_id", "device_ip", "device_model", "device_type",
         "device_conn_type"] + [f"C{i}" for i in range(14, 22)])  # fmt: skip
    row = "7,0,14102105," + ",".join(["x"] * 21)
    ok = read_deepctr_avazu(write(tmp_path, "a.csv", f"{head}\n{row}\n"))
    assert ok.vocabs["hour"] == {"05": 2}
    with pytest.raises(DataValidationError, match=r"line 2, field 'hour': hour must be YYMMDDHH"):
        read_deepctr_avazu(write(tmp_path, "a.csv", f"{head}\n{row.replace('14102105', '1410')}\n"))
    with pytest.raises(DataValidationError, match=r"line 3, field 'click': label must be 0 or 1"):
        bad = row.replace(",0,", ",yes,", 1)
        read_deepctr_avazu(write(tmp_path, "a.csv", f"{head}\n{row}\n{bad}\n"))
    head = "user_id,movie_id,rating,timestamp,title,genres,gender,age,occupation,zip"
    row = '1,2,5,978300760,"Toy Story, The (1995)",Animation|Comedy,F,1,10,48067'
    d = read_deepctr_movielens(write(tmp_path, "m.csv", f"{head}\n{row}\n"))
    assert d.labels().tolist() == [1] and d.raw_ids("zip", d.columns["zip"]) == ["48067"]
    with pytest.raises(DataValidationError, match=r"line 2, field 'user_id': not an integer id"):
        read_deepctr_movielens(write(tmp_path, "m.csv", f"{head}\nu{row}\n"))
    with pytest.raises(DataValidationError, match=r"line 2, field 'rating': empty"):
        read_deepctr_movielens(write(tmp_path, "m.csv", f"{head}\n{row.replace(',5,', ',,')}\n"))


def test_dsin_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="DSIN pickle folder not found"):
        read_dsin_pickles(tmp_path / "none")
    with pytest.raises(DataNotFoundError, match="sample_feat_input.pkl"):
        read_dsin_pickles(tmp_path)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(dt.date(2020, 1, 1)))
    with pytest.raises(DataValidationError, match=r"refusing to load datetime\.date"):
        load_data_pickle(evil)
    ok = tmp_path / "arr.pkl"
    for protocol in (2, 4, 5):  # plain numpy arrays load
        ok.write_bytes(pickle.dumps(np.array([1, 2], np.int64), protocol=protocol))
        assert load_data_pickle(ok).tolist() == [1, 2]
    with pytest.raises(DataValidationError, match="not a readable data pickle"):
        load_data_pickle(write(tmp_path, "junk.pkl", "not a pickle"))


def test_dsin_bad_label_and_lengths(tmp_path):
    src = staged(DSIN)
    for name in ("sample_feat_input.pkl", "sample_sess_input.pkl", "sample_session_length.pkl"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    y = np.zeros(512, np.float32)
    y[3] = 2
    (tmp_path / "sample_label.pkl").write_bytes(pickle.dumps(y, protocol=4))
    with pytest.raises(DataValidationError, match=r"label.pkl: label must be 0 or 1; sample 3"):
        read_dsin_pickles(tmp_path)
    (tmp_path / "sample_label.pkl").write_bytes(pickle.dumps(y[:10], protocol=4))
    with pytest.raises(DataValidationError, match=r"sample_label.pkl: 10 samples"):
        read_dsin_pickles(tmp_path)
    (tmp_path / "sample_label.pkl").write_bytes(pickle.dumps(y * 0, protocol=4))
    sl = load_data_pickle(src / "sample_session_length.pkl")
    sl[0] = 4  # sample 0 has 5 non-empty sessions
    (tmp_path / "sample_session_length.pkl").write_bytes(pickle.dumps(sl, protocol=4))
    with pytest.raises(DataValidationError, match=r"sess_input.pkl: sample 0: its session_length in sample_session_length.pkl"):
        read_dsin_pickles(tmp_path)
