"""Float64 reference of one Gated Sparse Attention core, written from SPEC.md.

This module is the ground truth of the CPU-path tests. It follows SPEC.md
sections 1-3 literally, in float64, with plain numpy (no code shared with the
compiler): readability over speed.

Layouts: q [B,L,n_h,d], k/v [B,L,n_kv,d], qi [B,L,H_I,d_I], ki [B,L,d_I],
wi [B,L,H_I], bi [H_I], gv like v, go like q.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _per_head(fn, x, name):
    """Applies an activation/weighting spec to x [..., H] head by head."""
    if fn == "sigmoid":
        return sigmoid(x)
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "identity":
        return x
    if callable(fn):
        out = np.empty_like(x)
        for j in range(x.shape[-1]):
            out[..., j] = fn(x[..., j], j)
        return out
    raise ValueError(f"unknown {name} {fn!r}")


# ---------------------------------------------------------------------------
# SPEC 1: gated lightning indexer
# ---------------------------------------------------------------------------

def indexer_scores(qi, ki, wi=None, bi=None, scale=None, activation="sigmoid",
                   weighting="sigmoid"):
    """I[b,t,s] = sum_j weighting(wi[t,j]) * activation(scale*qi[t,j].ki[s] + bi[j])
    for s <= t, and -inf for s > t (SPEC 1). scale defaults to 1/sqrt(d_I)."""
    qi = np.asarray(qi, np.float64)
    ki = np.asarray(ki, np.float64)
    B, L, H, dI = qi.shape
    if scale is None:
        scale = 1.0 / np.sqrt(dI)
    x = scale * np.einsum("btjd,bsd->btsj", qi, ki)          # [B, L, L, H]
    if bi is not None:
        x = x + np.asarray(bi, np.float64)[None, None, None, :]
    act = _per_head(activation, x, "activation")
    if wi is None:
        weight = np.ones((B, L, H))
    else:
        weight = _per_head(weighting, np.asarray(wi, np.float64), "weighting")
    scores = np.einsum("btj,btsj->bts", weight, act)
    causal = np.tril(np.ones((L, L), dtype=bool))
    return np.where(causal[None], scores, -np.inf)


# ---------------------------------------------------------------------------
# SPEC 2: adaptive top-k selection
# ---------------------------------------------------------------------------

def _visible(I):
    L = I.shape[1]
    return np.tril(np.ones((L, L), dtype=bool))[None]


def row_mean(I):
    """Mean of I[b, t, 0..t] (the n_t = t+1 visible positions)."""
    vis = _visible(I)
    n = np.arange(1, I.shape[1] + 1)[None, :]
    return np.where(vis, I, 0.0).sum(-1) / n


def row_variance(I):
    """Population variance of I[b, t, 0..t] (divide by n_t); 0 when n_t = 1."""
    vis = _visible(I)
    n = np.arange(1, I.shape[1] + 1)[None, :]
    mean = row_mean(I)
    dev = np.where(vis, I - mean[..., None], 0.0)
    return (dev * dev).sum(-1) / n


def reference_variance(var, training, running_var, momentum=0.99):
    """(V_bar, new running value) per SPEC 2, like batch norm's statistics."""
    if training:
        v_bar = float(np.mean(var))
        if running_var is None or running_var == 0:
            new = v_bar                       # the first update sets it
        else:
            new = momentum * running_var + (1 - momentum) * v_bar
        return v_bar, new
    if running_var is None or not np.isfinite(running_var) or running_var == 0:
        raise ValueError("inference mode needs a finite, nonzero running variance")
    return float(running_var), running_var


