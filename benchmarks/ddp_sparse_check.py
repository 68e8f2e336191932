"""Why seqrec.distributed averages sparse table gradients itself: plain DistributedDataParallel
(gloo, torch 2.13.0, CPU) against one process on the shape of the CTR models' inputs — one sparse
table looked up twice (history and candidate share the item table; padding row 0), a sparse
per-id bias table and a Linear layer. Two ranks each take half of one 32-row batch; the script
prints, per parameter, the largest difference to the one-process gradient and the ratio of norms
(1.0 = correct).

    python benchmarks/ddp_sparse_check.py

Measured 2026-12-07: the shared table's and the Linear layer's gradients come back halved (ratio
0.5000), the bias table's is right. A model with two tables each looked up once was reduced
correctly in the same check, so the fault needs the shared-table shape, which every CTR model has.
"""
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 6, sparse=True, padding_idx=0)
        self.bias = nn.Embedding(50, 1, sparse=True)
        self.lin = nn.Linear(12, 1)
    def forward(self, a, b):
        return self.lin(torch.cat([self.emb(a), self.emb(b)], 1)).squeeze(1) + self.bias(a).squeeze(1)

def data():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 50, (32,), generator=g), torch.randint(0, 50, (32,), generator=g), torch.randn(32, generator=g)

def grads(m):
    return {k: (p.grad.to_dense() if p.grad.is_sparse else p.grad) for k, p in m.named_parameters()}

def worker(rank, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29655")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    m = nn.parallel.DistributedDataParallel(Tiny())
    a, b, y = data()
    s = slice(rank * 16, rank * 16 + 16)
    ((m(a[s], b[s]) - y[s]) ** 2).mean().backward()
    if rank == 0:
        torch.save(grads(m.module), out)
    dist.barrier()
    dist.destroy_process_group()

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "grads.pt")
        mp.spawn(worker, args=(out,), nprocs=2, join=True)
        got = torch.load(out)
    m = Tiny()
    a, b, y = data()
    ((m(a, b) - y) ** 2).mean().backward()
    want = grads(m)
    for k in want:
        print(k, "max abs diff", f"{float((got[k] - want[k]).abs().max()):.3g}",
              "ratio of norms", f"{float(got[k].norm() / want[k].norm()):.4f}")
