"""seqrec: deep recommendation models for user behaviour sequences."""

__version__ = "0.1.0"
