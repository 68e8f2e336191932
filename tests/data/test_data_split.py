"""time_split / tail_sessions_split on hand-made tables."""

from __future__ import annotations

import polars as pl
import pytest

from seqrec.data.split import DAY, tail_sessions_split, time_split
from seqrec.errors import ConfigError


def _table(rows):
    return pl.DataFrame(rows, schema=["session_id", "item_id", "timestamp"], orient="row")


def test_time_split_restricts_items_and_lengths():
    t_end = 10 * DAY
    df = _table(
        [
            (1, 1, 0.0), (1, 2, 10.0), (1, 3, 20.0),  # train
            (2, 2, DAY), (2, 3, DAY + 5),  # train
            (5, 7, 2 * DAY),  # train, one event: dropped, so item 7 is unknown
            (6, 1, 3 * DAY), (6, 2, 8 * DAY),  # train (ends 2 days before the end)
            (3, 1, 9 * DAY), (3, 9, 9 * DAY + 1), (3, 2, 9 * DAY + 2),  # test, 9 unseen
            (4, 9, t_end - 5), (4, 3, t_end - 4),  # test, one event left: dropped
            (7, 7, 9.5 * DAY), (7, 2, t_end),  # test; 7 only in a dropped train session
        ]
    )  # fmt: skip
    train, test = time_split(df, test_days=1)
    assert train["session_id"].to_list() == [1, 1, 1, 2, 2, 6, 6]
    assert test.rows() == [(3, 1, 9 * DAY), (3, 2, 9 * DAY + 2)]
    # the boundary: a last event exactly test_days before the end is in test
    train, test = time_split(df, test_days=2)
    assert 6 in test["session_id"].to_list()
    # no length filter
    train, test = time_split(df, test_days=1, min_session_length=1)
    assert 5 in train["session_id"].to_list()
    assert sorted(test["session_id"].unique().to_list()) == [3, 4, 7]


def test_tail_sessions_split_uses_row_order():
    sessions = [(10, [1, 2]), (3, [2, 3]), (8, [3, 1]), (1, [1, 2, 3]), (7, [4, 5]), (2, [1, 9])]
    rows = [(sid, i, float(k)) for k, (sid, items) in enumerate(sessions) for i in items]
    train, held = tail_sessions_split(_table(rows), 1 / 3)
    assert train["session_id"].unique(maintain_order=True).to_list() == [10, 3, 8, 1]
    # session 7 has only unknown items; session 2 keeps one event -> dropped
    assert held.height == 0
    train, held = tail_sessions_split(_table(rows), 0.5, min_session_length=1)
    assert train["session_id"].unique(maintain_order=True).to_list() == [10, 3, 8]
    assert held["session_id"].to_list() == [1, 1, 1, 2]


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_bad_fraction(fraction):
    df = _table([(1, 1, 0.0), (1, 2, 1.0)])
    with pytest.raises(ConfigError, match="fraction"):
        tail_sessions_split(df, fraction)


@pytest.mark.parametrize("test_days", [0, -1, -0.5])
def test_bad_test_days(test_days):
    df = _table([(1, 1, 0.0), (1, 2, 1.0)])
    with pytest.raises(ConfigError, match="test_days"):
        time_split(df, test_days=test_days)
