"""seqrec.baselines"""
