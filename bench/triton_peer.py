#!/usr/bin/env python3
"""The Triton peer of issue 6, attention stage: gated sparse attention on
given selections, written in Triton 3.6 the way a Triton user would write it
(one program per query token and KV head, the GQA group's query heads padded
to 16 rows for tl.dot, selected K/v' rows gathered in blocks of 64, online
softmax, output gate), with the value gate applied once per key row first
(as gsa's own default does). Used by bench/gsa_bench.py --triton; it runs on
the GPU machine only (torch + triton).

Selection stage (`indexer_topk`): the way DSA-style code is written with
Triton and PyTorch - a Triton kernel computes the gated indexer's scores
(SPEC 1: tl.dot per indexer head, sigmoids, weights, causal -inf) for a chunk
of query rows against every key into a [chunk, L] fp32 buffer, then
torch.topk picks each row's k_t (fixed policy: k_base; inverse policy: the
row's variance from the same buffer, k_t = clamp(floor(k_base V / var),
k_min, k_max)). It materialises chunk x L scores (2 GiB at 4096 x 128K), not
L x L; ties are torch.topk's, not SPEC's larger-position rule.
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


@triton.jit
def _indexer_scores(QI, KI, WI, BI, S, q0, L, n_keys, scale,
                    H: tl.constexpr, DI: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    """S[r, s] = sum_j sigmoid(wi[q0 + r, j]) sigmoid(scale qi[q0 + r, j] . ki[s] + bi[j])
    for s <= q0 + r, -inf above the diagonal; S rows are n_keys apart."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = q0 + pid_m * BM + tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    row_ok = rows < L
    out = S + (rows - q0)[:, None].to(tl.int64) * n_keys + cols[None, :]
    store_ok = row_ok[:, None] & (cols[None, :] < n_keys)
    if pid_n * BN > q0 + pid_m * BM + BM - 1:
        tl.store(out, tl.full([BM, BN], float("-inf"), tl.float32), mask=store_ok)
    else:
        dims = tl.arange(0, DI)
        ki = tl.load(KI + cols[:, None] * DI + dims[None, :], mask=(cols < L)[:, None], other=0.0)
        acc = tl.zeros([BM, BN], tl.float32)
        for j in tl.static_range(H):
            qi = tl.load(QI + (rows[:, None] * H + j) * DI + dims[None, :],
                         mask=row_ok[:, None], other=0.0)
            dot = tl.dot(qi, tl.trans(ki))
            w = tl.sigmoid(tl.load(WI + rows * H + j, mask=row_ok, other=0.0).to(tl.float32))
            b = tl.load(BI + j).to(tl.float32)
            acc += w[:, None] * tl.sigmoid(dot * scale + b)
        acc = tl.where(cols[None, :] <= rows[:, None], acc, float("-inf"))
        tl.store(out, acc, mask=store_ok)


def indexer_topk(qi, ki, wi, bi, policy, k_base, k_min, k_max, running_var=None,
                 chunk=4096, block_m=64, block_n=128):
    """(indices [1, L, k_max] int32 padded with -1, counts [1, L] int32) for
    B = 1, policy "fixed" or "inverse" (V_bar = running_var)."""
    B, L, H, DI = qi.shape
    assert B == 1, "the peer is written for B = 1"
    dev = qi.device
    idx = torch.full((B, L, k_max), -1, dtype=torch.int32, device=dev)
    cnt = torch.empty((B, L), dtype=torch.int32, device=dev)
    buf = torch.empty(min(chunk, L) * L, dtype=torch.float32, device=dev)
    scale = 1.0 / DI ** 0.5
    for q0 in range(0, L, chunk):
        rows = min(chunk, L - q0)
        n_keys = q0 + rows
        scores = buf[:rows * n_keys].view(rows, n_keys)
        grid = (triton.cdiv(rows, block_m), triton.cdiv(n_keys, block_n))
        _indexer_scores[grid](qi, ki, wi, bi, scores, q0, L, n_keys, scale, H=H, DI=DI,
                              BM=block_m, BN=block_n, num_warps=8)
        n = torch.arange(q0 + 1, n_keys + 1, device=dev)
        if policy == "fixed":
            kt = torch.clamp(n, max=k_base)
            take = min(k_base, n_keys)
            vals, ind = torch.topk(scores, take, dim=1, sorted=False)
            keep = vals != float("-inf")
        else:
            live = scores != float("-inf")
            mean = torch.where(live, scores, 0.0).sum(1) / n
            var = torch.where(live, (scores - mean[:, None]) ** 2, 0.0).sum(1) / n
            ratio = running_var / var
            kt = torch.clamp(torch.floor(k_base * ratio).nan_to_num(k_max, k_max, k_min),
                             k_min, k_max).long()
            kt = torch.minimum(kt, n)
            take = min(k_max, n_keys)
            vals, ind = torch.topk(scores, take, dim=1, sorted=True)
            keep = torch.arange(take, device=dev)[None, :] < kt[:, None]
        idx[0, q0:n_keys, :take] = torch.where(keep, ind.int(), -1)
        cnt[0, q0:n_keys] = kt.int()
    return idx, cnt
