"""Multi-task samples: one row, several binary labels (the ``multitask`` family).

``census_task(name, folder)`` — UCI Census-Income (KDD) with the MMoE paper's first task group
(Ma et al. KDD 2018, sec. 6.3): task ``income`` (income > 50K) and task ``never_married``
(marital status "Never married"). Only the official test file (99,762 rows) is staged
(``census-income.test.gz``; the README there says why), so it is split **60 / 20 / 20 by a seeded
permutation** into train / valid / test (``seed``, default 0).

Features, as torch-rechub's census example builds them (the peer of ``benchmarks/multitask.py``):
7 continuous columns (age, wage per hour, capital gains, capital losses, stock dividends, number
of persons worked for the employer, weeks worked in year) scaled to [0, 1] with the training
split's min and max, one ``dense`` feature of width 7; every other column is categorical, one
sparse feature and embedding table each (its values indexed by frequency in the training split,
0 = padding, 1 = a value unseen in training). Left out: the two label columns and
``instance_weight`` (a survey sampling weight, not a property of the person).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.errors import ConfigError, DataValidationError
from seqrec.schema import Feature, Schema, Table

CENSUS_COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college",
    "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses", "stock_dividends", "tax_filer_stat",
    "region_prev_res", "state_prev_res", "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp", "fam_under_18", "country_father",
    "country_mother", "country_self", "citizenship", "own_or_self", "vet_question", "vet_benefits",
    "weeks_worked", "year", "income_50k",
)
CENSUS_DENSE = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp",
                "weeks_worked")
CENSUS_TASKS = ("income", "never_married")
_NOT_FEATURES = {"marital_stat", "income_50k", "instance_weight"}


@dataclass
class MultiTaskData:
    """Train / valid / test columns of a multi-task dataset: features by schema name, one label column
    ``label_<task>`` (float32 0/1) per task; -1 where a row belongs to another task (datasets whose
    tasks have their own rows, e.g. Taobao's)."""

    name: str
    schema: Schema
    tasks: tuple[str, ...]
    train: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    test: dict[str, np.ndarray]

    def split(self, which: str) -> dict[str, np.ndarray]:
        if which not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {which!r}")
        return getattr(self, which)

    def summary(self) -> dict:
        out = {"tasks": list(self.tasks)}
        for part in ("train", "valid", "test"):
            cols = self.split(part)
            out[part] = {"samples": len(cols[f"label_{self.tasks[0]}"])}
            for t in self.tasks:  # a label of -1: the row belongs to another task
                y = cols[f"label_{t}"]
                out[part][f"rows_{t}"] = int((y >= 0).sum())
                out[part][f"positives_{t}"] = int((y > 0).sum())
        return out


def read_census(path: Path) -> list[list[str]]:
    """Rows of the raw file (42 comma-separated fields, values stripped); a DataValidationError
    naming the line for a row of another width."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="latin-1") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.rstrip("\n").split(",")]
            if len(parts) != len(CENSUS_COLUMNS):
                raise DataValidationError(f"{path}, line {i}: {len(parts)} fields, expected {len(CENSUS_COLUMNS)}")
            rows.append(parts)
    if not rows:
        raise DataValidationError(f"{path} is empty")
    return rows


def census_task(name: str, folder: Path, *, seed: int = 0, dim: int = 4,
                fractions: tuple[float, float] = (0.6, 0.2), tasks: tuple[str, ...] = (), test_day: int = -1,
                train_from_day: int = 0) -> MultiTaskData:
    if tuple(tasks) not in ((), CENSUS_TASKS) or test_day != -1 or train_from_day:
        raise ConfigError(f"census_income has the tasks {list(CENSUS_TASKS)} and no days: leave "
                          "[data.multitask] tasks / test_day / train_from_day unset")
    path = folder / "census-income.test.gz"
    rows = read_census(path)
    cols = {c: np.asarray([r[j] for r in rows], dtype=object) for j, c in enumerate(CENSUS_COLUMNS)}
    n = len(rows)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    parts = {"train": np.sort(perm[:n_train]), "valid": np.sort(perm[n_train:n_train + n_valid]),
             "test": np.sort(perm[n_train + n_valid:])}
    labels = {"income": (cols["income_50k"] == "50000+.").astype(np.float32),
              "never_married": (cols["marital_stat"] == "Never married").astype(np.float32)}
    try:
        dense = np.stack([cols[c].astype(np.float64) for c in CENSUS_DENSE], 1)
    except ValueError as exc:
        raise DataValidationError(f"{path}: a continuous column is not numeric ({exc})") from exc
    tr = dense[parts["train"]]
    lo, hi = tr.min(0), tr.max(0)
    dense = ((dense - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
    sparse_names = [c for c in CENSUS_COLUMNS if c not in CENSUS_DENSE and c not in _NOT_FEATURES]
    codes, tables = {}, []
    for c in sparse_names:
        values, counts = np.unique(cols[c][parts["train"]], return_counts=True)
        order = values[np.argsort(-counts, kind="stable")]
        index = {v: i + 2 for i, v in enumerate(order.tolist())}
        codes[c] = np.fromiter((index.get(v, 1) for v in cols[c].tolist()), dtype=np.int64, count=n)
        tables.append(Table(c, len(order) + 2, dim))
    feats = [Feature(c, "sparse", c) for c in sparse_names] + [Feature("dense", "dense", dim=len(CENSUS_DENSE))]
    schema = Schema(tables=tuple(tables), features=tuple(feats), label=f"label_{CENSUS_TASKS[0]}", user="")
    out = {}
    for part, idx in parts.items():
        d = {c: codes[c][idx] for c in sparse_names}
        d["dense"] = dense[idx]
        d.update({f"label_{t}": labels[t][idx] for t in CENSUS_TASKS})
        out[part] = d
    return MultiTaskData(name, schema, CENSUS_TASKS, out["train"], out["valid"], out["test"])
