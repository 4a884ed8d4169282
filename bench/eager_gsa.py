"""The GSA core forward in eager PyTorch, chunked over queries: issue 6's
"PyTorch eager reference" peer (what a user writes without a compiler).

    o, lse, indices, counts = gsa_forward_eager(q, k, v, qi, ki, wi, bi, gv, go,
                                                running_var, policy="inverse")

Inference mode (the reference variance V_bar = running_var), SPEC.md's
semantics: the gated indexer I[t, s] = sum_j sigmoid(wi[t, j]) *
sigmoid(dot(qi[t, j], ki[s]) / sqrt(d_I) + bi[j]) for s <= t, the budget k_t
from the row's population variance (fixed, inverse or proportional policy),
the k_t largest scores, the value gate sigmoid(gv) on v, softmax attention
over the set, the output gate sigmoid(go). Chunks keep memory O(chunk x L)
for the scores and O(chunk x k_t) for the gathered rows (K and v' kept once
per batch in float32, heads first); the L x L score matrix never exists.
Scores, v' and the softmax in float32. One difference from the
compiler: ties between equal indexer scores are broken by torch.topk, not
towards the later position (SPEC's rule) - a timing peer, not a reference
for the selected sets (bench/device/select_check.py checks those against
float64).
"""

import torch


def _budgets(var, n, policy, k_base, k_min, k_max, v_bar):
    """k_t = min(clamp(floor(k_base r_t), k_min, k_max), n_t) per row."""
    if policy == "fixed":
        real = torch.full_like(var, float(k_base))
    elif policy == "inverse":
        real = torch.where(var == 0, torch.full_like(var, float("inf")), k_base * (v_bar / var))
    elif policy == "proportional":
        real = torch.where(var == 0, torch.full_like(var, float("-inf")), k_base * (var / v_bar))
    else:
        raise ValueError(f"unknown policy {policy!r}")
    k = torch.floor(real).clamp(k_min, k_max)
    return torch.minimum(k, n.to(k.dtype)).long()


def gsa_forward_eager(q, k, v, qi, ki, wi, bi, gv, go, running_var, *, policy="inverse",
                      k_base=2048, k_min=256, k_max=4096, index_chunk=256,
                      attend_chunk=64):
    """(o [B, L, n_h, d_k] in q's dtype, lse [B, L, n_h] float32, indices
    [B, L, k_max] int32 padded with -1, counts [B, L] int32)."""
    B, L, NH, D = q.shape
    NKV = k.shape[2]
    G = NH // NKV
    DI = qi.shape[3]
    dev = q.device
    scale_i, scale = DI ** -0.5, D ** -0.5
    v_bar = float(running_var)
    if policy != "fixed" and not v_bar > 0:
        raise ValueError(f"the {policy} policy needs a positive running variance "
                         f"(SPEC: a zero V_run in inference mode is an error), got {v_bar}")
    o = torch.empty_like(q)
    lse = torch.empty(B, L, NH, dtype=torch.float32, device=dev)
    indices = torch.full((B, L, k_max), -1, dtype=torch.int32, device=dev)
    counts = torch.empty(B, L, dtype=torch.int32, device=dev)
    weights = torch.sigmoid(wi.float())                                   # [B, L, H_I]
    for b in range(B):
        # K and the gated v' once per batch in float32, heads first: each
        # chunk's gather is then one index per head into a [L, D] slab.
        kf = k[b].float().permute(1, 0, 2).contiguous()                    # [NKV, L, D]
        vf = (v[b].float() * torch.sigmoid(gv[b].float())).permute(1, 0, 2).contiguous()
        for t0 in range(0, L, index_chunk):
            t1 = min(L, t0 + index_chunk)
            T, S = t1 - t0, t1
            # The indexer over the keys this chunk can see: [T, H_I, S].
            logits = torch.matmul(qi[b, t0:t1].float(), ki[b, :S].float().t())
            heads = torch.sigmoid(logits * scale_i + bi.float()[None, :, None])
            scores = (weights[b, t0:t1, :, None] * heads).sum(1)          # [T, S]
            t = torch.arange(t0, t1, device=dev)
            visible = torch.arange(S, device=dev)[None, :] <= t[:, None]
            n = (t + 1).float()
            masked = torch.where(visible, scores, torch.zeros_like(scores))
            mean = masked.sum(1) / n
            dev2 = torch.where(visible, (scores - mean[:, None]) ** 2, torch.zeros_like(scores))
            var = dev2.sum(1) / n
            k_t = _budgets(var, t + 1, policy, k_base, k_min, k_max, v_bar)
            # No wider than the chunk's largest budget (one host sync).
            kk = max(1, min(k_max, S, int(k_t.max())))
            top = torch.topk(torch.where(visible, scores, torch.full_like(scores, float("-inf"))),
                             kk, dim=1).indices                             # [T, kk], best first
            keep = torch.arange(kk, device=dev)[None, :] < k_t[:, None]
            chosen = torch.where(keep, top, torch.full_like(top, -1)).int()
            indices[b, t0:t1, :kk] = chosen
            counts[b, t0:t1] = k_t.int()
            # Sparse attention with the gates, attend_chunk queries at a time.
            for a0 in range(0, T, attend_chunk):
                a1 = min(T, a0 + attend_chunk)
                A, rows = a1 - a0, slice(t0 + a0, t0 + a1)
                ka = max(1, int(k_t[a0:a1].max()))
                sel = top[a0:a1, :ka].clamp(min=0)                          # [A, ka]
                live = keep[a0:a1, :ka]
                ks = kf[:, sel]                                             # [NKV, A, ka, D]
                vs = vf[:, sel]
                qs = q[b, rows].float().reshape(A, NKV, G, D).transpose(0, 1)  # [NKV, A, G, D]
                logit = torch.matmul(qs, ks.transpose(-1, -2)) * scale      # [NKV, A, G, ka]
                logit = logit.masked_fill(~live[None, :, None, :], float("-inf"))
                row_lse = torch.logsumexp(logit, dim=-1)                    # [NKV, A, G]
                p = torch.exp(logit - row_lse[..., None])
                out = torch.matmul(p, vs)                                   # [NKV, A, G, D]
                gate = torch.sigmoid(go[b, rows].float()).reshape(A, NKV, G, D)
                o[b, rows] = (out.transpose(0, 1) * gate).reshape(A, NH, D).to(q.dtype)
                lse[b, rows] = row_lse.transpose(0, 1).reshape(A, NH)
    return o, lse, indices, counts
