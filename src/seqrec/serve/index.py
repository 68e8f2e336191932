"""A faiss index of a retrieval run's item vectors: top-K items of a user vector by inner product.

Two-tower retrieval models (``model.dot_product``) score item i for a user as <u, v_i>, with
``v_i`` row i of ``model.item_vectors()`` (rows 1..N; row 0 is padding and is never indexed).
Serving needs the K largest of N inner products; faiss (Johnson, Douze & Jégou, "Billion-scale
similarity search with GPUs", 2017) provides the three kinds offered here:

* ``flat`` — ``IndexFlatIP``: every item scored; exact, the reference for the other two.
* ``ivf``  — ``IndexIVFFlat`` with an inner-product coarse quantiser (the inverted file of Jégou
  et al., TPAMI 2011): k-means splits the items into ``nlist`` cells (default 4·sqrt(N), faiss's
  rule of thumb), and a query scans the ``nprobe`` cells whose centroids score highest. k-means is
  trained on a sample of ``train_points`` items per cell (faiss caps it at 256).
* ``hnsw`` — ``IndexHNSWFlat`` (Malkov & Yashunin, TPAMI 2018): a layered proximity graph with
  ``m`` links per node (2·m on the bottom layer), built with ``ef_construction`` candidates and
  searched greedily with ``ef_search`` (faiss uses max(ef_search, k)).

Maximum inner product is not a metric, and k-means cells under an inner-product assignment are
lopsided (long centroids attract everything). ``transform = "l2"`` reduces the search to
Euclidean nearest neighbours (Bachrach et al., "Speeding up the Xbox recommender system using a
Euclidean transformation for inner-product spaces", RecSys 2014, eq. 9-10): every item gets one
more coordinate sqrt(M^2 - |v_i|^2) with M = max_i |v_i|, every query a 0, so
|q' - v_i'|^2 = |q|^2 + M^2 - 2 <q, v_i> and the nearest items are the largest inner products;
the score returned is recovered as (|q|^2 + M^2 - distance) / 2 (float32 rounding: ~1e-5 of
M^2). ``transform = "auto"`` uses it for IVF only; flat is exact and searches the inner product.
Measured with ``benchmarks/retrieval_index.py`` and the tests (recall@100 of the exact top-100,
one thread):

* IVF: k-means in L2 on the transformed items gives even cells. 2 million synthetic items
  (MF-BPR Gowalla vectors + noise): 0.981 with it against 0.784 without at nprobe 32 (two
  MF-BPR runs of the same recipe); 200,000 items: 0.979 against 0.944 at nprobe 64.
* HNSW: mixed, so off by default (``transform = "l2"`` turns it on). On MF-BPR vectors it helped
  (Gowalla's 40,981 items: 0.984 against 0.966 at efSearch 256; 200,000 synthetic items: 0.990
  against 0.985 at efSearch 512) or hurt a little (another run: 0.982 against 0.987), and on
  Gaussian items of unequal norms (tests/serve/test_index.py) it cut recall@20 from >= 0.95 to
  0.82: the transformed items sit on a sphere and the queries far off it, which graph search
  handles badly (Morozov & Babenko, NeurIPS 2018, search the inner product directly for this
  reason).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write, atomic_write_text

KINDS = ("flat", "ivf", "hnsw")
TRANSFORMS = ("auto", "none", "l2")
INDEX_FILE = "index.faiss"
META_FILE = "index.json"
INSTALL_HINT = "seqrec index needs faiss: pip install 'seqrec[index]' (or pip install faiss-cpu)"


@dataclass(frozen=True)
class IndexParams:
    """How to build and search an index (only the fields of its ``kind`` matter)."""

    kind: str = "ivf"
    nlist: int = 0  # IVF cells; 0 = round(4 * sqrt(N)), at most N
    nprobe: int = 64  # IVF cells scanned per query
    train_points: int = 64  # IVF k-means sample: this many items per cell (all items if fewer)
    m: int = 32  # HNSW links per node and layer (2 * m on layer 0)
    ef_construction: int = 40  # HNSW candidates kept while inserting (faiss's default)
    ef_search: int = 512  # HNSW candidates kept while searching (faiss uses max(ef_search, k))
    threads: int = 1  # faiss OpenMP threads for build and search; 0 = one per core
    transform: str = "auto"  # "l2": MIPS -> L2 nearest neighbours; "none"; "auto": l2 for ivf only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"index transform must be one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
        if self.kind == "flat" and self.transform == "l2":
            raise ConfigError("a flat index is exact: the l2 transform is for ivf and hnsw")
        for name in ("nprobe", "train_points", "m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise ConfigError(f"index {name} must be >= 1, got {getattr(self, name)}")
        if self.nlist < 0 or self.threads < 0:
            raise ConfigError(f"index nlist and threads must be >= 0, got {self.nlist} and {self.threads}")


def faiss_module():
    """The faiss module, or a one-line ConfigError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return faiss


