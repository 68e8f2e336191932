"""seqrec.evaluate"""
