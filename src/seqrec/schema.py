"""Feature schema for CTR models: which features exist and which embedding table each uses.

A :class:`Schema` declares embedding tables (name, rows, width) and features:

* ``sparse``   — one id per sample (user, target item, target category, ...);
* ``dense``    — a float vector per sample (``dim`` wide);
* ``multihot`` — a padded list of ids per sample, pooled (sum or mean) over its non-zero ids;
* ``sequence`` — the behaviour history: a padded (T,) list of ids per sample. Sequence
  features of one ``group`` are aligned position by position (``hist_item[t]`` and
  ``hist_cate[t]`` describe the same behaviour) and share one padding mask;
* ``seqdense`` — numbers per behaviour: a (T, dim) float array aligned with the sequence
  features of its ``group`` (quantity, days since the previous purchase, ...), zero at
  padded positions. It has no table.

Features name the table they look up, so the history items share the item table with the
target item (DIN's design: the same embedding for an item wherever it appears). Id 0 is
padding in every table and id 1 the out-of-vocabulary id; ids stay int64 end to end.
Models are built from the schema, never from hand-written dimensions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from seqrec.errors import SchemaError

KINDS = ("sparse", "dense", "multihot", "sequence", "seqdense")
NUMERIC = ("dense", "seqdense")  # kinds without an embedding table


@dataclass(frozen=True)
class Table:
    name: str
    rows: int  # including padding (0) and OOV (1)
    dim: int

    def __post_init__(self) -> None:
        if self.rows < 2 or self.dim < 1:
            raise SchemaError(f"table {self.name!r}: rows must be >= 2 and dim >= 1, got {self.rows}, {self.dim}")


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str
    table: str = ""  # sparse / multihot / sequence: the embedding table it looks up
    dim: int = 1  # dense / seqdense: width
    max_len: int = 0  # multihot / sequence: padded length
    pooling: str = "sum"  # multihot: sum | mean
    group: str = "hist"  # sequence: features of one group share positions and mask

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SchemaError(f"feature {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind not in NUMERIC and not self.table:
            raise SchemaError(f"feature {self.name!r} ({self.kind}) must name an embedding table")
        if self.kind in ("multihot", "sequence", "seqdense") and self.max_len < 1:
            raise SchemaError(f"feature {self.name!r} ({self.kind}) needs max_len >= 1")
        if self.pooling not in ("sum", "mean"):
            raise SchemaError(f"feature {self.name!r}: pooling must be sum or mean, got {self.pooling!r}")


@dataclass(frozen=True)
class Schema:
    tables: tuple[Table, ...]
    features: tuple[Feature, ...]
    label: str = "label"
    user: str = "user"  # the column GAUC groups by ("" = none)
    time_columns: tuple[str, ...] = field(default_factory=tuple)  # extra per-sample arrays kept

    def __post_init__(self) -> None:
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise SchemaError(f"duplicate table names in {names}")
        fnames = [f.name for f in self.features]
        if len(set(fnames)) != len(fnames):
            raise SchemaError(f"duplicate feature names in {fnames}")
        for f in self.features:
            if f.kind not in NUMERIC and f.table not in names:
                raise SchemaError(
                    f"feature {f.name!r} uses embedding table {f.table!r}, which does not exist; "
                    f"tables: {names}"
                )
        lens = {}
        for f in self.of_kind("sequence") + self.of_kind("seqdense"):
            if lens.setdefault(f.group, f.max_len) != f.max_len:
                raise SchemaError(f"sequence group {f.group!r}: all features need the same max_len")

    # -- lookups ---------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise SchemaError(f"no embedding table {name!r}; tables: {[t.name for t in self.tables]}")

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise SchemaError(f"no feature {name!r}; features: {[f.name for f in self.features]}")

    def of_kind(self, kind: str) -> list[Feature]:
        return [f for f in self.features if f.kind == kind]

    def sequence_group(self, group: str = "hist") -> list[Feature]:
        return [f for f in self.of_kind("sequence") if f.group == group]

    def max_len(self, group: str = "hist") -> int:
        seq = self.sequence_group(group)
        return seq[0].max_len if seq else 0

    def dense_dim(self) -> int:
        return sum(f.dim for f in self.of_kind("dense"))

    def with_dim(self, dim: int) -> Schema:
        """The same schema with every embedding table ``dim`` wide (the model's choice)."""
        from dataclasses import replace

        return replace(self, tables=tuple(Table(t.name, t.rows, dim) for t in self.tables))

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        return cls(
            tables=tuple(Table(**t) for t in d["tables"]),
            features=tuple(Feature(**f) for f in d["features"]),
            label=d.get("label", "label"),
            user=d.get("user", "user"),
            time_columns=tuple(d.get("time_columns", ())),
        )
