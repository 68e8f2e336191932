"""seqrec.train"""
