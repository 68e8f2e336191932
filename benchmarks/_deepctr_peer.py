"""DeepCTR-Torch 0.3.0 as a peer: DIN, DIEN, Wide&Deep and DeepFM on seqrec's own CTR samples.

:func:`train_eval_deepctr` maps a :class:`~seqrec.schema.Schema` onto DeepCTR-Torch feature
columns, trains the peer with its own ``fit`` (as its users run it) on exactly the
:class:`~seqrec.data.samples.LabeledSamples` seqrec's models get, and measures it the same way:
training time is the sum of the epochs' wall clock, from ``fit``'s ``on_epoch_begin`` to
``on_epoch_end`` callback (its batch assembly by the DataLoader, forward, backward and
step; not the one-off concatenation of the input columns before the first epoch), which is
the span seqrec's trainer times (its epoch loop, batch assembly included); inference is the
wall clock of ``predict``; metrics from :mod:`seqrec.evaluate.classification`.

Install: ``make bench-deps`` (``pip install --no-deps deepctr-torch==0.3.0``; its runtime deps
``requests`` and ``scikit-learn`` come with the ``bench`` extra). :func:`deepctr_available`
says whether it is usable.

What this harness does about the peer's quirks (all recorded in the result's ``notes``):

* network: ``import deepctr_torch`` starts a thread that asks the package index for the newest
  version (``deepctr_torch.utils.check_version``). :func:`_import_deepctr` loads the package
  with that function replaced by a no-op before the package ``__init__`` calls it, so no thread
  and no socket. Import the peer only through this module.
* ids: DeepCTR concatenates every input column into one array and casts each batch to float32,
  which is exact for integers below 2**24 only; every id column is checked against that.
* DIEN negatives: the peer gets the task's own ``neg_hist_*`` columns (one non-clicked item
  per history position, an item the user never touched, drawn by the task builder), the
  very negatives seqrec's DIEN trains on.
* loss: the main loss is the BCE *sum* over the batch (Adam is invariant to that scale, up to
  its eps), while DIEN's auxiliary loss is a *mean*; ``aux_alpha`` is the weight relative to the
  per-sample mean loss (the DIEN paper's alpha) and is passed on as ``alpha = aux_alpha *
  batch_size`` (exact for every full batch).
* MLP activation: DeepCTR's ``DNN`` builds Dice for 3-D input and asserts on the 2-D MLP input,
  so ``dnn_activation="dice"`` is refused here; DIN/DIEN default to PReLU (Dice generalises it;
  the DIN paper's PReLU baseline), Wide&Deep/DeepFM to ReLU. Dice stays in DIN's attention unit
  (DeepCTR's default there).
* timings depend on the torch thread count the caller set (recorded); with 2 threads they
  collapse when anything else uses a core, so measure on an otherwise idle machine.

Wide&Deep and DeepFM are non-sequence baselines: they get the sparse features plus each
history feature as a mean-pooled bag (VarLenSparseFeat, ``combiner="mean"``), no attention.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import resource
import sys
import time
from importlib import metadata

import numpy as np
import torch

from seqrec.data.samples import LabeledSamples
from seqrec.evaluate.classification import classification_metrics
from seqrec.schema import Feature, Schema

PEER_VERSION = "0.3.0"
MODELS = ("din", "dien", "wide_deep", "deepfm")
INFER_BATCH_SIZE = 4096  # predict() batch size unless the caller passes another
LENGTH_NAME = "seq_length"  # DeepCTR's length column for the "hist" group
FLOAT32_EXACT = 2**24  # DeepCTR casts ids to float32: exact below this
_OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD,
               "rmsprop": torch.optim.RMSprop}


def _no_version_check(version: str) -> None:
    """Stands in for ``deepctr_torch.utils.check_version`` (an HTTP request in a thread)."""


def _import_deepctr():
    """``deepctr_torch`` with its version check disabled (no thread, no network).

    The package ``__init__`` does ``from .utils import check_version; check_version(...)``.
    The package module is created from its spec without running ``__init__``, its ``utils``
    submodule is imported and patched, and only then is ``__init__`` executed, so it picks up
    the no-op. A package someone else imported first is returned as it is.
    """
    if "deepctr_torch" in sys.modules:
        return sys.modules["deepctr_torch"]
    spec = importlib.util.find_spec("deepctr_torch")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'deepctr_torch'", name="deepctr_torch")
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["deepctr_torch"] = pkg
    try:
        utils = importlib.import_module("deepctr_torch.utils")
        utils.check_version = _no_version_check
        spec.loader.exec_module(pkg)
    except BaseException:
        for name in [n for n in sys.modules if n.split(".")[0] == "deepctr_torch"]:
            del sys.modules[name]
        raise
    return pkg


def deepctr_available() -> str | None:
    """None when the peer can be used, else a one-line reason."""
    try:
        version = metadata.version("deepctr-torch")
    except metadata.PackageNotFoundError:
        return "deepctr-torch not installed: run make bench-deps"
    if version != PEER_VERSION:
        return f"deepctr-torch {version} installed, this harness is for {PEER_VERSION}: run make bench-deps"
    try:
        _import_deepctr()
    except ImportError as exc:
        return f"deepctr-torch {version} does not import ({exc}): pip install -e '.[bench]'"
    return None


# -- schema -> DeepCTR feature columns ------------------------------------------------------------
class _Plan:
    """DeepCTR feature columns for one model, and where each input comes from."""

    def __init__(self, schema: Schema, model: str, emb_dim: int, neg: bool) -> None:
        inputs = _import_deepctr().inputs
        sparse_feat, varlen, dense_feat = inputs.SparseFeat, inputs.VarLenSparseFeat, inputs.DenseFeat
        self.notes: list[str] = []
        self.source: dict[str, str] = {}  # DeepCTR input name -> seqrec column
        self.history: list[str] = []  # DIN/DIEN history_feature_list (target names)
        self.neg = neg and model == "dien"
        sparse = schema.of_kind("sparse")
        hist = schema.sequence_group("hist")
        self.hist_src = hist[0].name if hist else ""  # lengths come from this column

        def sf(name: str, table: str) -> object:
            return sparse_feat(name, schema.table(table).rows, emb_dim, embedding_name=table)

        cols: list = []
        for f in sparse:
            cols.append(sf(f.name, f.table))
            self.source[f.name] = f.name
        for f in schema.of_kind("dense"):
            cols.append(dense_feat(f.name, f.dim))
            self.source[f.name] = f.name
        pairs: dict[str, Feature] = {}  # target name -> its history feature
        if model in ("din", "dien"):
            pairs = _pair_histories(sparse, hist)
            if not pairs:
                raise ValueError(
                    f"{model}: no 'hist' sequence feature shares a table with a sparse target; "
                    f"sparse {[(f.name, f.table) for f in sparse]}, hist {[(f.name, f.table) for f in hist]}"
                )
            self.history = [f.name for f in sparse if f.name in pairs]  # sparse order = query order
            tables = {f.name: f.table for f in sparse}
            for t in self.history:
                cols.append(varlen(sf("hist_" + t, tables[t]), pairs[t].max_len, length_name=LENGTH_NAME))
                self.source["hist_" + t] = pairs[t].name
            if self.neg:
                for t in self.history:
                    cols.append(varlen(sf("neg_hist_" + t, tables[t]), pairs[t].max_len, length_name=LENGTH_NAME))
        attended = {h.name for h in pairs.values()}
        pooled = []
        for f in schema.of_kind("multihot") + schema.of_kind("sequence"):
            if f.name in attended:
                continue
            name = f.name if f.name not in self.source else "pooled_" + f.name
            length = LENGTH_NAME if f.kind == "sequence" and f.group == "hist" else None
            combiner = f.pooling if f.kind == "multihot" else "mean"
            cols.append(varlen(sf(name, f.table), f.max_len, combiner=combiner, length_name=length))
            self.source[name] = f.name
            pooled.append(f.name)
        if pooled and model in ("din", "dien"):
            how = "pools them into the MLP" if model == "din" else "drops them (DIEN's MLP takes no bags)"
            self.notes.append(f"{model}: features {pooled} are not attended; DeepCTR {how}")
        self.columns = cols
        self.needs_length = bool(hist)
        dims = {t.name: t.dim for t in schema.tables if t.dim != emb_dim}
        if dims:
            self.notes.append(f"every embedding is {emb_dim} wide (schema table dims {dims} ignored)")

    def inputs(self, data: LabeledSamples, negatives: bool = False) -> dict:
        """DeepCTR's input dict; ``negatives``: DIEN's sampled histories from the data's
        ``neg_<history column>`` columns (else zeros: the peer computes its auxiliary net in
        ``predict`` too, on whatever it is given)."""
        x = {name: data.columns[src] for name, src in self.source.items()}
        if self.needs_length:
            x[LENGTH_NAME] = self.lengths(data)
        for t in self.history if self.neg else ():
            src = "neg_" + self.source["hist_" + t]
            if not negatives:
                x["neg_hist_" + t] = np.zeros_like(x["hist_" + t])
            elif src in data.columns:
                x["neg_hist_" + t] = data.columns[src]
            else:
                raise ValueError(f"{data.name}: DIEN's auxiliary loss needs a {src!r} column "
                                 f"(sampled non-clicked behaviours); set aux_loss=False to train without")
        for name, a in x.items():
            if a.dtype.kind in "iu" and len(a) and int(a.max()) >= FLOAT32_EXACT:
                raise ValueError(
                    f"{data.name}: column {name!r} holds id {int(a.max())} >= 2**24; DeepCTR "
                    f"casts ids to float32, which is exact only below 2**24"
                )
        return x

    def lengths(self, data: LabeledSamples) -> np.ndarray:
        """Histories are left-aligned and 0-padded, so the length is the count of non-zero ids."""
        return (data.columns[self.hist_src] != 0).sum(1).astype(np.int64)


def _pair_histories(sparse: list[Feature], hist: list[Feature]) -> dict[str, Feature]:
    """Sparse target -> 'hist' sequence on the same table: by name (``hist_<target>``) first,
    then the first unpaired target on that table."""
    pairs: dict[str, Feature] = {}
    rest = []
    for h in hist:
        exact = next((f for f in sparse if f.table == h.table and "hist_" + f.name == h.name), None)
        if exact is not None and exact.name not in pairs:
            pairs[exact.name] = h
        else:
            rest.append(h)
    for h in rest:
        t = next((f for f in sparse if f.table == h.table and f.name not in pairs), None)
        if t is not None:
            pairs[t.name] = h
    return pairs


# -- training and measurement ---------------------------------------------------------------------
class _EpochClock:
    """A DeepCTR callback (duck-typed: ``fit`` only calls these methods) that records the
    wall clock of each epoch, from ``on_epoch_begin`` to ``on_epoch_end``."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._t0 = 0.0

    def set_model(self, model) -> None:
        pass

    def set_params(self, params) -> None:
        pass

    def on_train_begin(self, logs=None) -> None:
        pass

    def on_train_end(self, logs=None) -> None:
        pass

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def train_eval_deepctr(
    model: str,
    train: LabeledSamples,
    valid: LabeledSamples | None,
    test: LabeledSamples,
    *,
    emb_dim: int,
    batch_size: int,
    epochs: int,
    lr: float,
    optimizer: str = "adam",
    seed: int = 0,
    att_hidden=(64, 16),
    dnn_hidden=(200, 80),
    l2_emb: float = 0.0,
    aux_loss: bool = True,
    aux_alpha: float = 1.0,
    dnn_activation: str | None = None,
    att_activation: str | None = None,
    infer_batch_size: int = INFER_BATCH_SIZE,
) -> dict:
    """Train DeepCTR-Torch's ``model`` ("din", "dien", "wide_deep", "deepfm") with ``fit`` on
    ``train`` and evaluate it on ``test`` (and ``valid`` if given; reported only, no early
    stopping, not timed).

    Same embedding width, batch size, optimiser (``optimizer`` with learning rate ``lr``) and
    epochs as the caller's own models; loss binary_crossentropy; device cpu; shuffled batches
    seeded by ``seed`` (DeepCTR seeds torch in the model constructor).

    * DIN: attention over ``hist_<target>`` for every sparse target that shares a table with a
      'hist' sequence (``history_feature_list``), DeepCTR's defaults for the attention unit
      (Dice, no softmax). DIEN: ``gru_type="AUGRU"``, ``use_negsampling=aux_loss`` with the
      negatives of the training data's ``neg_hist_*`` columns; valid/test get zero negatives
      (``predict`` still runs DIEN's auxiliary net: DeepCTR computes it in ``forward``); its
      attention is DeepCTR's default for DIEN (MLP with ReLU, softmax) unless
      ``att_activation`` is given.
    * Wide&Deep and DeepFM: non-sequence baselines; the same columns feed the wide/linear and the
      deep part, histories as mean-pooled bags.
    * ``l2_emb`` is DeepCTR's ``l2_reg_embedding`` (and ``l2_reg_linear`` for Wide&Deep/DeepFM).

    Throughput: ``train_samples_per_s = epochs * len(train) / train_seconds`` with
    ``train_seconds`` the sum of the epochs (callback to callback: DataLoader batch assembly,
    forward, backward, step; not the one-off input concatenation, reported apart as
    ``fit_setup_seconds``);
    ``infer_samples_per_s`` around ``predict(test, batch_size=infer_batch_size)`` (4096 unless
    given). ``peak_rss_mb`` is ``ru_maxrss`` of the whole process at the end: a high-water mark,
    so the caller runs each peer in its own process, or first, as its comparison needs.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
    reason = deepctr_available()
    if reason:
        raise RuntimeError(reason)
    for d in (valid, test):
        if d is not None and d.schema != train.schema:
            raise ValueError(f"{d.name}: schema differs from the training data's")
    seq_model = model in ("din", "dien")
    act = dnn_activation or ("prelu" if seq_model else "relu")
    if act.lower() == "dice":
        raise ValueError(
            "deepctr-torch 0.3.0 cannot use Dice in the MLP (its DNN builds Dice for 3-D input "
            "and asserts on the 2-D MLP input); Dice works only in DIN's attention unit"
        )
    dc = _import_deepctr().models
    use_neg = model == "dien" and aux_loss
    plan = _Plan(train.schema, model, emb_dim, neg=use_neg)
    notes = list(plan.notes)
    notes.append(
        f"predict batch size {infer_batch_size}; torch threads {torch.get_num_threads()}; "
        f"MLP activation {act}; ids checked < 2**24 (DeepCTR feeds them as float32)"
    )
    notes.append(
        "DeepCTR defaults kept: embedding init std 1e-4, row 0 a trainable embedding (padding is "
        "excluded by lengths/masks, not padding_idx), main loss = BCE sum over the batch"
    )
    if use_neg:
        notes.append(
            f"dien: aux loss weight {aux_alpha} relative to the mean loss, passed as alpha = "
            f"{aux_alpha} * {batch_size} (DeepCTR: main loss a batch sum, aux loss a mean over "
            f"all clicked+non-clicked positions); negatives = the task's neg_hist_* columns, "
            f"the same seqrec trains on"
        )
    if model == "dien" and plan.needs_length and (empty := int((plan.lengths(train) == 0).sum())):
        notes.append(
            f"dien: {empty} training samples have empty histories; a batch made only of such "
            f"samples crashes DeepCTR's DIEN (ValueError: not enough values to unpack)"
        )
    # inputs first: the float32 id check fails before any embedding table is allocated
    x_train = plan.inputs(train, negatives=use_neg)
    y_train = train.labels().astype(np.float32)
    x_test = plan.inputs(test)
    x_valid = plan.inputs(valid) if valid is not None else None

    common = dict(dnn_hidden_units=tuple(dnn_hidden), l2_reg_embedding=l2_emb, seed=seed, device="cpu")
    att_kw = {"att_activation": att_activation} if att_activation else {}
    if model == "din":
        net = dc.DIN(plan.columns, plan.history, dnn_activation=act,
                     att_hidden_size=tuple(att_hidden), **att_kw, **common)
    elif model == "dien":
        net = dc.DIEN(plan.columns, plan.history, gru_type="AUGRU", use_negsampling=use_neg,
                      alpha=aux_alpha * batch_size, dnn_activation=act,
                      att_hidden_units=tuple(att_hidden), **att_kw, **common)
    else:
        cls = dc.WDL if model == "wide_deep" else dc.DeepFM
        net = cls(plan.columns, plan.columns, dnn_activation=act, l2_reg_linear=l2_emb, **common)
        notes.append(f"{model}: non-sequence baseline, histories as mean-pooled bags")
    net.compile(_OPTIMIZERS[optimizer](net.parameters(), lr=lr), "binary_crossentropy")

    log = io.StringIO()  # fit() prints the device and a summary line even with verbose=0
    clock = _EpochClock()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log):
        history = net.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0,
                          shuffle=True, callbacks=[clock])
    fit_s = time.perf_counter() - t0
    train_s = sum(clock.seconds)
    t0 = time.perf_counter()
    probs = net.predict(x_test, batch_size=infer_batch_size).reshape(-1)
    infer_s = time.perf_counter() - t0

    metrics = classification_metrics(test.labels(), probs, test.users(), probs=True)
    valid_metrics = None
    if valid is not None:
        pv = net.predict(x_valid, batch_size=infer_batch_size).reshape(-1)
        valid_metrics = classification_metrics(valid.labels(), pv, valid.users(), probs=True)
    return {
        "library": "deepctr-torch",
        "library_version": PEER_VERSION,
        "model": model,
        "metrics": metrics,
        "valid_metrics": valid_metrics,
        "train_samples_per_s": epochs * len(train) / train_s,
        "infer_samples_per_s": len(test) / infer_s,
        "train_seconds": train_s,
        "epoch_seconds": clock.seconds,
        "fit_setup_seconds": fit_s - train_s,
        "infer_seconds": infer_s,
        "infer_batch_size": infer_batch_size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epochs": epochs,
        "train_loss": [float(v) for v in history.history.get("loss", [])],
        "torch_threads": torch.get_num_threads(),
        "notes": notes,
    }
