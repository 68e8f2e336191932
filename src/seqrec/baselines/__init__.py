"""Non-neural session baselines: POP, item-kNN (Hidasi et al. 2016), SKNN (Jannach & Ludewig 2017).

Each has a frozen config dataclass, ``fit(train, n_items)``, the
:class:`~seqrec.evaluate.ranking.SessionScorer` protocol and ``save`` / ``load``
of its fitted state, so ``evaluate_sessions`` runs on them like on any model.
"""

from __future__ import annotations

import os
from pathlib import Path

from seqrec.baselines.base import SessionBaseline, read_meta
from seqrec.baselines.itemknn import ItemKNN, ItemKNNConfig
from seqrec.baselines.pop import Pop, PopConfig
from seqrec.baselines.sknn import SKNN, SKNNConfig
from seqrec.errors import CheckpointError

BASELINES: dict[str, type[SessionBaseline]] = {"pop": Pop, "item-knn": ItemKNN, "sknn": SKNN}


def load_baseline(path_dir: str | os.PathLike) -> SessionBaseline:
    """Load whichever baseline was saved in ``path_dir`` (its name is in ``baseline.json``)."""
    name = read_meta(Path(path_dir)).get("name")
    if name not in BASELINES:
        raise CheckpointError(f"{path_dir}: unknown baseline {name!r}; known: {sorted(BASELINES)}")
    return BASELINES[name].load(path_dir)


__all__ = [
    "BASELINES",
    "SKNN",
    "ItemKNN",
    "ItemKNNConfig",
    "Pop",
    "PopConfig",
    "SKNNConfig",
    "SessionBaseline",
    "load_baseline",
]
