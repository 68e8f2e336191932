"""The epoch loop's early stopping: stop after ``patience`` epochs without a better valid score,
then put back the best epoch's weights (seqrec.train.session_trainer.fit_epochs)."""

from types import SimpleNamespace

import pytest
import torch

from seqrec.train.session_trainer import TrainState, fit_epochs


class _FakeTrainer:
    """Each epoch sets the weight to the epoch number, so the restored weight names the epoch."""

    def __init__(self, epochs: int, patience: int) -> None:
        self.cfg = SimpleNamespace(train=SimpleNamespace(epochs=epochs, patience=patience))
        self.state = TrainState()
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.best_state = None
        self.log = None
        self.trained = []

    def _epoch(self, e: int):
        with torch.no_grad():
            self.model.weight.fill_(e + 1)
        self.trained.append(e + 1)
        return 0.5, 100, 1.0


def _validator(scores):
    it = iter(scores)

    def validate(_valid):
        s = next(it)
        return {"valid_recall@20": s}, s

    return validate


def test_stops_after_patience_bad_epochs_and_restores_the_best():
    tr = _FakeTrainer(epochs=10, patience=2)
    st = fit_epochs(tr, valid=object(), validate=_validator([0.1, 0.3, 0.2, 0.25, 0.9, 1.0]))
    assert tr.trained == [1, 2, 3, 4]  # epochs 3 and 4 were not better than epoch 2
    assert st.epoch == 4 and st.best_epoch == 2 and st.best_score == pytest.approx(0.3)
    assert tr.model.weight.item() == 2.0  # epoch 2's weights are back
    assert [r["valid_recall@20"] for r in st.history] == [0.1, 0.3, 0.2, 0.25]


def test_a_better_epoch_resets_the_count():
    tr = _FakeTrainer(epochs=6, patience=2)
    st = fit_epochs(tr, valid=object(), validate=_validator([0.1, 0.05, 0.2, 0.15, 0.3, 0.1]))
    assert tr.trained == [1, 2, 3, 4, 5, 6] and st.best_epoch == 5
    assert tr.model.weight.item() == 5.0


def test_patience_zero_runs_every_epoch_and_keeps_the_last_weights():
    tr = _FakeTrainer(epochs=4, patience=0)
    st = fit_epochs(tr, valid=object(), validate=_validator([0.4, 0.3, 0.2, 0.1]))
    assert tr.trained == [1, 2, 3, 4] and st.best_epoch == 1
    assert tr.model.weight.item() == 4.0


def test_without_validation_there_is_no_best_epoch():
    tr = _FakeTrainer(epochs=3, patience=2)
    st = fit_epochs(tr, valid=None, validate=None)
    assert tr.trained == [1, 2, 3] and st.best_epoch == -1 and tr.model.weight.item() == 3.0
