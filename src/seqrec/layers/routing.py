"""Behaviour-to-interest (B2I) dynamic routing: a behaviour history -> a few interest capsules.

Li et al., "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall", CIKM 2019,
sec. 4.3 and Algorithm 1. Behaviour embeddings e_i are the low-level capsules, interests u_j the
high-level ones:

* one bilinear map S shared by every (behaviour, interest) pair, so the routing logit is
  b_ij = u_j^T S e_i (eq. 6; the original capsule network has one S_ij per pair);
* b_ij is drawn from N(0, sigma^2) for every example at every forward (step 2 of Algorithm 1).
  It is a state of the routing, not a parameter: nothing is learned or carried across batches.
  Random logits break the symmetry (with b = 0 and a shared S every interest would be the same);
  in eval mode they come from a fixed seed, so scores are deterministic;
* ``iterations`` rounds of: w_ij = softmax_j(b_ij) over the user's interests (eq. 3),
  z_j = sum_i w_ij S e_i (eq. 4), u_j = squash(z_j) = |z|^2 / (1 + |z|^2) z / |z| (eq. 5),
  b_ij += u_j^T S e_i (eq. 6);
* a dynamic number of interests K'_u = max(1, min(K, log2 |I_u|)) (eq. 9), rounded down (the
  paper gives no rounding; floor keeps K'_u <= log2 |I_u|). Interests j >= K'_u get no routing
  weight and come back as zeros with mask False.

Padded behaviours (item index 0) get no routing weight, so they change nothing. The eval-mode
logits are indexed by position counted from the most recent behaviour, so extra left padding
does not change them either.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def squash(z: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """|z|^2 / (1 + |z|^2) * z / |z| over the last axis (0 stays 0, gradients stay finite)."""
    sq = z.pow(2).sum(-1, keepdim=True)
    return z * (sq / (1.0 + sq) / torch.sqrt(sq + eps))


def dynamic_interests(n_behaviours: torch.Tensor, max_interests: int) -> torch.Tensor:
    """K'_u = max(1, min(K, floor(log2 n))) per row (eq. 9); n = 0 gives 1. floor(log2 n) as the
    count of powers 2^j <= n (j = 1..K): exact in integers, also in an exported graph (ONNX's
    log2 is ln / ln 2, which can fall just under an integer)."""
    powers = 2 ** torch.arange(1, max_interests + 1, device=n_behaviours.device)  # (K,)
    k = (n_behaviours.unsqueeze(-1) >= powers).sum(-1)
    return k.clamp(min=1, max=max_interests)


class B2IRouting(nn.Module):
    """(B, L, D_in) behaviour embeddings + (B, L) mask -> (B, K, D) interests + (B, K) mask."""

    _BLOCK = 64  # eval logits are drawn in fixed-size blocks, so a longer history keeps the prefix

    def __init__(self, in_dim: int, dim: int, n_interests: int, iterations: int = 3, sigma: float = 1.0,
                 dynamic: bool = True, detach: bool = False, eval_seed: int = 0,
                 identity_init: bool = False) -> None:
        super().__init__()
        if n_interests < 1 or iterations < 1 or sigma < 0:
            raise ValueError("n_interests and iterations must be >= 1 and sigma >= 0")
        self.n_interests, self.iterations, self.sigma = n_interests, iterations, sigma
        self.dynamic, self.detach, self.eval_seed = dynamic, detach, eval_seed
        self.S = nn.Linear(in_dim, dim, bias=False)  # the shared bilinear map
        if identity_init and in_dim == dim:  # start as S = I: an interest is then a squashed mean
            nn.init.eye_(self.S.weight)
        else:
            nn.init.normal_(self.S.weight, std=1.0 / math.sqrt(in_dim))

    def interest_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, K) True for the first K'_u interests of each row (all K without ``dynamic``)."""
        k = self.n_interests
        if not self.dynamic:
            return torch.ones(mask.shape[0], k, dtype=torch.bool, device=mask.device)
        used = dynamic_interests(mask.sum(1), k)  # (B,)
        return torch.arange(k, device=mask.device)[None, :] < used[:, None]

    #: export only (:mod:`seqrec.serve.export`): a graph cannot hold the seeded generator, so an
    #: eager call in this mode keeps its draw (every length up to its own) for the traced calls
    dense_export: bool = False

    def initial_logits(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        """(B, K, L) routing logits ~ N(0, sigma^2): fresh in training, seeded in eval."""
        k = self.n_interests
        if self.training:
            return torch.randn(batch, k, length, device=device) * self.sigma
        if self.dense_export and (torch.jit.is_tracing() or torch.compiler.is_exporting()):
            rev = self._export_rev  # (P, K) a constant of the graph, P >= any length it is run with
        else:
            g = torch.Generator().manual_seed(self.eval_seed)
            n_blocks = -(-length // self._BLOCK)
            rev = torch.cat([torch.randn(self._BLOCK, k, generator=g) for _ in range(n_blocks)])  # (P, K)
            if self.dense_export:
                self._export_rev = rev
        logits = rev[:length].flip(0).T.to(device) * self.sigma  # (K, L): column L-1 = most recent
        return logits[None].expand(batch, k, length)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, length, _ = emb.shape
        imask = self.interest_mask(mask)  # (B, K)
        hat = self.S(emb)  # (B, L, D): S e_i
        hat_route = hat.detach() if self.detach else hat
        b = self.initial_logits(bsz, length, emb.device)  # (B, K, L)
        no_interest = ~imask[:, :, None]  # (B, K, 1)
        keep = mask[:, None, :].to(hat.dtype)  # (B, 1, L): padded behaviours route nowhere
        u = hat.new_zeros(bsz, self.n_interests, hat.shape[-1])
        for it in range(self.iterations):
            w = torch.softmax(b.masked_fill(no_interest, float("-inf")), dim=1) * keep  # (B, K, L)
            last = it == self.iterations - 1
            z = w @ (hat if last else hat_route)  # (B, K, D)
            u = squash(z)
            if not last:
                b = b + u @ hat_route.transpose(1, 2)  # (B, K, L)
        # zero the unused interests by a select, not a product: onnxruntime's squash of their
        # zero capsules can give NaN, and NaN * 0 would survive a product
        return u.masked_fill(~imask[..., None], 0.0), imask


def label_aware_attention(interests: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
                          power: float, mode: str = "power") -> torch.Tensor:
    """MIND's label-aware attention (eq. 10): v_u = V_u softmax(pow(V_u^T e_i, p)), (B, D).

    ``interests`` (B, K, D), ``mask`` (B, K) of the interests in use, ``target`` (B, D) the label
    item's vector. ``mode = "power"`` is eq. 10 as written (p must be a whole number: a negative
    inner product has no real non-integer power); ``"scaled"`` uses softmax(p V_u^T e_i), which
    keeps the two limits the paper describes (p = 0: the mean of the interests; p -> inf: the
    interest closest to the label) and the order of the inner products for every p.
    ``power = inf`` is hard attention in both modes."""
    s = torch.einsum("bkd,bd->bk", interests, target)  # (B, K)
    if math.isinf(power):
        best = s.masked_fill(~mask, float("-inf")).argmax(1)  # (B,)
        return interests[torch.arange(len(best), device=best.device), best]
    if mode == "power":
        if power != int(power):
            raise ValueError(f"label-aware attention 'power' needs a whole-number p, got {power}")
        a = s.pow(int(power))
    elif mode == "scaled":
        a = s * power
    else:
        raise ValueError(f"label-aware attention mode must be 'power' or 'scaled', got {mode!r}")
    w = torch.softmax(a.masked_fill(~mask, float("-inf")), dim=1)  # (B, K)
    return torch.einsum("bk,bkd->bd", w, interests)
