"""The Python package (python/gsa) on the CPU path, against the reference."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import gsa  # noqa: E402
import gsa_reference as ref  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_kernel_memo(monkeypatch):
    """Each test starts with an empty memo of compiled kernels, so that its
    counts do not depend on which tests ran before."""
    monkeypatch.setattr(gsa.functional, "_KERNELS", type(gsa.functional._KERNELS)())


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


def _counting_builder(monkeypatch):
    """Counts the program texts gsa.functional builds for the whole core."""
    calls = []
    real = gsa.program.gated_sparse_attention

    def gated_sparse_attention(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(gsa.program, "gated_sparse_attention", gated_sparse_attention)
    return calls


def test_repeated_plain_calls_reuse_the_kernel(monkeypatch):
    # Options that are all plain values: the second and third calls take the
    # kernel from the Python layer's memo (no program text, no runtime
    # lookup) and give the same outputs; another k_base is another kernel.
    calls = _counting_builder(monkeypatch)
    x = inputs(np.random.default_rng(9), L=20)
    kw = dict(k_base=8, k_min=8, k_max=8, policy="fixed")
    first = gsa.functional.gated_sparse_attention(**x, **kw)
    for _ in range(2):
        again = gsa.functional.gated_sparse_attention(**x, **kw)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)
    assert len(calls) == 1
    other = gsa.functional.gated_sparse_attention(**x, **dict(kw, k_base=4, k_min=4, k_max=4))
    assert len(calls) == 2
    assert other[3].max() == 4 and first[3].max() == 8


def test_a_new_runtime_starts_afresh(monkeypatch):
    # The memo belongs to the runtime that compiled its kernels: after
    # functional's runtime is replaced, a call compiles in the new one.
    x = inputs(np.random.default_rng(12), L=20)
    kw = dict(k_base=8, k_min=8, k_max=8, policy="fixed")
    gsa.functional.gated_sparse_attention(**x, **kw)
    monkeypatch.setattr(gsa.functional, "_runtime", None)
    gsa.functional.gated_sparse_attention(**x, **kw)
    assert gsa.functional.runtime().cache_stats() == {"hits": 0, "misses": 1, "disk_hits": 0}


def test_python_functions_are_traced_every_call(monkeypatch):
    # A Python function among the options may compute something else next
    # time (a global it reads): its program is built again on every call.
    calls = _counting_builder(monkeypatch)
    x = inputs(np.random.default_rng(10), L=20)
    cap = [3.0]
    kw = dict(k_base=8, k_min=8, k_max=8, policy="fixed",
              score_mod=lambda s, b, h, q, kv: gsa.dsl.minimum(s, cap[0]))
    a = gsa.functional.gated_sparse_attention(**x, **kw)
    cap[0] = -1.0
    c = gsa.functional.gated_sparse_attention(**x, **kw)
    assert len(calls) == 2
    assert not np.array_equal(a[0], c[0])


def test_the_kernel_memo_is_bounded(monkeypatch):
    # Least recently used out first: with room for two, a third
    # specialisation drops the oldest, which is then built again.
    monkeypatch.setattr(gsa.functional, "_KERNELS_MAX", 2)
    calls = _counting_builder(monkeypatch)
    x = inputs(np.random.default_rng(11), L=20)
    run = lambda k: gsa.functional.gated_sparse_attention(**x, k_base=k, k_min=k, k_max=k,
                                                          policy="fixed")
    run(4), run(8), run(4), run(12)     # 12 drops 8, the least recently used
    assert len(calls) == 3 and len(gsa.functional._KERNELS) == 2
    run(4)
    assert len(calls) == 3
    run(8)
    assert len(calls) == 4


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
    # Training updates the running variance: NaN, infinity or a negative
    # value would stay wrong through every update.
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(gsa.GsaError, match="in training mode the running variance is "
                                               "updated from each batch's and must be finite"):
            gsa.functional.gated_sparse_attention(**x, policy="inverse", running_var=bad,
                                                  training=True, k_base=4, k_min=4, k_max=8)
    with pytest.raises(ValueError, match="k_base must be an integer, got 4.5"):
        gsa.functional.gated_sparse_attention(**x, policy="fixed", k_base=4.5, k_min=4, k_max=8)
    # NumPy integers are integers.
    out = gsa.functional.gated_sparse_attention(**x, policy="fixed", k_base=np.int64(4),
                                                k_min=np.int32(4), k_max=4)
    assert out[3].max() == 4
    # A non-finite scale would make every output NaN: refused by the op's
    # verifier, located in the program.
    with pytest.raises(gsa.GsaError, match="'gsa.gated_sparse_attention' op scale must be a "
                                           "finite number, but is NaN"):
        gsa.functional.gated_sparse_attention(**x, policy="fixed", k_base=4, k_min=4, k_max=4,
                                              scale=float("nan"))
    with pytest.raises(gsa.GsaError, match=r"index_scale must be a finite number, but is \+inf"):
        gsa.functional.gated_sparse_attention(**x, policy="fixed", k_base=4, k_min=4, k_max=4,
                                              index_scale=float("inf"))


@pytest.mark.parametrize("form", ["gsa", "dsa", "traced", "no weights"])
def test_indexer_scores_match_the_reference(form):
    x = inputs(np.random.default_rng(12), B=2, L=23, H=4, DI=16)
    kw = {"gsa": dict(wi=x["wi"], bi=x["bi"]),
          "dsa": dict(wi=x["wi"], activation="relu", weighting="identity", scale=0.5),
          "traced": dict(wi=x["wi"], bi=x["bi"], activation=lambda s, h: s * s + h,
                         weighting=lambda w, h: 2.0 * w),
          "no weights": dict(bi=x["bi"])}[form]
    scores = gsa.functional.indexer(x["qi"], x["ki"], **kw)
    expected = ref.indexer_scores(x["qi"], x["ki"], **kw)
    assert scores.shape == (2, 23, 23) and scores.dtype == np.float32
    above = ~np.tril(np.ones((23, 23), dtype=bool))
    assert np.isneginf(scores[:, above]).all()
    assert ref.relative_error(scores[:, ~above], expected[:, ~above]) < 1e-5


def test_indexer_bad_inputs_name_the_argument():
    x = inputs(np.random.default_rng(13))
    with pytest.raises(ValueError, match="'ki' must have rank 3"):
        gsa.functional.indexer(x["qi"], x["ki"][None])
    with pytest.raises(ValueError, match="activation must be one of"):
        gsa.functional.indexer(x["qi"], x["ki"], activation="tanh")
    with pytest.raises(ValueError, match="'ki' is required"):
        gsa.functional.indexer(x["qi"], None)
    with pytest.raises(gsa.GsaError, match="'gsa.indexer' op scale must be a finite number"):
        gsa.functional.indexer(x["qi"], x["ki"], scale=float("inf"))
