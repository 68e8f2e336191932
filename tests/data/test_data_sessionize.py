"""sessionize: gap rule (strictly greater splits), new user splits, any input order."""

from __future__ import annotations

import polars as pl
import pytest

from seqrec.data.sessionize import sessionize
from seqrec.errors import ConfigError, DataValidationError, SchemaError


def test_gap_rule_users_and_order():
    df = pl.DataFrame(
        {
            "user_id": [2, 1, 1, 1, 2, 1, 3],
            "timestamp": [50.0, 1800.0, 0.0, 3601.0, 0.0, 5401.0, 10.0],
            "item_id": [20, 11, 10, 12, 19, 13, 30],
        }
    )
    out = sessionize(df, gap_seconds=1800)
    assert out.columns == ["session_id", "user_id", "timestamp", "item_id"]
    assert out["user_id"].to_list() == [1, 1, 1, 1, 2, 2, 3]
    assert out["timestamp"].to_list() == [0.0, 1800.0, 3601.0, 5401.0, 0.0, 50.0, 10.0]
    # 0 -> 1800 is exactly the gap: same session; 1800 -> 3601 is 1801 s: new session;
    # 3601 -> 5401 is 1800 s again: same; user 2 and user 3 start new sessions
    assert out["session_id"].to_list() == [0, 0, 1, 1, 2, 2, 3]
    assert out["item_id"].to_list() == [10, 11, 12, 13, 19, 20, 30]
    assert out.schema["session_id"] == pl.Int64


def test_ties_keep_input_order_and_existing_session_replaced():
    df = pl.DataFrame(
        {
            "session_id": [9, 9, 9],
            "user_id": ["a", "a", "a"],
            "timestamp": [5, 5, 1],
            "x": [1, 2, 3],
        }
    )
    out = sessionize(df, gap_seconds=0)
    assert out["x"].to_list() == [3, 1, 2]
    assert out["session_id"].to_list() == [0, 1, 1]  # 1 -> 5 is a gap > 0; 5 -> 5 is not


def test_errors():
    with pytest.raises(SchemaError, match="user_id"):
        sessionize(pl.DataFrame({"timestamp": [1.0]}))
    with pytest.raises(ConfigError, match="gap_seconds"):
        sessionize(pl.DataFrame({"user_id": [1], "timestamp": [1.0]}), gap_seconds=-1)
    with pytest.raises(DataValidationError, match="row 1"):
        sessionize(pl.DataFrame({"user_id": [1, 1], "timestamp": [1.0, float("nan")]}))
    with pytest.raises(SchemaError, match="timestamp"):
        sessionize(pl.DataFrame({"user_id": [1], "timestamp": ["2020-01-01"]}))
