"""The float64 reference checked against hand computations, so that the
CPU-path tests rest on something verified independently."""

import numpy as np
import pytest

import gsa_reference as ref


def test_indexer_tiny_example_by_hand():
    # One head, d_I = 1, scale 1: x = qi[t] * ki[s] + b.
    qi = np.array([1.0, 2.0, -1.0]).reshape(1, 3, 1, 1)
    ki = np.array([0.5, -1.0, 2.0]).reshape(1, 3, 1)
    wi = np.zeros((1, 3, 1))
    bi = np.array([0.25])
    I = ref.indexer_scores(qi, ki, wi, bi, scale=1.0)
    s = lambda x: 1 / (1 + np.exp(-x))
    assert np.isclose(I[0, 0, 0], 0.5 * s(0.5 + 0.25))
    assert np.isclose(I[0, 1, 1], 0.5 * s(-2.0 + 0.25))
    assert np.isclose(I[0, 2, 2], 0.5 * s(-2.0 + 0.25))
    assert I[0, 0, 1] == -np.inf and I[0, 1, 2] == -np.inf


def test_dsa_relu_and_identity_weights():
    qi = np.array([1.0, -1.0]).reshape(1, 2, 1, 1)
    ki = np.array([3.0, 2.0]).reshape(1, 2, 1)
    wi = np.array([2.0, -0.5]).reshape(1, 2, 1)
    I = ref.indexer_scores(qi, ki, wi, None, 1.0, "relu", "identity")
    assert I[0, 0, 0] == 6.0
    assert I[0, 1, 0] == 0.0 and I[0, 1, 1] == 0.0


def test_population_variance():
    I = np.full((1, 3, 3), -np.inf)
    I[0, 0, 0] = 5.0
    I[0, 1, :2] = [1.0, 3.0]
    I[0, 2, :3] = [1.0, 2.0, 6.0]
    var = ref.row_variance(I)
    assert var[0, 0] == 0.0
    assert np.isclose(var[0, 1], 1.0)          # not 2.0 (sample variance)
    assert np.isclose(var[0, 2], 14.0 / 3.0)


def test_policies_and_clamps():
    var = np.array([[0.0, 0.5, 2.0, 1.0]])
    n = np.arange(1, 5)
    inv = ref.budgets(var, "inverse", 4, 2, 8, v_bar=1.0)
    assert inv.tolist() == [[min(8, 1), 2, 2, 4]]   # var 0 -> k_max, then min n_t
    prop = ref.budgets(var, "proportional", 4, 2, 8, v_bar=1.0)
    assert prop.tolist() == [[1, 2, 3, 4]]
    fixed = ref.budgets(var, "fixed", 4, 2, 8, v_bar=0.0)
    assert fixed.tolist() == [list(np.minimum(4, n))]
    nan = ref.budgets(np.ones((1, 4)) * 100, "custom", 4, 2, 8, 1.0,
                      mean=np.zeros((1, 4)), custom=lambda m, v, vb, t: np.nan)
    assert nan.tolist() == [[1, 2, 3, 4]]


def test_running_variance_rules():
    var = np.array([[1.0, 3.0]])
    assert ref.reference_variance(var, True, None) == (2.0, 2.0)
    assert ref.reference_variance(var, True, 0.0) == (2.0, 2.0)
    v_bar, new = ref.reference_variance(var, True, 4.0, momentum=0.5)
    assert v_bar == 2.0 and new == 3.0
    assert ref.reference_variance(var, False, 4.0) == (4.0, 4.0)
    with pytest.raises(ValueError):
        ref.reference_variance(var, False, 0.0)
    with pytest.raises(ValueError):
        ref.reference_variance(var, False, None)


def test_ties_prefer_larger_positions():
    I = np.full((1, 4, 4), -np.inf)
    I[0, 3, :] = [1.0, 1.0, 0.5, 1.0]
    sets = ref.select_topk(I, np.array([[1, 1, 1, 2]]))
    assert sets[0][3].tolist() == [1, 3]


def test_sparse_attention_over_everything_is_dense_causal_attention():
    rng = np.random.default_rng(0)
    B, L, NH, NKV, D = 1, 6, 4, 2, 3
    q = rng.standard_normal((B, L, NH, D))
    k = rng.standard_normal((B, L, NKV, D))
    v = rng.standard_normal((B, L, NKV, D))
    idx = np.full((B, L, L), -1)
    for t in range(L):
        idx[0, t, :t + 1] = np.arange(t + 1)
    cnt = np.arange(1, L + 1)[None]
    o, lse = ref.sparse_attention(q, k, v, idx, cnt)
    for h in range(NH):
        kv = h // 2
        s = (q[0, :, h] @ k[0, :, kv].T) / np.sqrt(D)
        s = np.where(np.tril(np.ones((L, L))) > 0, s, -np.inf)
        p = np.exp(s - s.max(1, keepdims=True))
        dense = (p / p.sum(1, keepdims=True)) @ v[0, :, kv]
        assert np.allclose(o[0, :, h], dense)
        assert np.allclose(lse[0, :, h], np.log(np.exp(s).sum(1)))


def test_gates_and_empty_rows():
    q = np.ones((1, 2, 1, 2))
    k = np.ones((1, 2, 1, 2))
    v = np.array([[[[2.0, 4.0]], [[6.0, 8.0]]]])
    gv = np.zeros_like(v)
    go = np.zeros_like(q)
    idx = np.array([[[0, -1], [-1, -1]]])
    cnt = np.array([[1, 0]])
    o, lse = ref.sparse_attention(q, k, v, idx, cnt, gv, go)
    assert np.allclose(o[0, 0, 0], [0.5, 1.0])     # v * 0.5 * 0.5
    assert np.all(o[0, 1] == 0) and lse[0, 1, 0] == -np.inf
