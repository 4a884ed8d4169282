#!/usr/bin/env python3
"""A new GSA variant written only in gsa.dsl: soft-capped attention scores
and a custom selection policy, no MLIR by hand.

- score_mod: Gemma-style soft-capping, cap * tanh(score / cap), so no single
  position can dominate the softmax however large q . k grows;
- policy: a square-root variant of the `inverse` policy, k_base *
  sqrt(V_bar / var_t), with a floor of one eighth of the visible context
  (t + 1) / 8, so long contexts never shrink to a handful of positions.

The Python functions are traced into the op's score_mod and policy_fn
regions (printed below), compiled and run on the CPU path, and checked
against the float64 reference, which evaluates the very same functions with
numpy, and an independent numpy formulation of them. Exits 1 on a mismatch.

    /usr/bin/python3 examples/new_variant.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # the reference and its checks

import numpy as np  # noqa: E402

import gsa  # noqa: E402
import gsa_checks  # noqa: E402
from gsa.dsl import maximum, sqrt, tanh, to_float  # noqa: E402

CAP = 5.0
K_BASE, K_MIN, K_MAX = 16, 4, 96
L = 320


def soft_cap(score, b, h, q_idx, kv_idx):
    return CAP * tanh(score / CAP)


def sqrt_inverse_with_floor(mean, var, v_bar, t):
    return maximum(K_BASE * sqrt(v_bar / var), to_float(t + 1) / 8.0)


# The same two functions written directly with numpy, for a second opinion.
def numpy_soft_cap(score, b, h, q_idx, kv_idx):
    return CAP * np.tanh(score / CAP)


def numpy_policy(mean, var, v_bar, t):
    return max(K_BASE * np.sqrt(v_bar / var), (t + 1) / 8.0)


def main():
    print("score_mod region:\n  " + gsa.dsl.trace(soft_cap, "score_mod").text)
    print("policy_fn region:\n  " + gsa.dsl.trace(sqrt_inverse_with_floor, "policy_fn").text)
    rng = np.random.default_rng(31)
    x = gsa_checks.random_core_inputs(rng, B=1, L=L, n_h=4, n_kv=2, d=32, H_I=4, d_I=16)
    # scale 1 instead of 1/sqrt(d): raw scores reach +-15, where the cap acts.
    options = dict(k_base=K_BASE, k_min=K_MIN, k_max=K_MAX, training=True, running_var=0.0,
                   scale=1.0)
    outputs = gsa.functional.gated_sparse_attention(
        **x, **options, policy=sqrt_inverse_with_floor, score_mod=soft_cap)

    failures = 0
    for label, policy, score_mod in (("the same functions on numpy", sqrt_inverse_with_floor,
                                      soft_cap),
                                     ("an independent numpy version", numpy_policy,
                                      numpy_soft_cap)):
        try:
            expected = gsa_checks.check_core(outputs, x, **options, policy=policy,
                                             score_mod=score_mod)
            print(f"against the float64 reference ({label}): ok "
                  f"(o rel. error {expected['errors']['o']:.1e})")
        except gsa_checks.Mismatch as mismatch:
            print(f"against the float64 reference ({label}): MISMATCH: {mismatch}")
            failures += 1

    counts = outputs[3][0]
    t = np.arange(L)
    floor_holds = bool(np.all(counts >= np.minimum(np.floor((t + 1) / 8.0), K_MAX)))
    print(f"budget floor (t + 1) / 8 holds: {floor_holds}; k_t in [{counts.min()}, "
          f"{counts.max()}], mean {counts.mean():.1f}")
    failures += not floor_holds

    uncapped = gsa.functional.gated_sparse_attention(**x, **options,
                                                     policy=sqrt_inverse_with_floor)
    change = np.linalg.norm(outputs[0] - uncapped[0]) / np.linalg.norm(uncapped[0])
    print(f"soft-capping changes the output by {change:.1%} (relative)")
    failures += not change > 1e-2
    print("new_variant: " + ("FAILED" if failures else "matches the float64 reference"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
