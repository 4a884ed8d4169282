#!/usr/bin/env python3
"""GSA as in the paper (SPEC.md sections 1-3), through gsa.functional.

The gated lightning indexer (sigmoid per head with a per-head bias, sigmoid
query-dependent head weights), variance-adaptive top-k with the `inverse`
policy, the value gate G2 and the output gate G1. Two training steps (the
first sets the running variance, the second blends it with momentum 0.99),
then one inference step that reads it. Shapes are Table 1's proportions,
scaled down so that the float64 reference stays quick.

Each step is checked against the float64 reference written from SPEC.md
(test/python/gsa_reference.py); exits 1 on a mismatch.

    /usr/bin/python3 examples/gsa_paper.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # the reference and its checks

import numpy as np  # noqa: E402

import gsa  # noqa: E402
import gsa_checks  # noqa: E402

B, L, N_HEADS, N_KV, HEAD_DIM, H_I, D_I = 1, 256, 8, 2, 32, 4, 16
BUDGET = dict(k_base=32, k_min=8, k_max=64)


def main():
    rng = np.random.default_rng(2026)
    running_var = 0.0
    failures = 0
    for step, training in enumerate((True, True, False)):
        x = gsa_checks.random_core_inputs(rng, B=B, L=L, n_h=N_HEADS, n_kv=N_KV, d=HEAD_DIM,
                                          H_I=H_I, d_I=D_I)
        options = dict(BUDGET, policy="inverse", training=training, running_var=running_var)
        outputs = gsa.functional.gated_sparse_attention(**x, **options)
        try:
            expected = gsa_checks.check_core(outputs, x, **options)
            errors = expected["errors"]
            verdict = f"ok (o rel. error {errors['o']:.1e}, lse {errors['lse']:.1e})"
        except gsa_checks.Mismatch as mismatch:
            verdict, failures = f"MISMATCH: {mismatch}", failures + 1
        counts = outputs[3]
        mode = "training" if training else "inference"
        print(f"step {step} ({mode}, V_run in = {running_var:.5f}): k_t in "
              f"[{counts.min()}, {counts.max()}], mean {counts.mean():.1f}: {verdict}")
        if training:
            running_var = outputs[4]
    print(f"running variance after training: {running_var:.5f}")
    print("gsa_paper: " + ("FAILED" if failures else "all steps match the float64 reference"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
