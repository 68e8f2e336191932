"""Model registry: every model of every family, by name, with its config class and model class.

The family (``session`` | ``ctr`` | ``purchase`` | ...) names the module of
:mod:`seqrec.families` that builds its data, trains, evaluates and saves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_cls: type
    family: str  # a module of seqrec.families: "session" | "ctr" | "purchase" | "retrieval" | "multitask"
    description: str
    # session networks: X(config, n_items); session baselines: X(config);
    # CTR and neural purchase models: X(config, schema); xgboost and the rules: X(config, seed=, threads=);
    # retrieval models: X(config, RetrievalInfo); multi-task models: X(config, schema, tasks)
    model_cls: type

    @property
    def trainable(self) -> bool:
        """A torch module trained by gradient steps (not fitted in closed form)."""
        import torch

        return issubclass(self.model_cls, torch.nn.Module)


def _entries() -> dict[str, ModelEntry]:
    from seqrec.baselines import SKNN, ItemKNN, ItemKNNConfig, Pop, PopConfig, SKNNConfig
    from seqrec.baselines.purchase_rules import (
        BoughtBefore,
        Frequency,
        Recency,
        RFMLogReg,
        RFMLogRegConfig,
        RuleConfig,
    )
    from seqrec.baselines.retrieval import ItemCF, ItemCFConfig, PopRetrieval, PopRetrievalConfig
    from seqrec.baselines.xgboost_purchase import XGBoostConfig, XGBoostPurchase
    from seqrec.models.bst import BST, BSTConfig
    from seqrec.models.cnn_lstm import CNNLSTM, CNNLSTMConfig
    from seqrec.models.deepfm import DeepFM, DeepFMConfig, DeepFMPaperConfig
    from seqrec.models.dien import DIEN, DIENConfig, DIENPaperConfig
    from seqrec.models.din import DIN, DINConfig, DINPaperConfig
    from seqrec.models.dlrm import DLRM, DLRMConfig
    from seqrec.models.dsin import DSIN, DSINConfig
    from seqrec.models.dupn import DUPN, DUPNConfig
    from seqrec.models.esmm import ESMM, ESMMConfig
    from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig
    from seqrec.models.hrnn import HRNN, HRNNConfig
    from seqrec.models.mf_bpr import MFBPR, MFBPRConfig
    from seqrec.models.mind import MIND, MINDConfig
    from seqrec.models.mlp_sum import MLPSum, MLPSumConfig
    from seqrec.models.mmoe import MMoE, MMoEConfig
    from seqrec.models.ncf import GMF, NCFMLP, GMFConfig, NCFMLPConfig, NeuMF, NeuMFConfig
    from seqrec.models.pinsage import PinSage, PinSageConfig
    from seqrec.models.ple import PLE, PLEConfig
    from seqrec.models.purchase_rnn import (
        GRUClassifier,
        GRUClassifierConfig,
        LSTMClassifier,
        LSTMClassifierConfig,
    )
    from seqrec.models.sasrec import SASRec, SASRecCEConfig, SASRecConfig
    from seqrec.models.shared_bottom import SharedBottom, SharedBottomConfig
    from seqrec.models.single_din import SingleDIN, SingleDINConfig
    from seqrec.models.tdm import TDM, TDMConfig
    from seqrec.models.wide_deep import WideDeep, WideDeepConfig, WideDeepPaperConfig
    from seqrec.models.youtube_dnn import YouTubeDNN, YouTubeDNNConfig

    return {
        e.name: e
        for e in (
            ModelEntry("gru4rec", GRU4RecConfig, "session", "GRU4Rec (Hidasi et al. 2016, 2018)", GRU4Rec),
            ModelEntry("hrnn", HRNNConfig, "session", "Hierarchical RNN (Quadrana et al. 2017)", HRNN),
            ModelEntry("pop", PopConfig, "session", "most popular items", Pop),
            ModelEntry("item-knn", ItemKNNConfig, "session", "item-kNN on session co-occurrence", ItemKNN),
            ModelEntry("sknn", SKNNConfig, "session", "session-based kNN (Jannach & Ludewig 2017)", SKNN),
            ModelEntry("din", DINConfig, "ctr",
                       "Deep Interest Network (Zhou et al. 2018) with the extras chosen on validation", DIN),
            ModelEntry("din-paper", DINPaperConfig, "ctr",
                       "DIN exactly as DeepCTR-Torch builds and trains it (the like-for-like row)", DIN),
            ModelEntry("dien", DIENConfig, "ctr",
                       "Deep Interest Evolution Network (Zhou et al. 2019) with the extras chosen on validation",
                       DIEN),
            ModelEntry("dien-paper", DIENPaperConfig, "ctr",
                       "DIEN exactly as DeepCTR-Torch builds and trains it (the like-for-like row)", DIEN),
            ModelEntry("dsin", DSINConfig, "ctr", "Deep Session Interest Network (Feng et al. 2019)", DSIN),
            ModelEntry("bst", BSTConfig, "ctr", "Behavior Sequence Transformer (Chen et al. 2019)", BST),
            ModelEntry("wide_deep", WideDeepConfig, "ctr", "Wide & Deep (Cheng et al. 2016)", WideDeep),
            ModelEntry("wide_deep-paper", WideDeepPaperConfig, "ctr",
                       "Wide & Deep with DeepCTR-Torch's init and dense Adam (the like-for-like row)", WideDeep),
            ModelEntry("deepfm", DeepFMConfig, "ctr", "DeepFM (Guo et al. 2017)", DeepFM),
            ModelEntry("deepfm-paper", DeepFMPaperConfig, "ctr",
                       "DeepFM with DeepCTR-Torch's init and dense Adam (the like-for-like row)", DeepFM),
            ModelEntry("dlrm", DLRMConfig, "ctr", "DLRM, dot interaction (Naumov et al. 2019)", DLRM),
            ModelEntry("mlp_sum", MLPSumConfig, "ctr", "sum-pooled history + MLP (DIN's base model)", MLPSum),
            ModelEntry("cnn_lstm", CNNLSTMConfig, "purchase",
                       "CNN+LSTM purchase predictor (convolutions, pooling, LSTM, MLP)", CNNLSTM),
            ModelEntry("lstm", LSTMClassifierConfig, "purchase", "LSTM purchase predictor", LSTMClassifier),
            ModelEntry("gru", GRUClassifierConfig, "purchase",
                       "GRU purchase predictor, GRU4Rec-style (Hidasi et al. 2016)", GRUClassifier),
            ModelEntry("xgboost", XGBoostConfig, "purchase",
                       "XGBoost on aggregate purchase features (Chen & Guestrin 2016)", XGBoostPurchase),
            ModelEntry("bought_before", RuleConfig, "purchase",
                       "rule: bought from the category in the observation window (0/1)", BoughtBefore),
            ModelEntry("recency", RuleConfig, "purchase", "rule: the more recent the last category purchase, "
                       "the higher (never = lowest)", Recency),
            ModelEntry("frequency", RuleConfig, "purchase", "rule: category purchases in the observation window",
                       Frequency),
            ModelEntry("rfm_logreg", RFMLogRegConfig, "purchase",
                       "logistic regression on recency / frequency / monetary features", RFMLogReg),
            # multi-task (several labels per row, a head per task)
            ModelEntry("shared_bottom", SharedBottomConfig, "multitask",
                       "Shared-Bottom: one shared MLP, a tower per task (Caruana 1997)", SharedBottom),
            ModelEntry("mmoe", MMoEConfig, "multitask", "Multi-gate Mixture-of-Experts (Ma et al. KDD 2018)", MMoE),
            ModelEntry("ple", PLEConfig, "multitask", "Progressive Layered Extraction (Tang et al. RecSys 2020)",
                       PLE),
            ModelEntry("esmm", ESMMConfig, "multitask", "Entire Space Multi-task Model, pCTCVR = pCTR x pCVR "
                       "(Ma et al. SIGIR 2018)", ESMM),
            ModelEntry("dupn", DUPNConfig, "multitask", "DUPN: behaviour LSTM + query/user attention -> one user "
                       "representation, a head per task (Ni et al. KDD 2018)", DUPN),
            ModelEntry("single_din", SingleDINConfig, "multitask", "one independent DIN per task (the single-task "
                       "baseline of DUPN)", SingleDIN),
            # retrieval (candidate generation over the whole catalogue)
            ModelEntry("pop_retrieval", PopRetrievalConfig, "retrieval",
                       "most popular training items for every user (the rule baseline)", PopRetrieval),
            ModelEntry("itemcf", ItemCFConfig, "retrieval", "item-based CF, cosine, top neighbours (Sarwar et al. "
                       "2001)", ItemCF),
            ModelEntry("mf_bpr", MFBPRConfig, "retrieval", "matrix factorisation with BPR (Rendle et al. 2009)",
                       MFBPR),
            ModelEntry("youtube_dnn", YouTubeDNNConfig, "retrieval", "YouTube DNN candidate generation "
                       "(Covington et al. 2016), sampled softmax + logQ", YouTubeDNN),
            ModelEntry("gmf", GMFConfig, "retrieval", "NCF's generalised matrix factorisation (He et al. 2017)",
                       GMF),
            ModelEntry("ncf_mlp", NCFMLPConfig, "retrieval", "NCF's MLP over [user, item] (He et al. 2017)",
                       NCFMLP),
            ModelEntry("neumf", NeuMFConfig, "retrieval", "NeuMF: GMF + MLP fused, GMF/MLP pretraining (He et "
                       "al. 2017)", NeuMF),
            ModelEntry("sasrec", SASRecConfig, "retrieval", "SASRec, causal self-attention, BCE with one "
                       "sampled negative per position (Kang & McAuley 2018)", SASRec),
            ModelEntry("sasrec-ce", SASRecCEConfig, "retrieval", "SASRec trained with softmax cross-entropy over "
                       "the catalogue (Klenitskiy & Vasilev 2023)", SASRec),
            ModelEntry("mind", MINDConfig, "retrieval", "Multi-Interest Network with Dynamic Routing (Li et al. "
                       "2019)", MIND),
            ModelEntry("tdm", TDMConfig, "retrieval", "tree-based deep model: attention scorer, beam search "
                       "down a learned item tree (Zhu et al. 2018)", TDM),
            ModelEntry("pinsage", PinSageConfig, "retrieval", "PinSage: graph convolutions over random-walk "
                       "neighbourhoods, item-to-item (Ying et al. 2018)", PinSage),
        )
    }


def model_names(family: str | None = None) -> list[str]:
    return sorted(n for n, e in _entries().items() if family is None or e.family == family)


def get_model_entry(name: str) -> ModelEntry:
    entries = _entries()
    if name not in entries:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(entries)}")
    return entries[name]
