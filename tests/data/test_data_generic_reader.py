"""read_events on small files: formats, column mapping, time parsing, and every error path."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from seqrec.data.events import validate_events
from seqrec.data.readers.generic import read_events
from seqrec.errors import ConfigError, DataNotFoundError, DataValidationError, SchemaError

COLS = {"session_id": "sid", "item_id": "item", "timestamp": "t"}


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_gru4rec_tsv_sessions_ordered_by_first_time(tmp_path):
    path = _write(
        tmp_path, "x.txt", "SessionId\tItemId\tTime\n5\t1\t100.5\n5\t2\t101\n3\t2\t50\n3\t9\t60\n"
    )
    df = read_events(path)  # columns recognised from the GRU4Rec names
    assert df.columns == ["session_id", "item_id", "timestamp"]
    assert df["session_id"].to_list() == [3, 3, 5, 5]
    assert df.schema["item_id"] == pl.Int64 and df.schema["timestamp"] == pl.Float64
    assert df["timestamp"].to_list() == [50.0, 60.0, 100.5, 101.0]


def test_separator_detected_from_first_line_and_extra_columns_ignored(tmp_path):
    path = _write(
        tmp_path, "tab.csv", "t\tuser\titem\tsid\tprice\n1\t7\t3\t0\t9.5\n2\t7\t4\t0\t1\n"
    )
    df = read_events(path, columns={**COLS, "user_id": "user"})
    assert df.columns == ["session_id", "item_id", "timestamp", "user_id"]
    assert df.rows() == [(0, 3, 1.0, 7), (0, 4, 2.0, 7)]


def test_string_ids_iso_times_and_time_format(tmp_path):
    path = _write(
        tmp_path,
        "iso.csv",
        "sid;item;t\na;x1;2020-01-01T00:00:00Z\na;x2;2020-01-01T00:00:30+00:00\n",
    )
    df = read_events(path, columns=COLS)
    epoch = datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()
    assert df["timestamp"].to_list() == [epoch, epoch + 30]
    assert df.schema["item_id"] == pl.Utf8
    path = _write(tmp_path, "fmt.csv", "sid,item,t\n1,1,01/02/2020 10:00\n1,2,01/02/2020 10:01\n")
    df = read_events(path, columns=COLS, time_format="%d/%m/%Y %H:%M")
    start = datetime(2020, 2, 1, 10, tzinfo=timezone.utc).timestamp()
    assert df["timestamp"].to_list() == [start, start + 60]


def test_no_header_parquet_and_no_time_column(tmp_path):
    path = _write(tmp_path, "nh.csv", "1,10,5\n1,11,6\n")
    df = read_events(
        path,
        has_header=False,
        columns={"session_id": "column_1", "item_id": "column_2", "timestamp": "column_3"},
    )
    assert df.rows() == [(1, 10, 5.0), (1, 11, 6.0)]
    pq = tmp_path / "ev.parquet"
    pl.DataFrame({"SessionId": [2, 2, 1], "ItemId": [1, 2, 3]}).write_parquet(pq)
    df = read_events(pq)
    # without a time column the row position is the time
    assert df.rows() == [(2, 1, 0.0), (2, 2, 1.0), (1, 3, 2.0)]


def test_session_gap_sessionizes_users(tmp_path):
    path = _write(tmp_path, "u.csv", "user,item,t\n1,5,4000\n1,4,0\n2,6,10\n1,7,1800\n")
    df = read_events(path, columns={"user_id": "user", "item_id": "item", "timestamp": "t"},
                     session_gap=1800)  # fmt: skip
    # user 1: 0 and 1800 (gap exactly 1800) together, 4000 alone; user 2 apart
    assert df.columns == ["session_id", "item_id", "timestamp", "user_id"]
    assert df.rows() == [(0, 4, 0.0, 1), (0, 7, 1800.0, 1), (2, 6, 10.0, 2), (1, 5, 4000.0, 1)]
    with pytest.raises(ConfigError, match="session_gap"):
        read_events(path, columns={**COLS, "session_id": "user"}, session_gap=1800)


def test_sort_fixes_unsorted_sessions(tmp_path):
    path = _write(tmp_path, "u.csv", "sid,item,t\n7,1,10\n7,2,5\n8,3,1\n7,4,20\n")
    with pytest.raises(DataValidationError, match=r"u.csv: column 't' row 2: time 5.0 is before .* 10.0 in session 7"):
        read_events(path, columns=COLS)
    with pytest.raises(DataValidationError, match=r"g.csv: column 'sid' row 4: session 7 started on an earlier row"):
        read_events(_write(tmp_path, "g.csv", "sid,item,t\n7,1,1\n7,2,5\n8,3,6\n7,4,20\n"), columns=COLS)
    df = read_events(path, columns=COLS, sort=True)
    assert df.rows() == [(8, 3, 1.0), (7, 2, 5.0), (7, 1, 10.0), (7, 4, 20.0)]


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="nope.csv"):
        read_events(tmp_path / "nope.csv")


def test_empty_file_and_header_only(tmp_path):
    empty = _write(tmp_path, "empty.csv", "")
    with pytest.raises(DataValidationError, match="empty.csv"):
        read_events(empty)
    header = _write(tmp_path, "header.csv", "sid,item,t\n")
    with pytest.raises(DataValidationError, match="header.csv.*no data rows"):
        read_events(header, columns=COLS)


def test_missing_mapped_column_names_file_column_and_available(tmp_path):
    path = _write(tmp_path, "m.csv", "sid,item,t\n1,2,3\n")
    with pytest.raises(SchemaError) as err:
        read_events(path, columns={**COLS, "item_id": "ItemId"})
    msg = str(err.value)
    assert "m.csv" in msg and "'ItemId'" in msg and "['sid', 'item', 't']" in msg
    with pytest.raises(ConfigError, match="price"):
        read_events(path, columns={**COLS, "price": "t"})
    with pytest.raises(SchemaError, match="no session column"):
        read_events(path, columns={"item_id": "item", "timestamp": "t"})


def test_float_item_id(tmp_path):
    path = _write(tmp_path, "f.csv", "sid,item,t\n1,2,3\n1,1.5,4\n")
    with pytest.raises(SchemaError, match=r"f.csv: column 'item' row 2: '1.5' is not an integer id"):
        read_events(path, columns=COLS)


def test_unparseable_values_name_file_column_row(tmp_path):
    path = _write(tmp_path, "s.csv", "sid,item,t\n1,2,3\n1,3,4\n1,4,soon\n")
    with pytest.raises(SchemaError, match=r"s.csv: column 't' row 3: cannot parse 'soon' as a time"):
        read_events(path, columns=COLS)
    path = _write(tmp_path, "d.csv", "sid,item,t\n1,2,2020-01-01\n1,3,yesterday\n")
    with pytest.raises(SchemaError, match=r"d.csv: column 't' row 2: cannot parse 'yesterday' as a time"):
        read_events(path, columns=COLS)
    path = _write(tmp_path, "i.csv", "sid,item,t\n1,12,3\n1,abc,4\n")
    with pytest.raises(SchemaError, match=r"i.csv: column 'item' row 2: holds numeric ids but 'abc' is not a number"):
        read_events(path, columns=COLS)


def test_empty_and_nan_ids(tmp_path):
    path = _write(tmp_path, "e.csv", "sid,item,t\n1,2,3\n1,,4\n")
    with pytest.raises(DataValidationError, match=r"e.csv: column 'item' row 2: is empty"):
        read_events(path, columns=COLS)
    path = _write(tmp_path, "n.csv", "sid,item,t\n1,2,3\nnan,3,4\n")
    with pytest.raises(SchemaError, match=r"n.csv: column 'sid' row 2: 'nan' is not an integer id"):
        read_events(path, columns=COLS)


# ------------------------------------------- regressions from issue #21 (item 5)


def test_regression_unparseable_time_names_file_column_row(tmp_path):
    """Was a raw polars ComputeError ("could not find an appropriate format to parse dates")
    naming neither the file nor the row."""
    rows = "".join(f"1,{i},2014-04-01T10:{i:02d}:00\n" for i in range(16))
    path = _write(tmp_path, "clicks.csv", "SessionId,ItemId,Time\n" + rows + "1,99,2014-13-45\n")
    with pytest.raises(SchemaError, match=r"clicks.csv: column 'Time' row 17: cannot parse '2014-13-45' as a time"):
        read_events(path)
    first = _write(tmp_path, "first.csv", "SessionId,ItemId,Time\n1,2,2014-13-45\n1,3,2014-04-01\n")
    with pytest.raises(SchemaError, match=r"first.csv: column 'Time' row 1: cannot parse '2014-13-45' as a time"):
        read_events(first)  # the first value is where polars infers the layout from
    words = _write(tmp_path, "words.tsv", "SessionId\tItemId\tTime\n1\t2\thello\n1\t3\tworld\n")
    with pytest.raises(SchemaError, match=r"words.tsv: column 'Time' row 1: cannot parse 'hello' as a time"):
        read_events(words)
    pq = tmp_path / "t.parquet"
    pl.DataFrame({"SessionId": [1, 1], "ItemId": [2, 3], "Time": ["2014-04-01", "2014-13-45"]}).write_parquet(pq)
    with pytest.raises(SchemaError, match=r"t.parquet: column 'Time' row 2: cannot parse '2014-13-45' as a time"):
        read_events(pq)


def test_regression_item_id_beyond_int64_names_file_column_row(tmp_path):
    """Was a raw polars InvalidOperationError ("conversion from f64 to i64 failed")."""
    path = _write(tmp_path, "big.csv", "SessionId,ItemId,Time\n1,10,1\n1,99999999999999999999999,2\n")
    with pytest.raises(SchemaError, match=r"big.csv: column 'ItemId' row 2: '99999999999999999999999' is outside the 64-bit integer range"):
        read_events(path)
    edge = _write(tmp_path, "edge.csv", f"SessionId,ItemId,Time\n1,{2**63 - 1},1\n1,{-(2**63)},2\n")
    assert read_events(edge)["item_id"].to_list() == [2**63 - 1, -(2**63)]  # the range's ends read
    pq = tmp_path / "big.parquet"
    pl.DataFrame({"SessionId": [1, 1], "ItemId": pl.Series([3, 2**63], dtype=pl.UInt64), "Time": [1.0, 2.0]}).write_parquet(pq)
    with pytest.raises(SchemaError, match=r"big.parquet: column 'ItemId' row 2: '9223372036854775808' is outside the 64-bit integer range"):
        read_events(pq)


def test_non_utf8_bytes_and_ragged_rows_name_the_row(tmp_path):
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"SessionId,ItemId,Time\n1,2,3\n1,\xff\xfe,4\n")
    with pytest.raises(SchemaError, match=r"bytes.csv: column 'ItemId' row 2: holds bytes that are not valid UTF-8"):
        read_events(path)
    path = _write(tmp_path, "wide.csv", "SessionId,ItemId,Time\n1,2,3\n1,3,4\n1,4,5,6\n")
    with pytest.raises(SchemaError, match=r"wide.csv: row 3 has 4 fields, expected 3"):
        read_events(path)
    path = _write(tmp_path, "short.csv", "SessionId,ItemId,Time\n1,2,3\n1,3\n")
    with pytest.raises(DataValidationError, match=r"short.csv: column 'Time' row 2: is empty"):
        read_events(path)
    path = _write(tmp_path, "inf.csv", "SessionId,ItemId,Time\n1,2,3\n1,3,inf\n")
    with pytest.raises(SchemaError, match=r"inf.csv: column 'Time' row 2: cannot parse 'inf' as a time"):
        read_events(path)


# --------------------------------------------------- validate_events directly


def _events(**cols):
    base = {"session_id": [1, 1], "item_id": [1, 2], "timestamp": [0.0, 1.0]}
    return pl.DataFrame({**base, **cols})


def test_validate_events_errors():
    with pytest.raises(SchemaError, match="price"):
        validate_events(_events(price=[1.0, 2.0]), source="t.csv")
    with pytest.raises(SchemaError, match=r"t.csv.*'item_id'.*row 1 has 1.5"):
        validate_events(_events(item_id=[1.0, 1.5]), source="t.csv")
    with pytest.raises(SchemaError, match="timestamp"):
        validate_events(_events(timestamp=["a", "b"]), source="t.csv")
    with pytest.raises(SchemaError, match=r"'item_id'.*row 0 has nan"):
        validate_events(_events(item_id=[float("nan"), 1.0]), source="t.csv")
    with pytest.raises(DataValidationError, match=r"'session_id'.*row 1"):
        validate_events(_events(session_id=["a", ""]), source="t.csv")
    with pytest.raises(DataValidationError, match=r"session 1 at row 1"):
        validate_events(_events(timestamp=[5.0, 1.0]), source="t.csv")
    with pytest.raises(DataValidationError, match="empty"):
        validate_events(_events().head(0), source="t.csv")