def budget_real(var, policy, k_base, k_min, k_max, v_bar, mean=None, custom=None):
    """The real budget k_base * r_t before floor and clamps."""
    var = np.asarray(var, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy == "fixed":
            return np.full(var.shape, float(k_base))
        if policy == "inverse":
            return np.where(var == 0, np.inf, k_base * (v_bar / var))
        if policy == "proportional":
            return np.where(var == 0, -np.inf, k_base * (var / v_bar))
        if policy == "custom":
            out = np.empty(var.shape)
            for b in range(var.shape[0]):
                for t in range(var.shape[1]):
                    out[b, t] = custom(mean[b, t], var[b, t], v_bar, t)
            return out
    raise ValueError(f"unknown policy {policy!r}")


def budgets(var, policy, k_base, k_min, k_max, v_bar, mean=None, custom=None):
    """k_t = min(clamp(floor(k_base * r_t), k_min, k_max), n_t); a NaN budget
    (possible from a custom policy) gives k_max."""
    real = budget_real(var, policy, k_base, k_min, k_max, v_bar, mean, custom)
    with np.errstate(invalid="ignore"):
        k = np.clip(np.floor(real), k_min, k_max)
    k = np.where(np.isnan(real), k_max, k).astype(np.int64)
    n = np.arange(1, k.shape[1] + 1)[None, :]
    return np.minimum(k, n)


def _order(row_scores):
    """Visible positions of one row, best first: larger score, then larger s."""
    s = np.arange(len(row_scores))
    return np.lexsort((-s, -row_scores))


def select_topk(I, counts):
    """S_t per row: the k_t visible positions with the largest scores, ties
    to the larger position. Returns a nested list [B][L] of sorted arrays."""
    B, L, _ = I.shape
    sets = []
    for b in range(B):
        rows = []
        for t in range(L):
            order = _order(I[b, t, :t + 1])
            rows.append(np.sort(order[:counts[b, t]]))
        sets.append(rows)
    return sets


def selection_margin(I, counts):
    """Gap between the k-th and (k+1)-th largest visible score per row (inf
    when every visible position is selected)."""
    B, L, _ = I.shape
    margin = np.full((B, L), np.inf)
    for b in range(B):
        for t in range(L):
            k = int(counts[b, t])
            if k < t + 1 and k >= 1:
                v = np.sort(I[b, t, :t + 1])[::-1]
                margin[b, t] = v[k - 1] - v[k]
    return margin


def pack_indices(sets, k_max):
    """int32 [B, L, k_max]: ascending positions, -1 padded."""
    B, L = len(sets), len(sets[0])
    out = np.full((B, L, k_max), -1, dtype=np.int32)
    for b in range(B):
        for t in range(L):
            out[b, t, :len(sets[b][t])] = sets[b][t]
    return out


def same_sets(idx_a, cnt_a, idx_b, cnt_b):
    """Boolean [B, L]: the selected sets are equal (order ignored)."""
    B, L = cnt_a.shape
    out = np.zeros((B, L), dtype=bool)
    for b in range(B):
        for t in range(L):
            a = set(np.asarray(idx_a[b, t, :cnt_a[b, t]]).tolist())
            c = set(np.asarray(idx_b[b, t, :cnt_b[b, t]]).tolist())
            out[b, t] = a == c
    return out


def recall(ref_idx, ref_cnt, got_idx, got_cnt):
    """Per row, the fraction of the reference set that was selected."""
    B, L = ref_cnt.shape
    out = np.ones((B, L))
    for b in range(B):
        for t in range(L):
            r = set(np.asarray(ref_idx[b, t, :ref_cnt[b, t]]).tolist())
            g = set(np.asarray(got_idx[b, t, :got_cnt[b, t]]).tolist())
            if r:
                out[b, t] = len(r & g) / len(r)
    return out


# ---------------------------------------------------------------------------
# SPEC 3: gates and sparse attention
# ---------------------------------------------------------------------------

def sparse_attention(q, k, v, indices, counts, gv=None, go=None, scale=None,
                     score_mod=None):
    """(o [B,L,n_h,d], lse [B,L,n_h]) over the first counts[b,t] entries of
    indices[b,t] (-1 skipped). Query head h reads key/value head
    h // (n_h // n_kv); G2 scales v by sigmoid(gv), G1 scales the output by
    sigmoid(go); an empty row gives o = 0, lse = -inf."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, L, NH, D = q.shape
    NKV = k.shape[2]
    group = NH // NKV
    if scale is None:
        scale = 1.0 / np.sqrt(D)
    vg = v * sigmoid(gv) if gv is not None else v
    o = np.zeros((B, L, NH, D))
    lse = np.full((B, L, NH), -np.inf)
    for b in range(B):
        for t in range(L):
            sel = np.asarray(indices[b, t, :max(0, int(counts[b, t]))], dtype=np.int64)
            sel = sel[sel >= 0]
            for h in range(NH):
                kvh = h // group
                if len(sel) == 0:
                    continue
                scores = scale * (k[b, sel, kvh] @ q[b, t, h])
                if score_mod is not None:
                    scores = np.array([score_mod(sc, b, h, t, int(s))
                                       for sc, s in zip(scores, sel)], dtype=np.float64)
                keep = scores != -np.inf
                if not keep.any():
                    continue
                sc, ss = scores[keep], sel[keep]
                m = sc.max()
                p = np.exp(sc - m)
                total = p.sum()
                lse[b, t, h] = m + np.log(total)
                out = (p / total) @ vg[b, ss, kvh]
                if go is not None:
                    out = out * sigmoid(go[b, t, h])
                o[b, t, h] = out
    return o, lse


# ---------------------------------------------------------------------------
# The whole core
# ---------------------------------------------------------------------------

def gated_sparse_attention(q, k, v, qi, ki, wi=None, bi=None, gv=None, go=None, *,
                           k_base=2048, k_min=256, k_max=4096, policy="inverse",
                           running_var=None, training=False, momentum=0.99,
                           scale=None, scale_I=None, score_mod=None,
                           activation="sigmoid", weighting="sigmoid",
                           custom_policy=None):
    scores = indexer_scores(qi, ki, wi, bi, scale_I, activation, weighting)
    var = row_variance(scores)
    mean = row_mean(scores)
    if policy == "fixed" and not training and running_var is None:
        v_bar, new_var = 0.0, None
    else:
        v_bar, new_var = reference_variance(var, training, running_var, momentum)
    counts = budgets(var, policy, k_base, k_min, k_max, v_bar, mean, custom_policy)
    sets = select_topk(scores, counts)
    indices = pack_indices(sets, k_max)
    o, lse = sparse_attention(q, k, v, indices, counts, gv, go, scale, score_mod)
    return {"o": o, "lse": lse, "indices": indices, "counts": counts,
            "scores": scores, "var": var, "mean": mean, "v_bar": v_bar,
            "new_running_var": new_var}


def relative_error(out, ref):
    """||out - ref|| / ||ref||; inf when out holds NaN or Inf where ref is
    finite. Entries where both are the same infinity count as equal."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    same_inf = np.isinf(out) & np.isinf(ref) & (np.sign(out) == np.sign(ref))
    if np.any(~np.isfinite(out) & ~same_inf):
        return np.inf
    with np.errstate(invalid="ignore"):
        diff = np.where(same_inf, 0.0, out - ref)
    base = np.where(same_inf, 0.0, ref)
    norm = np.linalg.norm(base)
    return float(np.linalg.norm(diff) / (norm if norm > 0 else 1.0))
