"""seqrec.models"""
