"""Pinned public copies of the registered session datasets, for ``seqrec download``.

Each entry is a file at a fixed commit of a public GitHub repository (the provenance written
in ``../shared/data/session/<dataset>/README.md``; the staged copies there were checked to be
the same git blobs) with its SHA-256. Datasets whose staged files were changed after download
(the Taobao head, the yoochoose_100k TSVs) or that are not session data have no entry:
``seqrec download`` says where they come from and where to put them.
"""

from __future__ import annotations

from pathlib import Path

from seqrec.data.download import fetch
from seqrec.data.registry import DATASETS, data_dir
from seqrec.errors import DownloadError

_DGNN = "YuhanZhen/WSDM23-DGNNs--for-Session-based-Recommendation"


def _gh(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# dataset -> ((file name, url, sha256), ...)
SOURCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "diginetica": (
        ("all_train_seq.txt",
         _gh("CCIIPLab/GCE-GNN", "212575302e42d64b8cf0b9ffe1b71b0db398d5be",
             "datasets/diginetica/all_train_seq.txt"),
         "55694865221c682aaa9df6cd5a4ddccff5de902334df5605c5767ee464e11365"),
        ("test.txt",
         _gh("CCIIPLab/GCE-GNN", "212575302e42d64b8cf0b9ffe1b71b0db398d5be",
             "datasets/diginetica/test.txt"),
         "b2b81f9cb22feb2174feeb3e678b9de5e41ff1653bf23cdaf9046e5404f002ff"),
    ),
    "yoochoose1_64": (
        ("all_train_seq.txt",
         _gh(_DGNN, "a1f246cc2e4914582829fdb15b89b6c0bdbadd81",
             "datasets/yoochoose1_64/all_train_seq.txt"),
         "41408f34a4dcfcd406e034fa14e4b2b583d66fedb1b85d1257645797b94988ae"),
        ("test.txt",
         _gh(_DGNN, "a1f246cc2e4914582829fdb15b89b6c0bdbadd81", "datasets/yoochoose1_64/test.txt"),
         "3006ec5cb4b695261efd7b2c5780586b0a5e95e948013e356de8fe45188b6375"),
    ),
    "retailrocket": (
        ("all_train_seq.txt",
         _gh("MSJeinlong/CGENet", "361cab1829696845656c0b3727a837ff7e1d6991",
             "datasets/retailrocket/all_train_seq.txt"),
         "f0fc2bed6f2523a4fce2fe75a14f4788865c0461afead1566ba51273438908a4"),
        ("all_test_seq_time.txt",
         _gh("sessionRec/MTD", "76502cb9a4fc9a5656d948e5bb827710d0a4726b",
             "datasets/retailrocket/all_test_seq_time.txt"),
         "682353d372d1bc5f6db09049a0ce5d8e022fb3f0715c12be696367fc3b848809"),
    ),
    "diginetica_raw_sample": (
        ("sample_train-item-views.csv",
         _gh("CRIPAC-DIG/SR-GNN", "e21cfa431f74c25ae6e4ae9261deefe11d1cb488",
             "datasets/sample_train-item-views.csv"),
         "98da96e05c87ef12b739e4bfd9bc7b4864106ee77371f1db9eb4413e3f78d37e"),
    ),
    "retailrocket_users": (
        ("sample_retailrocket.csv",
         _gh("kangshitao/SR-GTM", "264e1fa19d39ab883c7635b30a5fd3c848b3b5e5",
             "datasets/sample_retailrocket.csv"),
         "708b8466f897474c9b00963c69f2152e4efe1255ab43e23cb071d8ce0f6d86c9"),
    ),
}


def download_dataset(name: str, root: str | Path | None = None, *, progress: bool = True,
                     sources: dict | None = None) -> list[Path]:
    """Fetch every file of dataset ``name`` into its folder under the data directory."""
    sources = SOURCES if sources is None else sources
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    info = DATASETS[name]
    folder = data_dir(root) / info.subdir
    if name not in sources:
        raise DownloadError(f"{name}: no pinned public copy to download; source: {info.source}. "
                            f"Put {', '.join(info.files)} in {folder}/")
    return [fetch(url, folder / fname, sha, progress=progress) for fname, url, sha in sources[name]]
