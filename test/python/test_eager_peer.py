"""bench/eager_gsa.py (issue 6's eager PyTorch peer) against the float64
reference: the same selected sets, budgets, outputs and lse (runs where
torch is installed; CPU tensors)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import gsa_reference as ref

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from eager_gsa import gsa_forward_eager  # noqa: E402


@pytest.mark.parametrize("policy,chunks", [("inverse", (32, 8)), ("fixed", (100, 100)),
                                           ("proportional", (17, 5))])
def test_eager_peer_matches_the_reference(policy, chunks):
    rng = np.random.default_rng(7)
    B, L, NH, NKV, D, H, DI = 2, 90, 4, 2, 16, 2, 8
    x = {n: rng.standard_normal(s) for n, s in dict(
        q=(B, L, NH, D), k=(B, L, NKV, D), v=(B, L, NKV, D), qi=(B, L, H, DI),
        ki=(B, L, DI), wi=(B, L, H), bi=(H,), gv=(B, L, NKV, D), go=(B, L, NH, D)).items()}
    budget = dict(k_base=12, k_min=4, k_max=24)
    want = ref.gated_sparse_attention(**x, **budget, policy=policy, running_var=0.01)
    t = {n: torch.tensor(a, dtype=torch.float32) for n, a in x.items()}
    o, lse, idx, cnt = gsa_forward_eager(**t, running_var=0.01, policy=policy, **budget,
                                         index_chunk=chunks[0], attend_chunk=chunks[1])
    np.testing.assert_array_equal(cnt.numpy(), want["counts"])
    assert ref.same_sets(idx.numpy(), cnt.numpy(), want["indices"], want["counts"]).all()
    assert (idx.numpy() >= 0).sum() == want["counts"].sum(), "-1 beyond each count"
    assert ref.relative_error(o.numpy(), want["o"]) < 1e-5
    assert ref.relative_error(lse.numpy(), want["lse"]) < 1e-5


def test_eager_peer_refuses_a_zero_running_variance():
    """SPEC: a zero V_run in inference mode is an error (the fixed policy
    does not read it)."""
    t = {n: torch.randn(*s) for n, s in dict(
        q=(1, 8, 2, 4), k=(1, 8, 1, 4), v=(1, 8, 1, 4), qi=(1, 8, 1, 4), ki=(1, 8, 4),
        wi=(1, 8, 1), bi=(1,), gv=(1, 8, 1, 4), go=(1, 8, 2, 4)).items()}
    with pytest.raises(ValueError, match="positive running variance"):
        gsa_forward_eager(**t, running_var=0.0, policy="inverse", k_base=4, k_min=1, k_max=8)
    o, *_ = gsa_forward_eager(**t, running_var=0.0, policy="fixed", k_base=4, k_min=1, k_max=8)
    assert torch.isfinite(o).all()
