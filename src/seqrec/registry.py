"""Model registry: name -> config class and family, used by configs, the CLI and tests."""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_cls: type
    family: str  # "gru4rec" | "hrnn" | "baseline"
    description: str


def _entries() -> dict[str, ModelEntry]:
    from seqrec.baselines import ItemKNNConfig, PopConfig, SKNNConfig
    from seqrec.models.gru4rec import GRU4RecConfig
    from seqrec.models.hrnn import HRNNConfig

    return {
        e.name: e
        for e in (
            ModelEntry("gru4rec", GRU4RecConfig, "gru4rec", "GRU4Rec (Hidasi et al. 2016, 2018)"),
            ModelEntry("hrnn", HRNNConfig, "hrnn", "Hierarchical RNN (Quadrana et al. 2017)"),
            ModelEntry("pop", PopConfig, "baseline", "most popular items"),
            ModelEntry("item-knn", ItemKNNConfig, "baseline", "item-kNN on session co-occurrence"),
            ModelEntry("sknn", SKNNConfig, "baseline", "session-based kNN (Jannach & Ludewig 2017)"),
        )
    }


def model_names() -> list[str]:
    return sorted(_entries())


def get_model_entry(name: str) -> ModelEntry:
    entries = _entries()
    if name not in entries:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(entries)}")
    return entries[name]