def set_threads(n: int) -> None:
    """faiss's OpenMP threads (its own runtime, not torch's); 0 = one per core."""
    faiss_module().omp_set_num_threads(n if n > 0 else (os.cpu_count() or 1))


def default_nlist(n_items: int) -> int:
    return max(1, min(n_items, round(4 * math.sqrt(n_items))))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _as_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"vectors must be a (n, dim) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("vectors contain NaN or infinite values")
    return x


class ItemIndex:
    """A built or loaded faiss index of item vectors 1..N; ``search`` returns item indices."""

    def __init__(self, index, params: IndexParams, n_items: int, dim: int, build_seconds: float = 0.0,
                 max_norm2: float | None = None) -> None:
        if params.transform == "auto":
            raise ValueError("resolve the transform first (IndexParams.transform 'auto')")
        self.index, self.params, self.n_items, self.dim = index, params, n_items, dim
        self.build_seconds = build_seconds
        self.max_norm2 = max_norm2  # M^2 of the l2 transform (None without it)

    @property
    def kind(self) -> str:
        return self.params.kind

    def with_search(self, *, nprobe: int | None = None, ef_search: int | None = None,
                    threads: int | None = None) -> ItemIndex:
        """The same faiss index searched with other settings (shared; each ``search`` applies its own)."""
        changes = {k: v for k, v in (("nprobe", nprobe), ("ef_search", ef_search), ("threads", threads))
                   if v is not None}
        return ItemIndex(self.index, dataclasses.replace(self.params, **changes), self.n_items, self.dim,
                         self.build_seconds, self.max_norm2)

    def _apply_search_params(self) -> None:
        p = self.params
        if p.kind == "ivf":
            self.index.nprobe = min(p.nprobe, self.index.nlist)
        elif p.kind == "hnsw":
            self.index.hnsw.efSearch = p.ef_search

    @classmethod
    def build(cls, vectors: np.ndarray, params: IndexParams, *, seed: int = 0) -> ItemIndex:
        """Index ``vectors`` (N, D): row j is item j + 1 (pass ``item_vectors()[1:]``)."""
        faiss = faiss_module()
        x = _as_f32(vectors)
        n, d = x.shape
        if n == 0:
            raise ConfigError("no item vectors to index")
        if params.transform == "auto":
            params = dataclasses.replace(params, transform="l2" if params.kind == "ivf" else "none")
        set_threads(params.threads)
        t0 = time.perf_counter()
        max_norm2 = None
        if params.transform == "l2":
            norm2 = np.einsum("nd,nd->n", x, x, dtype=np.float64)  # (N,)
            max_norm2 = float(norm2.max())
            x = np.hstack([x, np.sqrt(np.maximum(max_norm2 - norm2, 0.0)).astype(np.float32)[:, None]])
        dx = x.shape[1]
        metric = faiss.METRIC_L2 if params.transform == "l2" else faiss.METRIC_INNER_PRODUCT
        if params.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif params.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dx, params.m, metric)
            index.hnsw.efConstruction = params.ef_construction
        else:
            nlist = min(params.nlist or default_nlist(n), n)
            # faiss's Python wrapper keeps the quantiser alive with the index (referenced_objects);
            # own_fields must stay False here or both would free it
            quantiser = faiss.IndexFlatL2(dx) if params.transform == "l2" else faiss.IndexFlatIP(dx)
            index = faiss.IndexIVFFlat(quantiser, dx, nlist, metric)
            index.cp.seed = seed
            index.cp.min_points_per_centroid = 1  # small catalogues: few items per cell is expected
            index.cp.max_points_per_centroid = params.train_points
            sample = x
            if n > nlist * params.train_points:
                rows = np.random.default_rng(seed).choice(n, nlist * params.train_points, replace=False)
                sample = x[np.sort(rows)]
            index.train(sample)
        index.add(x)
        return cls(index, params, n, d, time.perf_counter() - t0, max_norm2)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of each query row (Q, D): item indices (Q, k) in 1..N, 0 where the index found
        fewer than ``k`` (IVF with few cells probed), and their inner products (-inf there)."""
        q = _as_f32(queries)
        if q.shape[1] != self.dim:
            raise ConfigError(f"query vectors have dimension {q.shape[1]}, the index {self.dim}")
        k = min(int(k), self.n_items)
        if k < 1:
            raise ConfigError(f"k must be positive, got {k}")
        set_threads(self.params.threads)
        self._apply_search_params()  # every call: indexes made by with_search share one faiss index
        if self.max_norm2 is None:
            scores, labels = self.index.search(q, k)  # (Q, k) each; label -1 = no result
        else:  # l2 transform: queries get a 0 coordinate; distances back to inner products
            dist, labels = self.index.search(np.hstack([q, np.zeros((len(q), 1), np.float32)]), k)
            q_norm2 = np.einsum("qd,qd->q", q, q, dtype=np.float64)[:, None]  # (Q, 1)
            scores = ((q_norm2 + self.max_norm2 - dist) / 2).astype(np.float32)
        found = labels >= 0
        return np.where(found, labels + 1, 0).astype(np.int64), np.where(found, scores, -np.inf).astype(np.float32)

    def nbytes(self) -> int:
        """Size of the serialised index (what ``index.faiss`` holds)."""
        return int(faiss_module().serialize_index(self.index).size)

    # -- run directory ------------------------------------------------------------------------

    def save(self, run_dir: str | os.PathLike, model_sha256: str) -> dict:
        """Write ``index.faiss`` then ``index.json`` into ``run_dir``; the metadata written."""
        faiss = faiss_module()
        run_dir = Path(run_dir)
        atomic_write(run_dir / INDEX_FILE, lambda tmp: faiss.write_index(self.index, tmp))
        meta = {"kind": self.kind, "params": asdict(self.params), "metric": "inner_product",
                "n_items": self.n_items, "dim": self.dim, "model_sha256": model_sha256,
                "index_sha256": file_sha256(run_dir / INDEX_FILE),
                "bytes": (run_dir / INDEX_FILE).stat().st_size,
                "build_seconds": self.build_seconds, "faiss_version": faiss.__version__,
                "max_norm2": self.max_norm2}
        if self.kind == "ivf":
            meta["nlist"] = int(self.index.nlist)
        import json

        atomic_write_text(run_dir / META_FILE, json.dumps(meta, indent=2) + "\n")
        return meta

    @classmethod
    def load(cls, run_dir: str | os.PathLike, model_sha256: str | None = None) -> ItemIndex:
        """The index saved in ``run_dir``; CheckpointError if it is torn, or stale (built from a
        ``model.pt`` whose digest is not ``model_sha256``)."""
        import json

        run_dir = Path(run_dir)
        meta_path, index_path = run_dir / META_FILE, run_dir / INDEX_FILE
        if not meta_path.is_file() or not index_path.is_file():
            missing = META_FILE if not meta_path.is_file() else INDEX_FILE
            raise CheckpointError(f"{run_dir} has no complete index ({missing} is missing): "
                                  f"run seqrec index {run_dir}")
        try:
            meta = json.loads(meta_path.read_text())
            params = IndexParams(**meta["params"])
        except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"{meta_path} cannot be read ({exc}): rebuild it with seqrec index {run_dir}") from exc
        if model_sha256 is not None and meta.get("model_sha256") != model_sha256:
            raise CheckpointError(f"{index_path} is stale: it was built from another model.pt (the run was "
                                  f"retrained since); rebuild it with seqrec index {run_dir} --kind {params.kind}, "
                                  "or delete index.faiss and index.json")
        if file_sha256(index_path) != meta.get("index_sha256"):
            raise CheckpointError(f"{index_path} does not match {meta_path} (an interrupted or foreign write); "
                                  f"rebuild it with seqrec index {run_dir}")
        faiss = faiss_module()
        index = faiss.read_index(str(index_path))
        extra = 1 if params.transform == "l2" else 0
        if (index.ntotal != meta["n_items"] or index.d != meta["dim"] + extra
                or params.transform == "auto" or (extra and meta.get("max_norm2") is None)):
            raise CheckpointError(f"{index_path} holds {index.ntotal} vectors of dimension {index.d}, which "
                                  f"does not fit {meta_path}; rebuild it with seqrec index {run_dir}")
        return cls(index, params, int(meta["n_items"]), int(meta["dim"]), float(meta.get("build_seconds", 0.0)),
                   meta.get("max_norm2") if extra else None)


def has_index(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` has an index (either file: a half pair is reported when loading)."""
    return (Path(run_dir) / META_FILE).exists() or (Path(run_dir) / INDEX_FILE).exists()


def top_k_excluding(index: ItemIndex, queries: np.ndarray, k: int,
                    exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items for one user: ``queries`` (K, D) are its interest vectors (K = 1 for a
    single-vector model); each asks the index for its top k + |exclude| (so that k remain after
    the excluded items are dropped), and an item's score is its best interest's score. With a
    flat index this is the exact top-k of max_k <u_k, v_i> over the items not excluded.
    Returns (items, scores), best first; fewer than ``k`` when the index found fewer."""
    exclude = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
    want = min(index.n_items, k + len(exclude))
    items, scores = index.search(queries, want)  # (K, want)
    items, scores = items.ravel(), scores.ravel()
    keep = (items > 0) & ~np.isin(items, exclude)
    items, scores = items[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    items, scores = items[order], scores[order]
    _, first = np.unique(items, return_index=True)  # an item's best interest comes first
    first = np.sort(first)[:k]
    return items[first], scores[first]
