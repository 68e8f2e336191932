"""seqrec.losses"""
