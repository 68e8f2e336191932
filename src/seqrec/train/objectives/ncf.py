"""NCF's pointwise log loss with sampled negatives (He et al. WWW 2017, sec. 3.1.1 and 4.1),
and NeuMF's pretraining from trained GMF and MLP runs (sec. 3.4.1).

Every training interaction (u, i) is a positive (y = 1) once per epoch; ``n_negatives``
(the paper: 4) items u has not interacted with in training are drawn uniformly for it (y = 0),
freshly every epoch. The loss is eq. (7), the binary cross-entropy over all instances, averaged
per instance: (softplus(-y_ui) + sum_j softplus(y_uj)) / (1 + n_negatives) over the batch's
positives (logits y; :func:`seqrec.losses.retrieval.bce_pos_neg`), plus the model's optional L2
term. A positive and its negatives share a batch row (the user side is looked up once), which is
the paper's loss on the same instances; ``n_examples`` counts positives.

NeuMF with ``pretrained_gmf`` / ``pretrained_mlp`` starts from those runs' weights
(:meth:`seqrec.models.ncf.NeuMF.load_pretrained`, alpha = ``model.alpha``); the paper then trains
with vanilla SGD (``train.optimizer = "sgd"``), since Adam's moments are not part of the
pretrained models. The runs must be finished ``gmf`` / ``ncf_mlp`` runs on the same dataset and
train split with matching sizes; anything else is one-line :class:`~seqrec.errors.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqrec.errors import CheckpointError, ConfigError
from seqrec.losses.retrieval import bce_pos_neg
from seqrec.train.objectives import Objective


def sample_unobserved(users: np.ndarray, n: int, observed: np.ndarray, n_items: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(len(users), n) items in 1..n_items drawn uniformly among those each user has not
    interacted with; ``observed`` is the sorted array of user * (n_items + 1) + item keys.
    Redraws the hits until none is left (a user must leave some item unobserved)."""
    out = rng.integers(1, n_items + 1, size=(len(users), n), dtype=np.int64)
    base = (users * (n_items + 1))[:, None]  # (B, 1)
    todo = np.ones(out.shape, dtype=bool)
    while True:
        keys = base + out
        pos = np.searchsorted(observed, keys[todo])
        hit = np.zeros(len(pos), dtype=bool)
        inside = pos < len(observed)
        hit[inside] = observed[pos[inside]] == keys[todo][inside]
        idx = np.flatnonzero(todo)[hit]  # flat positions that hit an observed item
        if len(idx) == 0:
            return out
        todo = np.zeros(out.shape, dtype=bool)
        todo.flat[idx] = True
        out.flat[idx] = rng.integers(1, n_items + 1, size=len(idx), dtype=np.int64)


class PointwiseNCF(Objective):
    """Pointwise log loss over (positive, n_negatives unobserved) groups (module docstring)."""

    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        self.n_neg = int(model.config.n_negatives)
        self.users = task.train.row_ids()
        self.items = task.train.values
        self.n_items = task.n_items
        self.observed = np.unique(self.users * (task.n_items + 1) + self.items)
        if (task.train.lengths() >= task.n_items).any():
            raise ConfigError(f"{task.name}: a user has interacted with every item; no negatives to sample")
        self.n_examples = len(self.items)
        if getattr(model.config, "pretrained_gmf", ""):
            load_pretrained_neumf(model, cfg, task)

    def batches(self, epoch: int):
        rng = np.random.default_rng([self.cfg.train.seed, epoch])
        order = rng.permutation(self.n_examples)
        bs = self.cfg.train.batch_size
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            u = self.users[idx]
            yield {"user": torch.from_numpy(u), "target": torch.from_numpy(self.items[idx]),
                   "neg": torch.from_numpy(sample_unobserved(u, self.n_neg, self.observed, self.n_items, rng))}

    def loss(self, batch):
        items = torch.cat([batch["target"][:, None], batch["neg"]], dim=1)  # (B, 1 + S)
        logits = self.model.score_pairs(batch["user"], items)  # (B, 1 + S)
        loss = bce_pos_neg(logits[:, 0], logits[:, 1:]) / (1 + self.n_neg)
        return loss + self.model.regularization(batch["user"], items)


# -- NeuMF pretraining (sec. 3.4.1) ------------------------------------------------------------------


def _read_pretrained(field: str, run_dir: str, want: str, cfg) -> dict[str, torch.Tensor]:
    from seqrec.train.checkpoint import load_json, load_tensors

    where = f"model.{field} = {run_dir!r}"
    d = Path(run_dir)
    for f in ("config.json", "model.pt", "metrics.json"):
        if not (d / f).is_file():
            raise ConfigError(f"{where}: not a finished run ({f} missing); train the {want} config "
                              "into that folder first")
    raw = load_json(d / "config.json")
    name = raw.get("model", {}).get("name")
    if name != want:
        raise ConfigError(f"{where}: is a {name!r} run; NeuMF's {field} must be a {want!r} run")
    data = raw.get("data", {})
    for key in ("dataset", "train_split"):
        theirs, ours = data.get(key), getattr(cfg.data, key)
        if theirs != ours:
            raise ConfigError(f"{where}: trained with data.{key} = {theirs!r}, this run has {ours!r}")
    try:
        return load_tensors(d / "model.pt")
    except CheckpointError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_shapes(field: str, run_dir: str, state: dict, expected: dict[str, tuple[int, ...]], hint: str) -> None:
    for key, shape in expected.items():
        got = tuple(state[key].shape) if key in state else None
        if got != shape:
            raise ConfigError(f"model.{field} = {run_dir!r}: {key} has shape {got}, this NeuMF needs {shape} "
                              f"({hint})")


def load_pretrained_neumf(model, cfg, task) -> None:
    """Initialise ``model`` (a NeuMF) from the GMF and MLP runs its config names (sec. 3.4.1)."""
    mc = model.config
    gmf = _read_pretrained("pretrained_gmf", mc.pretrained_gmf, "gmf", cfg)
    mlp = _read_pretrained("pretrained_mlp", mc.pretrained_mlp, "ncf_mlp", cfg)
    g = mc.gmf_dim
    _check_shapes("pretrained_gmf", mc.pretrained_gmf, gmf,
                  {"user.weight": (task.n_users, g), "item.weight": (task.n_items + 1, g), "out.weight": (1, g)},
                  f"gmf_dim = {g}")
    want = {f"mlp.{k}": tuple(v.shape) for k, v in model.mlp.state_dict().items()}
    want["out.weight"] = (1, model.mlp.out_dim)
    _check_shapes("pretrained_mlp", mc.pretrained_mlp, mlp, want, f"mlp_dim = {mc.mlp_dim}, layers = "
                  f"{list(mc.layers)}")
    model.load_pretrained(gmf, mlp, mc.alpha)
