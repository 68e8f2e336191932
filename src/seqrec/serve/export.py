"""``seqrec export``: a run's serving graph as TorchScript or ONNX, and onnxruntime scoring.

What is exported (``seqrec export RUN --format torchscript|onnx [--out PATH]``):

* a **retrieval** run of a two-tower model (``dot_product``): the user tower,
  ``model.user_vectors`` (+ ``interest_mask`` for multi-interest models), inputs the user batch
  keys the model reads (``history`` (B, L) left-padded, ``age``, ``feat_<name>``, ``user``);
  default file ``RUN/user_tower.onnx`` / ``RUN/user_tower.torchscript.pt``. The item side is the
  item vectors, served by the faiss index (``seqrec index``).
* a **CTR** run: the ranker's full forward, inputs the schema features the model reads by name
  (``item``, ``cate``, ``hist_item`` (B, T) left-aligned, ``user``, dense ...), output ``logits``
  (B,); default file ``RUN/ranker.onnx`` / ``RUN/ranker.torchscript.pt``.

The batch dimension is dynamic, and so is the history length in ONNX graphs; a TorchScript
trace may fix it to the length it was traced with (``seq_len`` in the sidecar; :class:`Exported`
pads shorter histories). Layers whose eager path has data-dependent shapes (boolean-mask
indexing in :class:`~seqrec.layers.attention.ActivationUnit`, DIEN's compiled GRU kernels) compute
the same values densely while exporting (their ``dense_export`` flag). Every export is checked
on real batches (the run's test split) against the eager model and records the max abs diff.

Next to the file, ``<file>.json``: format, family, model, inputs / outputs with shapes, the
SHA-256 of ``model.pt`` (a stale export is refused at load) and the parity figure. Use:

    from seqrec.serve.export import load_exported
    tower = load_exported("runs/x/user_tower.onnx", run_dir="runs/x")  # checks model.pt's hash
    u = tower({"history": hist})["user_vectors"]                      # tensors or numpy arrays

or in any onnxruntime client, feed the inputs the sidecar lists. :class:`OnnxRanker` scores a
service ranker's candidates with ``ranker.onnx`` (``Ranker(run, backend="onnx")``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write, atomic_write_text

FORMATS = ("torchscript", "onnx")
_SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
_TOLERANCE = 1e-4  # an export whose outputs differ more from the eager model's is refused
_EXAMPLE_ROWS = 256


class _Reads(dict):
    """A batch that records which keys the model reads (the graph's inputs, in order)."""

    def __init__(self, d: Mapping[str, torch.Tensor]) -> None:
        super().__init__(d)
        self.read: list[str] = []

    def __getitem__(self, k):
        if k not in self.read:
            self.read.append(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        return self[k] if k in self else default  # noqa: SIM401  (self[k] records the read)


def _outputs(model: nn.Module, family: str, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the graph computes: a ranker's logits (B,), or a user tower's vectors (B, D) / (B, K, D)
    and, for multi-interest models, the (B, K) mask of the interests in use."""
    if family == "ctr":
        return {"logits": model(batch).logits}
    out = {"user_vectors": model.user_vectors(batch)}
    if model.multi_interest:
        out["interest_mask"] = model.interest_mask(batch)
    return out


class _Graph(nn.Module):
    """The exported function with positional tensor inputs and a tuple of outputs."""

    def __init__(self, model: nn.Module, names: list[str], family: str) -> None:
        super().__init__()
        self.model, self.names, self.family = model, list(names), family

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_outputs(self.model, self.family, dict(zip(self.names, xs, strict=True))).values())


@contextlib.contextmanager
def dense_export(model: nn.Module):
    """Switch the layers with a ``dense_export`` flag to their export path (same values, shapes
    independent of the data) for the duration."""
    mods = [m for m in model.modules() if isinstance(getattr(type(m), "dense_export", None), bool)]
    for m in mods:
        m.dense_export = True
    try:
        yield
    finally:
        for m in mods:
            del m.dense_export


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines, warnings and log records (e.g. torchvision not installed) off."""
    logs = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


def _rows(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))


def _ctr_target(run_dir: Path):
    from seqrec.families.ctr import CTRRun, load_task

    run = CTRRun(run_dir)
    task = load_task(run.config)
    if task.schema != run.schema:
        raise CheckpointError(f"{run_dir}: the data no longer matches the schema the model was trained on")
    cols = task.test.columns
    batches = [{k: torch.from_numpy(np.ascontiguousarray(v[r])) for k, v in cols.items()}
               for r in (_rows(len(task.test), _EXAMPLE_ROWS), _rows(len(task.test), 7)[1:6])]
    seq = {f.name for f in run.schema.features if f.kind in ("sequence", "seqdense")}
    width = max(int((batches[1][run.model.inp.first_hist] != 0).sum(1).max()), 1)
    batches[1] = {k: (v[:, :width] if k in seq else v) for k, v in batches[1].items()}  # trailing padding cut
    meta = {"model": run.config.model_name, "default": "ranker", "outputs": ["logits"], "seq": seq,
            "pad": "right", "max_len": run.schema.max_len(), "position_free": _position_free(run.model)}
    return run.model, batches, meta


def _position_free(model: nn.Module) -> bool:
    """DIN's scores are sums over the behaviours (order and padding columns do not matter), so
    a server may drop padding columns (:class:`OnnxRanker` does)."""
    from seqrec.models.din import DIN

    return type(model) is DIN


def _retrieval_target(run_dir: Path):
    from seqrec.families.retrieval import RetrievalRun, split_batch

    run = RetrievalRun(run_dir)
    model, name = run.model, run.config.model_name
    if not getattr(model, "dot_product", False):
        raise ConfigError(f"{name} does not score by inner products of a user vector and item vectors, so it has "
                          "no user tower to export; seqrec export serves two-tower retrieval models (dot_product: "
                          "youtube_dnn, sasrec, mind, ...)")
    task, L = run.task, run.config.data.max_len
    split = task.test
    batches = []
    for r in (_rows(len(split), _EXAMPLE_ROWS), _rows(len(split), 7)[1:6]):
        batches.append(split_batch(task, split, r, L))  # left-padded to the rows' longest history
    h = batches[0]["history"]
    batches[0]["history"] = torch.nn.functional.pad(h, (L - h.shape[1], 0))  # the example: max_len wide
    outputs = ["user_vectors"] + (["interest_mask"] if model.multi_interest else [])
    meta = {"model": name, "default": "user_tower", "outputs": outputs, "seq": {"history"}, "pad": "left",
            "max_len": L, "position_free": False}
    return model, batches, meta


def export_run(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> dict:
    """Export the serving graph of a retrieval (user tower) or CTR (ranker) run; returns the
    sidecar's record plus ``path``, ``bytes`` and ``sidecar``."""
    from seqrec.experiment import run_family
    from seqrec.serve.index import file_sha256

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    family = run_family(run_dir).name
    if family == "ctr":
        model, batches, meta = _ctr_target(run_dir)
    elif family == "retrieval":
        model, batches, meta = _retrieval_target(run_dir)
    else:
        raise ConfigError(f"{run_dir} is a {family} run; seqrec export covers retrieval user towers and CTR "
                          "rankers")
    path = Path(out) if out is not None else run_dir / (meta["default"] + _SUFFIX[fmt])
    if path.is_dir():
        path = path / (meta["default"] + _SUFFIX[fmt])
    model.eval()
    with torch.inference_mode():
        rec = _Reads(batches[0])
        _outputs(model, family, rec)  # the inputs: the keys the model reads
        names = [n for n in batches[0] if n in rec.read]
        ref = [_outputs(model, family, b) for b in batches]
    graph = _Graph(model, names, family)
    example = tuple(batches[0][n] for n in names)
    with dense_export(model), torch.no_grad(), _quiet():
        graph(*example)  # eager first: layers keep what a graph cannot compute (MIND's seeded draw)
        if fmt == "torchscript":
            traced = torch.jit.trace(graph, example, check_trace=False)
            atomic_write(path, lambda tmp: torch.jit.save(traced, tmp))
        else:
            _export_onnx(graph, example, names, meta, path)
    inputs = [{"name": n, "dtype": str(x.dtype).removeprefix("torch."),
               "shape": ["batch", *(["T"] if n in meta["seq"] else []), *x.shape[1 + (n in meta["seq"]):]]}
              for n, x in zip(names, example, strict=True)]
    record = {"format": fmt, "family": family, "model": meta["model"], "inputs": inputs,
              "outputs": meta["outputs"], "model_sha256": file_sha256(run_dir / "model.pt"),
              "seq_len": meta["max_len"] if fmt == "torchscript" else None, "pad": meta["pad"],
              "position_free": meta["position_free"], "torch": torch.__version__}
    exported = Exported(path, meta=record)  # the file as a client loads it, on every batch
    diff = max(_max_diff(exported(b), r, meta["outputs"]) for b, r in zip(batches, ref, strict=True))
    record["parity_max_abs_diff"] = diff
    record["parity_rows"] = sum(len(b[names[0]]) for b in batches)
    side = Path(str(path) + ".json")
    if not diff <= _TOLERANCE:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"the exported {fmt} graph of {meta['model']} differs from the model by {diff:.3g} "
                              f"(> {_TOLERANCE}) on the test split; nothing written")
    atomic_write_text(side, json.dumps(record, indent=2) + "\n")
    return {**record, "path": str(path), "bytes": path.stat().st_size, "sidecar": str(side)}


def _export_onnx(graph: nn.Module, example: tuple, names: list[str], meta: dict, path: Path) -> None:
    """torch.export -> ONNX (dynamo exporter): batch and history length dynamic."""
    try:
        import onnxscript  # noqa: F401  (the exporter's dependency)
    except ImportError as exc:
        raise ConfigError(f"ONNX export needs onnx and onnxscript: pip install onnx onnxscript ({exc})") from exc
    batch, T = torch.export.Dim("batch"), torch.export.Dim("T", max=max(meta["max_len"], 2))
    dyn = {"xs": tuple({0: batch, 1: T} if n in meta["seq"] else {0: batch} for n in names)}
    try:
        prog = torch.onnx.export(graph, example, dynamo=True, input_names=names, output_names=meta["outputs"],
                                 dynamic_shapes=dyn, verbose=False)
    except Exception as exc:  # the exporter's own errors are many and long: one line, the cause kept
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{meta['model']} could not be exported to ONNX: {first}") from exc
    atomic_write(path, lambda tmp: prog.save(tmp))


def _max_diff(got: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor], outputs: list[str]) -> float:
    worst = 0.0
    for k in outputs:
        a, b = got[k], ref[k]
        if a.shape != b.shape:
            return float("inf")
        if b.dtype == torch.bool:
            worst = max(worst, 0.0 if torch.equal(a, b) else float("inf"))
        elif b.numel():
            d = (a.double() - b.double()).abs().max().item()
            worst = max(worst, d if d == d else float("inf"))  # NaN counts as the worst
    return worst


def onnx_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session, its threads set explicitly (serving: 1 intra-op thread)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError(f"running an ONNX graph needs onnxruntime: pip install onnxruntime ({exc})") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: constant folding warns about the exporter's CastLike nodes
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Exported:
    """An exported graph loaded for inference: ``exported(batch)`` -> {output name: tensor}; the
    batch maps the sidecar's input names to tensors or arrays (other keys are ignored)."""

    def __init__(self, path: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                 meta: dict | None = None) -> None:
        self.path = Path(path)
        side = Path(str(self.path) + ".json")
        if not self.path.is_file() or (meta is None and not side.is_file()):
            what = self.path if not self.path.is_file() else side
            raise CheckpointError(f"{what} is missing; run seqrec export RUN --format "
                                  f"{'onnx' if self.path.suffix == '.onnx' else 'torchscript'}")
        self.meta = meta if meta is not None else json.loads(side.read_text())
        if run_dir is not None:
            from seqrec.serve.index import file_sha256

            if self.meta.get("model_sha256") != file_sha256(Path(run_dir) / "model.pt"):
                raise CheckpointError(f"{self.path} is stale: it was exported from another model.pt than "
                                      f"{run_dir}'s; run seqrec export {run_dir} --format {self.meta['format']} "
                                      "again")
        self.names = [i["name"] for i in self.meta["inputs"]]
        self.seq = {i["name"] for i in self.meta["inputs"] if "T" in i["shape"]}
        self.outputs = list(self.meta["outputs"])
        if self.meta["format"] == "onnx":
            self.session, self.module = onnx_session(self.path), None
        else:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 (still supported)
                warnings.simplefilter("ignore", DeprecationWarning)
                self.session, self.module = None, torch.jit.load(str(self.path)).eval()

    def _fit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """A TorchScript trace may fix the history length: pad shorter histories to it."""
        L = self.meta.get("seq_len")
        if L is None or name not in self.seq or x.shape[1] == L:
            return x
        if x.shape[1] > L:
            raise ConfigError(f"{name} has {x.shape[1]} columns; {self.path} takes at most {L}")
        pad = (0, 0) * (x.dim() - 2) + ((0, L - x.shape[1]) if self.meta["pad"] == "right" else (L - x.shape[1], 0))
        return torch.nn.functional.pad(x, pad)

    def __call__(self, batch: Mapping) -> dict[str, torch.Tensor]:
        missing = [n for n in self.names if n not in batch]
        if missing:
            raise ConfigError(f"{self.path} needs inputs {self.names}; missing {missing}")
        if self.session is not None:
            feeds = {n: np.ascontiguousarray(np.asarray(batch[n])) for n in self.names}
            return {k: torch.from_numpy(v) for k, v in zip(self.outputs, self.session.run(self.outputs, feeds),
                                                           strict=True)}
        xs = [self._fit(n, torch.as_tensor(batch[n])) for n in self.names]
        with torch.inference_mode():
            return dict(zip(self.outputs, self.module(*xs), strict=True))


def load_exported(path: str | os.PathLike, *, run_dir: str | os.PathLike | None = None) -> Exported:
    """Load ``seqrec export``'s file (either format); with ``run_dir``, refuse it if stale."""
    return Exported(path, run_dir)


class OnnxRanker:
    """The service ranker's scorer on onnxruntime (``RUN/ranker.onnx``): the interface of
    :mod:`seqrec.serve.split`'s scorers. ``encode`` keeps the user-side inputs (for DIN only the
    real history columns: its scores do not depend on padding or order); ``score`` broadcasts
    them to the C candidates, adds the candidates' features and runs the graph once."""

    kind = "onnx"

    def __init__(self, run, item_cate: torch.Tensor) -> None:
        from seqrec.serve.split import candidate_features

        path = run.dir / "ranker.onnx"
        if not path.is_file():
            raise CheckpointError(f"{run.dir} has no ranker.onnx for the onnx backend: run "
                                  f"seqrec export {run.dir} --format onnx")
        self.graph = load_exported(path, run_dir=run.dir)
        meta = self.graph.meta
        if meta["format"] != "onnx" or meta["family"] != "ctr":
            raise CheckpointError(f"{path} is not a ranker's ONNX export; run seqrec export {run.dir} --format onnx")
        feats = candidate_features(run.model, item_cate)
        self.feats = {k: v.numpy() for k, v in feats.items() if k in self.graph.names}
        self.user_names = [n for n in self.graph.names if n not in feats]
        self.first_hist = run.model.inp.first_hist
        self.trim = bool(meta.get("position_free")) and self.first_hist in self.graph.seq

    def encode(self, user: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        state = {n: np.asarray(user[n]) for n in self.user_names}
        if self.trim:  # drop the columns that are padding in every row (keep one: T >= 1)
            keep = (state[self.first_hist] != 0).any(0)
            if not keep.any():
                keep[0] = True
            state = {n: (v[:, keep] if n in self.graph.seq else v) for n, v in state.items()}
        return state

    def score(self, state: Mapping[str, np.ndarray], items: torch.Tensor) -> torch.Tensor:
        idx = np.asarray(items)
        C = len(idx)
        batch = {n: np.broadcast_to(v, (C, *v.shape[1:])) for n, v in state.items()}
        batch.update({k: v[idx] for k, v in self.feats.items()})
        return self.graph(batch)["logits"]

    def attention(self, state, items) -> None:
        return None
