"""Every numba kernel of the library, and GRU4Rec's fused training step that drives them.

The Python-level classes stay where they belong (the dropout layer, the ranking evaluator,
the sampler, the session-parallel batcher, the optimisers, DIEN's GRU layers) and import
their compiled loops from here; nothing outside this package imports numba.

* :mod:`~seqrec.kernels.mathf` — float32 ``exp`` / ``sigmoid`` / ``tanh`` that vectorise;
* :mod:`~seqrec.kernels.gru` — the GRU gate backward (written once), GRU4Rec's cell forward
  and backward, DIEN's GRU / AUGRU / AGRU recurrences;
* :mod:`~seqrec.kernels.bpr_max` — BPR-max from the raw scores, final activation included;
* :mod:`~seqrec.kernels.optim` — row-wise Adagrad(-with-momentum) and lazy Adam updates;
* :mod:`~seqrec.kernels.gru4rec_step` — GRU4Rec's training step without autograd;
* :mod:`~seqrec.kernels.dropout`, :mod:`~seqrec.kernels.ranking`,
  :mod:`~seqrec.kernels.sampling`, :mod:`~seqrec.kernels.session_parallel` — the compiled
  loops of the pooled dropout, the rank count, the popularity sampler and the batcher.

This file imports nothing, so importing one kernel module does not compile or load the others.
"""
