#!/usr/bin/env python3
"""Gated attention without sparsity: dense causal attention with the output
gate G1 only (Qiu et al.'s gated attention, the paper's "Gated Only" row).

The same op with the selection switched off: policy `fixed` with
k_base = k_min = k_max = L, so every causal position s <= t is selected, and
no value gate. The result is checked against dense causal attention written
directly in numpy (float64), independently of gsa's sparse reference:

    o[t, h] = softmax_{s <= t}(q[t, h] . k[s, kv(h)] / sqrt(d)) @ v[:, kv(h)]
              * sigmoid(go[t, h])

Exits 1 on a mismatch.

    /usr/bin/python3 examples/gated_dense.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

import gsa  # noqa: E402

B, L, N_HEADS, N_KV, HEAD_DIM, H_I, D_I = 2, 96, 8, 4, 32, 2, 8


def dense_gated_reference(q, k, v, go):
    q, k, v, go = (a.astype(np.float64) for a in (q, k, v, go))
    group = q.shape[2] // k.shape[2]
    k = np.repeat(k, group, axis=2)                       # query head h reads kv head h // group
    v = np.repeat(v, group, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    causal = np.tril(np.ones((L, L), dtype=bool))
    scores = np.where(causal, scores, -np.inf)
    lse = np.log(np.exp(scores - scores.max(-1, keepdims=True)).sum(-1)) + scores.max(-1)
    probs = np.exp(scores - lse[..., None])
    o = np.einsum("bhts,bshd->bthd", probs, v)
    return o / (1.0 + np.exp(-go)), lse.transpose(0, 2, 1)


def main():
    rng = np.random.default_rng(11)
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    q, k, v = n(B, L, N_HEADS, HEAD_DIM), n(B, L, N_KV, HEAD_DIM), n(B, L, N_KV, HEAD_DIM)
    go = n(B, L, N_HEADS, HEAD_DIM)
    # The indexer still runs (the op has one), but selecting all L positions
    # makes its scores irrelevant.
    qi, ki = n(B, L, H_I, D_I), n(B, L, D_I)
    o, lse, idx, cnt = gsa.functional.gated_sparse_attention(
        q, k, v, qi, ki, go=go, k_base=L, k_min=L, k_max=L, policy="fixed")

    failures = 0
    everything = np.all(cnt == np.arange(1, L + 1)[None]) and all(
        np.array_equal(idx[b, t, :t + 1], np.arange(t + 1)) for b in range(B) for t in range(L))
    print(f"every causal position selected: {everything}")
    failures += not everything
    o_ref, lse_ref = dense_gated_reference(q, k, v, go)
    err_o = np.linalg.norm(o - o_ref) / np.linalg.norm(o_ref)
    err_lse = np.linalg.norm(lse - lse_ref) / np.linalg.norm(lse_ref)
    good = bool(np.all(np.isfinite(o)) and err_o < 1e-5 and err_lse < 1e-5)
    print(f"against dense gated attention (float64): o rel. error {err_o:.1e}, "
          f"lse {err_lse:.1e}: {'ok' if good else 'MISMATCH'}")
    failures += not good
    print("gated_dense: " + ("FAILED" if failures else "matches dense gated attention"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
