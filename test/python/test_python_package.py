"""The Python package (python/gsa) on the CPU path, against the reference."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import gsa  # noqa: E402
import gsa_reference as ref  # noqa: E402


def inputs(rng, B=1, L=40, NH=4, NKV=2, D=32, H=2, DI=8):
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    return dict(q=n(B, L, NH, D), k=n(B, L, NKV, D), v=n(B, L, NKV, D), qi=n(B, L, H, DI),
                ki=n(B, L, DI), wi=n(B, L, H), bi=(0.5 * n(H)), gv=n(B, L, NKV, D),
                go=n(B, L, NH, D))


@pytest.mark.parametrize("training", [True, False])
def test_gated_sparse_attention_matches_the_reference(training):
    x = inputs(np.random.default_rng(7))
    kw = dict(k_base=8, k_min=4, k_max=16, policy="inverse", training=training,
              running_var=0.0 if training else 0.03)
    out = gsa.functional.gated_sparse_attention(**x, **kw)
    o, lse, idx, cnt = out[:4]
    expected = ref.gated_sparse_attention(x["q"], x["k"], x["v"], x["qi"], x["ki"], x["wi"],
                                          x["bi"], x["gv"], x["go"], **kw)
    assert np.array_equal(cnt, expected["counts"])
    assert ref.same_sets(idx, cnt, expected["indices"], expected["counts"]).all()
    assert ref.relative_error(o, expected["o"]) < 1e-5
    assert ref.relative_error(lse, expected["lse"]) < 1e-5
    if training:
        assert np.isclose(out[4], expected["new_running_var"], rtol=1e-5)
    else:
        assert len(out) == 4


def test_repeated_calls_hit_the_cache():
    x = inputs(np.random.default_rng(8), L=24)
    rt = gsa.functional.runtime()
    before = rt.cache_stats()
    for _ in range(3):
        gsa.functional.gated_sparse_attention(**x, k_base=8, k_min=8, k_max=8, policy="fixed")
    after = rt.cache_stats()
    assert after["misses"] - before["misses"] == 1
    assert after["hits"] - before["hits"] == 2


def test_sparse_attention_on_numpy():
    rng = np.random.default_rng(9)
    x = inputs(rng, L=10)
    idx = np.full((1, 10, 4), -1, np.int64)
    for t in range(10):
        sel = np.sort(rng.choice(t + 1, size=min(4, t + 1), replace=False))
        idx[0, t, :len(sel)] = sel
    cnt = np.minimum(np.arange(1, 11), 4)[None]
    o, lse = gsa.functional.sparse_attention(x["q"], x["k"], x["v"], idx, cnt, x["gv"], x["go"])
    o_ref, lse_ref = ref.sparse_attention(x["q"], x["k"], x["v"], idx, cnt, x["gv"], x["go"])
    assert ref.relative_error(o, o_ref) < 1e-5 and ref.relative_error(lse, lse_ref) < 1e-5


def test_bad_inputs_name_the_argument():
    x = inputs(np.random.default_rng(10))
    with pytest.raises(ValueError, match="'ki' must have rank 3"):
        gsa.functional.gated_sparse_attention(**{**x, "ki": x["ki"][None]}, policy="fixed",
                                              k_base=4, k_min=4, k_max=4)
    with pytest.raises(ValueError, match="'q' has unsupported dtype int32"):
        gsa.functional.gated_sparse_attention(**{**x, "q": x["q"].astype(np.int32)},
                                              policy="fixed", k_base=4, k_min=4, k_max=4)
    with pytest.raises(ValueError, match="reads the running variance"):
        gsa.functional.gated_sparse_attention(**x, policy="inverse", k_base=4, k_min=4, k_max=8)
    with pytest.raises(gsa.GsaError, match="'k' dim 1 \\(L\\) is 39, but 'qi' dim 1 \\(L\\) is 40"):
        gsa.functional.gated_sparse_attention(**{**x, "k": x["k"][:, :39]}, policy="fixed",
                                              k_base=4, k_min=4, k_max=4)
    with pytest.raises(gsa.GsaError, match="must be finite and positive"):
        gsa.functional.gated_sparse_attention(**x, policy="inverse", running_var=0.0,
                                              k_base=4, k_min=4, k_max=8)
