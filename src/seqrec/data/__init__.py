"""Data layer: readers, canonical event table, vocabulary, splits, sessionization, batching."""
