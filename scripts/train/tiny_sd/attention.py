"""Multi-head scaled dot-product attention.

Written out because the torch this runs on (Debian's 1.13) has no fused attention. That torch also links the
generic reference BLAS, so batched matmuls are slow; from 16 queries up, the same arithmetic as grouped 1x1
convolutions (oneDNN, one group per item and head) is 1.5-3x faster. Below that the convolution falls back
to a per-group loop, and plain matmuls win.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_QUERIES_FOR_CONV = 16


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """q [B, Lq, C], k and v [B, Lk, C] -> [B, Lq, C]; `mask` [Lq, Lk] is added to the scores."""
    if q.shape[1] >= MIN_QUERIES_FOR_CONV:
        return _attend_conv(q, k, v, heads, mask)
    return _attend_matmul(q, k, v, heads, mask)


def _attend_matmul(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    b, lq, c = q.shape
    lk = k.shape[1]
    d = c // heads
    q = q.reshape(b, lq, heads, d).transpose(1, 2)
    k = k.reshape(b, lk, heads, d).transpose(1, 2)
    v = v.reshape(b, lk, heads, d).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    if mask is not None:
        scores = scores + mask
    return torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(b, lq, c)


def _attend_conv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    b, lq, c = q.shape
    lk = k.shape[1]
    d = c // heads
    groups = b * heads
    # Scores: the queries are the convolution's batch, each (item, head) a group whose d weights are one key.
    queries = q.reshape(b, lq, heads, d).permute(1, 0, 2, 3).reshape(lq, groups * d, 1, 1)
    keys = k.reshape(b, lk, heads, d).permute(0, 2, 1, 3).reshape(groups * lk, d, 1, 1)
    scores = F.conv2d(queries, keys, groups=groups).reshape(lq, groups, lk) * (1.0 / math.sqrt(d))
    if mask is not None:
        scores = scores + mask[:, None, :]
    weights = scores.softmax(dim=-1)
    # Weighted values: each group's output channel dd weights the keys' positions by v[:, dd].
    values = v.reshape(b, lk, heads, d).permute(0, 2, 3, 1).reshape(groups * d, lk, 1, 1)
    out = F.conv2d(weights.reshape(lq, groups * lk, 1, 1), values, groups=groups)
    return out.reshape(lq, b, heads, d).permute(1, 0, 2, 3).reshape(b, lq, c)
