"""HRNN training: user-parallel lanes (see :mod:`seqrec.data.user_parallel`), GRU4Rec steps."""

from __future__ import annotations

from seqrec.config import RunConfig
from seqrec.data.events import SessionArrays
from seqrec.data.user_parallel import user_parallel_batches
from seqrec.evaluate.user_sessions import evaluate_hrnn
from seqrec.models.hrnn import HRNN
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import GRU4RecTrainer


class HRNNTrainer(GRU4RecTrainer):
    def __init__(self, model: HRNN, cfg: RunConfig, train: SessionArrays, log: RunLog | None = None):
        if train.users is None:
            from seqrec.errors import ConfigError

            raise ConfigError("HRNN needs user ids for every session")
        super().__init__(model, cfg, train, log)
        self.net = model.session

    def _run_steps(self, epoch: int, sampler):
        tc, data, model = self.cfg.train, self.train_data, self.model
        n = tc.batch_size
        hidden = self.net.init_hidden(n)
        c = model.init_user(n)
        for st in user_parallel_batches(data.items, data.offsets, data.users, tc.batch_size):
            if st.keep is not None:
                hidden = [h.index_select(0, st.keep) for h in hidden]
                c = c.index_select(0, st.keep)
            if len(st.inputs) < len(c):  # first step with fewer users than lanes
                hidden, c = [h[: len(st.inputs)] for h in hidden], c[: len(st.inputs)]
            hidden, c = model.boundary(hidden, c, st.new_session, st.new_user)
            lv, hidden = self._step(sampler, st.inputs, st.targets, hidden, extra=model.extra(c.detach()))
            c = c.detach()
            yield lv, len(st.inputs)

    def _validate(self, valid: SessionArrays) -> dict:
        return evaluate_hrnn(self.model, self.train_data, valid, ks=(20,),
                             batch_size=self.cfg.eval.batch_size)
