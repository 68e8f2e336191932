"""Serving: the approximate nearest-neighbour index of a run's item vectors (:mod:`seqrec.serve.index`)."""
