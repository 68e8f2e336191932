"""The split container every reader returns (train / validation / test event tables)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass
class SessionSplits:
    """Canonical event tables of one dataset, split for next-item evaluation.

    ``train`` + ``valid`` = ``train_full``; ``valid`` is carved from the training
    period the same way ``test`` was carved from the whole data, so tuning never
    sees ``test``. ``note`` states how the split was made (shown in the README and
    ``seqrec datasets``).
    """

    name: str
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    train_full: pl.DataFrame
    has_time: bool
    has_users: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    def get(self, split: str) -> pl.DataFrame:
        try:
            return {"train": self.train, "valid": self.valid, "test": self.test,
                    "train_full": self.train_full}[split]
        except KeyError:
            from seqrec.errors import ConfigError

            raise ConfigError(
                f"unknown split {split!r}; choose train, valid, test or train_full"
            ) from None

    def counts(self) -> dict:
        """Events / sessions / items per split (for README tables and logs)."""
        out = {}
        for name in ("train", "valid", "test", "train_full"):
            df = self.get(name)
            out[name] = {
                "events": df.height,
                "sessions": df["session_id"].n_unique() if df.height else 0,
                "items": df["item_id"].n_unique() if df.height else 0,
            }
        return out
