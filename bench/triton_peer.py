#!/usr/bin/env python3
"""The Triton peer of issue 6, attention stage: gated sparse attention on
given selections, written in Triton 3.6 the way a Triton user would write it
(one program per query token and KV head, the GQA group's query heads padded
to 16 rows for tl.dot, selected K/v' rows gathered in blocks of 64, online
softmax, output gate), with the value gate applied once per key row first
(as gsa's own default does). Used by bench/gsa_bench.py --triton; it runs on
the GPU machine only (torch + triton).

Not covered: the indexer and the adaptive selection (the peer takes the
selections gsa returned), so the comparison is for the attention stage.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _gated_sparse_attention(Q, K, V, IDX, CNT, GO, O, LSE, scale,
                            K_MAX: tl.constexpr, NH: tl.constexpr, NKV: tl.constexpr,
                            G: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr,
                            ROWS: tl.constexpr):
    t = tl.program_id(0)
    kvh = tl.program_id(1)
    rows = tl.arange(0, ROWS)
    real = rows < G
    head = kvh * G + tl.where(real, rows, 0)
    d = tl.arange(0, D)
    q = tl.load(Q + (t * NH + head)[:, None] * D + d[None, :], mask=real[:, None], other=0.0)
    count = tl.minimum(tl.load(CNT + t), K_MAX)
    m = tl.full([ROWS], float("-inf"), tl.float32)
    l = tl.zeros([ROWS], tl.float32)
    acc = tl.zeros([ROWS, D], tl.float32)
    for j0 in range(0, count, BLOCK):
        j = j0 + tl.arange(0, BLOCK)
        s = tl.load(IDX + t.to(tl.int64) * K_MAX + j, mask=j < count, other=-1)
        valid = (s >= 0) & (s <= t)
        row = (tl.where(valid, s, 0).to(tl.int64) * NKV + kvh) * D
        k = tl.load(K + row[:, None] + d[None, :])
        scores = tl.dot(q, tl.trans(k)) * scale
        scores = tl.where(valid[None, :], scores, float("-inf"))
        m_new = tl.maximum(m, tl.max(scores, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(scores - m_safe[:, None])
        alpha = tl.exp(m - m_safe)
        v = tl.load(V + row[:, None] + d[None, :])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        l = l * alpha + tl.sum(p, 1)
        m = m_new
    empty = l == 0.0
    o = acc / tl.where(empty, 1.0, l)[:, None]
    out = (t * NH + head)[:, None] * D + d[None, :]
    go = tl.load(GO + out, mask=real[:, None], other=0.0).to(tl.float32)
    o = o * tl.sigmoid(go)
    tl.store(O + out, o.to(O.dtype.element_ty), mask=real[:, None])
    lse = tl.where(empty, float("-inf"), m + tl.log(tl.where(empty, 1.0, l)))
    tl.store(LSE + t * NH + head, lse, mask=real)


def gated_sparse_attention(q, k, v, indices, counts, gv, go, block=64):
    """o, lse for B = 1 (the benchmark's shape): v' = v * sigmoid(gv) once
    per key row, then the Triton kernel over (query, KV head)."""
    B, L, NH, D = q.shape
    NKV = k.shape[2]
    assert B == 1, "the peer is written for B = 1"
    vg = (v.float() * torch.sigmoid(gv.float())).to(v.dtype)
    o = torch.empty_like(q)
    lse = torch.empty(B, L, NH, device=q.device, dtype=torch.float32)
    _gated_sparse_attention[(L, NKV)](
        q, k, vg, indices, counts, go, o, lse, 1.0 / D ** 0.5,
        K_MAX=indices.shape[2], NH=NH, NKV=NKV, G=NH // NKV, D=D, BLOCK=block,
        ROWS=16, num_warps=4)
    return o, lse
