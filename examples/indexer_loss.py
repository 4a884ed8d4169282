#!/usr/bin/env python3
"""The indexer's training losses (SPEC section 4) from gsa's indexer scores.

`gsa.functional.indexer` returns the indexer's causal score matrix I [B, L, L]
(-inf above the diagonal). With it, the two losses the indexer trains on:

- warm-up: sum_t KL(p_t || softmax(I[t, 0..t])), p_t the dense causal
  attention of query t averaged over heads;
- sparse phase: the same KL over the selected set S_t only (from
  gsa.functional.gated_sparse_attention), both sides renormalised over S_t.

The scores are checked against SPEC section 1 written out here in float64,
and the losses must be finite and positive. Exits 1 on a mismatch.

    /usr/bin/python3 examples/indexer_loss.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

import gsa  # noqa: E402


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(x):
    """Over the last axis; -inf entries stay out."""
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def main():
    rng = np.random.default_rng(5)
    B, L, n_h, n_kv, d, H_I, d_I = 1, 96, 4, 2, 32, 4, 16
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    q, k, v = f(B, L, n_h, d), f(B, L, n_kv, d), f(B, L, n_kv, d)
    qi, ki, wi, bi = f(B, L, H_I, d_I), f(B, L, d_I), f(B, L, H_I), 0.1 * f(H_I)

    scores = gsa.functional.indexer(qi, ki, wi, bi)

    # SPEC section 1, in float64.
    x = np.einsum("btjd,bsd->btjs", qi.astype(np.float64), ki.astype(np.float64)) / np.sqrt(d_I)
    expected = np.einsum("btj,btjs->bts", sigmoid(wi.astype(np.float64)),
                         sigmoid(x + bi.astype(np.float64)[None, None, :, None]))
    causal = np.tril(np.ones((L, L), dtype=bool))[None]
    expected = np.where(causal, expected, -np.inf)
    err = np.max(np.abs(scores[causal] - expected[causal]))
    if err > 1e-5 or not np.isneginf(scores[~causal]).all():
        print(f"indexer scores differ from SPEC section 1: max error {err:.2e}")
        return 1

    # p_t: dense causal attention averaged over the heads (GQA: head h reads
    # key head h / (n_h / n_kv)).
    kh = np.repeat(k.astype(np.float64), n_h // n_kv, axis=2)
    logits = np.einsum("bthd,bshd->bhts", q.astype(np.float64), kh) / np.sqrt(d)
    logits = np.where(causal[:, None], logits, -np.inf)
    p = np.exp(log_softmax(logits)).mean(axis=1)                       # [B, L, L]

    log_q = log_softmax(scores.astype(np.float64))
    terms = np.where(causal, p * (np.log(np.where(causal, p, 1.0)) - np.where(causal, log_q, 0.0)),
                     0.0)
    warmup = terms.sum()

    # The sparse phase: both distributions renormalised over S_t.
    out = gsa.functional.gated_sparse_attention(q, k, v, qi, ki, wi, bi, k_base=16, k_min=16,
                                                k_max=16, policy="fixed")
    idx, cnt = out[2], out[3]
    sparse = 0.0
    for b in range(B):
        for t in range(L):
            sel = idx[b, t, :cnt[b, t]]
            p_s = p[b, t, sel] / p[b, t, sel].sum()
            log_q_s = log_softmax(scores[b, t, sel].astype(np.float64))
            sparse += np.sum(p_s * (np.log(p_s) - log_q_s))

    print(f"indexer scores: max error {err:.2e} against SPEC section 1")
    print(f"warm-up KL (sum over {B * L} queries): {warmup:.4f}")
    print(f"sparse-phase KL over the selected sets (k = 16): {sparse:.4f}")
    if not (np.isfinite(warmup) and warmup > 0 and np.isfinite(sparse) and sparse >= 0):
        print("a loss is not finite and positive")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
