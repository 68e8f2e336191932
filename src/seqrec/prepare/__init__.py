"""``seqrec prepare``: the data layer's heavy stages as polars or Spark jobs, written as Parquet
shards plus vocabularies in one layout (:mod:`seqrec.prepare.layout`) that training streams from
(:mod:`seqrec.prepare.reader`). The stages are specified in :mod:`seqrec.prepare.spec`, run by
:func:`seqrec.prepare.driver.prepare`; :func:`seqrec.prepare.layout.compare_prepared` diffs two
prepared directories."""
