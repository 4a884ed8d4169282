#!/usr/bin/env python3
"""DSA (DeepSeek Sparse Attention), the paper's baseline, on the same op.

The lightning indexer with ReLU per head and raw (identity) head weights and
no bias, a fixed budget k_t = k (policy `fixed`), no gates. It is run twice:
with the builtin names ("relu", "identity") and with the same functions
written in gsa.dsl; both must give identical outputs and match the float64
reference written from SPEC.md. Exits 1 on a mismatch.

    /usr/bin/python3 examples/dsa.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "test" / "python"))  # the reference and its checks

import numpy as np  # noqa: E402

import gsa  # noqa: E402
import gsa_checks  # noqa: E402
from gsa.dsl import relu  # noqa: E402

FIXED_K = 32


def identity(weight, head):
    return weight


def main():
    rng = np.random.default_rng(7)
    x = gsa_checks.random_core_inputs(rng, B=2, L=160, n_h=8, n_kv=2, d=32, H_I=4, d_I=16,
                                      bias=False, value_gate=False, output_gate=False)
    options = dict(k_base=FIXED_K, k_min=FIXED_K, k_max=FIXED_K, policy="fixed")
    by_name = gsa.functional.gated_sparse_attention(**x, **options, activation="relu",
                                                    weighting="identity")
    in_dsl = gsa.functional.gated_sparse_attention(**x, **options, activation=relu,
                                                   weighting=identity)
    failures = 0
    same = all(np.array_equal(a, b) for a, b in zip(by_name, in_dsl))
    print(f"builtin names vs gsa.dsl functions: {'identical' if same else 'DIFFERENT'}")
    failures += not same

    counts = by_name[3]
    expected_counts = np.minimum(np.arange(1, 161), FIXED_K)
    fixed = bool(np.all(counts == expected_counts[None]))
    print(f"k_t = min({FIXED_K}, t + 1) everywhere: {fixed}")
    failures += not fixed
    try:
        expected = gsa_checks.check_core(by_name, x, **options, activation="relu",
                                         weighting="identity")
        print(f"against the float64 reference: ok (o rel. error {expected['errors']['o']:.1e})")
    except gsa_checks.Mismatch as mismatch:
        print(f"against the float64 reference: MISMATCH: {mismatch}")
        failures += 1
    print("dsa: " + ("FAILED" if failures else "matches the float64 reference"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
