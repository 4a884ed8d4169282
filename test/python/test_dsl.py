"""gsa.dsl: Python functions traced into the gsa ops' regions.

Traced regions are compiled and run on the CPU path through
gsa.functional and compared with the float64 reference (gsa_reference.py),
which evaluates an independent numpy formulation of the same function (and,
where noted, the DSL function itself, which computes with numpy when given
numbers). Errors must name the function, the operation and the line.
"""

import inspect
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import gsa  # noqa: E402
from gsa import dsl  # noqa: E402
from gsa.dsl import (clamp, exp, floor, log, maximum, minimum, relu, sigmoid,  # noqa: E402
                     softplus, sqrt, tanh, to_float, where)

import gsa_checks as checks  # noqa: E402
import gsa_reference as ref  # noqa: E402

HERE = Path(__file__).name


def attention_inputs(seed, B=1, L=24, n_h=4, n_kv=2, d=16):
    rng = np.random.default_rng(seed)
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    idx, cnt = checks.full_causal_selection(B, L)
    return dict(q=n(B, L, n_h, d), k=n(B, L, n_kv, d), v=n(B, L, n_kv, d),
                indices=idx, counts=cnt, gv=n(B, L, n_kv, d), go=n(B, L, n_h, d))


def check_score_mod(fn, numpy_fn, seed, scale=None, self_reference=True, **shape):
    x = attention_inputs(seed, **shape)
    o, lse = gsa.functional.sparse_attention(**x, scale=scale, score_mod=fn)
    # The independent numpy version, then the function itself on numbers.
    for reference_fn in (numpy_fn, fn) if self_reference else (numpy_fn,):
        o_ref, lse_ref = ref.sparse_attention(x["q"], x["k"], x["v"], x["indices"], x["counts"],
                                              x["gv"], x["go"], scale=scale,
                                              score_mod=reference_fn)
        assert ref.relative_error(o, o_ref) < 1e-5
        assert ref.relative_error(lse, lse_ref) < 1e-5
    return o, lse


# ---------------------------------------------------------------------------
# score_mod: traced, compiled, run, compared
# ---------------------------------------------------------------------------

SCORE_MODS = {
    "soft_cap": (lambda s, b, h, q, kv: 2.0 * tanh(s / 2.0),
                 lambda s, b, h, q, kv: 2.0 * np.tanh(s / 2.0)),
    "sliding_window": (lambda s, b, h, q, kv: where(q - kv > 5, -math.inf, s),
                       lambda s, b, h, q, kv: -np.inf if q - kv > 5 else s),
    "alibi_per_head": (lambda s, b, h, q, kv: s - (to_float(h) + 1.0) / 8.0 * (q - kv),
                       lambda s, b, h, q, kv: s - (h + 1.0) / 8.0 * (q - kv)),
    "head_switch": (lambda s, b, h, q, kv: where((h == 0) | (h == 3), s * 2.0, -s),
                    lambda s, b, h, q, kv: s * 2.0 if h in (0, 3) else -s),
    "blocks_by_floordiv": (lambda s, b, h, q, kv: where(q // 8 == kv // 8, s + 1.0, s),
                           lambda s, b, h, q, kv: s + 1.0 if q // 8 == kv // 8 else s),
    "python_mod_of_negative": (lambda s, b, h, q, kv: s + to_float((kv - q) % 3) * 0.5
                               - to_float((kv - q) // -4) * 0.25,
                               lambda s, b, h, q, kv: s + ((kv - q) % 3) * 0.5
                               - ((kv - q) // -4) * 0.25),
    "negative_index_to_float": (lambda s, b, h, q, kv: s + 0.05 * to_float(kv - q - h),
                                lambda s, b, h, q, kv: s + 0.05 * (kv - q - h)),
    "true_division_of_indices": (lambda s, b, h, q, kv: s + kv / (q + 1),
                                 lambda s, b, h, q, kv: s + kv / (q + 1)),
    "powers_and_abs": (lambda s, b, h, q, kv: s ** 2 / 4.0 - abs(s) + (abs(s) + 1.0) ** -2
                       + dsl.pow(abs(s) + 1.0, 0.5) + 1.5 ** s + (q - kv) ** 2 / 100.0,
                       lambda s, b, h, q, kv: s ** 2 / 4.0 - abs(s) + 1.0 / (abs(s) + 1.0) ** 2
                       + np.sqrt(abs(s) + 1.0) + np.exp(s * np.log(1.5)) + (q - kv) ** 2 / 100.0),
    "min_max_clamp": (lambda s, b, h, q, kv: clamp(s, -1.0, 1.0) + maximum(s, 0.5)
                      - minimum(q, kv),
                      lambda s, b, h, q, kv: min(max(s, -1.0), 1.0) + max(s, 0.5)
                      - min(q, kv)),
    "exp_log_sqrt": (lambda s, b, h, q, kv: log(exp(s) + 1.0) + sqrt(to_float(q - kv)),
                     lambda s, b, h, q, kv: np.log(np.exp(s) + 1.0) + np.sqrt(q - kv)),
    "numpy_ufuncs_on_tracers": (lambda s, b, h, q, kv: np.tanh(s) * np.float32(3.0)
                                + np.where(s > 0, 1.0, 0.0),
                                lambda s, b, h, q, kv: 3.0 * np.tanh(s) + (1.0 if s > 0 else 0.0)),
    "constant": (lambda s, b, h, q, kv: 0.0, lambda s, b, h, q, kv: 0.0),
    "other_math": (lambda s, b, h, q, kv: s + 0.3 * dsl.sin(s) + 0.2 * dsl.cos(to_float(h))
                   + dsl.rsqrt(abs(s) + 1.0) + dsl.log1p(abs(s)) + dsl.ceil(to_float(q) / 4.0)
                   - floor(to_float(kv) / 3.0) + sigmoid(s) + relu(s - 1.0) + softplus(-s),
                   lambda s, b, h, q, kv: s + 0.3 * np.sin(s) + 0.2 * np.cos(h)
                   + 1.0 / np.sqrt(abs(s) + 1.0) + np.log1p(abs(s)) + np.ceil(q / 4.0)
                   - np.floor(kv / 3.0) + 1.0 / (1.0 + np.exp(-s)) + max(s - 1.0, 0.0)
                   + np.log1p(np.exp(-s))),
    "conditions_combined": (lambda s, b, h, q, kv: where(
                                dsl.logical_not(kv == 0)
                                & dsl.logical_or((s > 0) ^ (h == 1),
                                                 dsl.logical_and(h == 2, q == kv)),
                                s, s - 2.0),
                            lambda s, b, h, q, kv: s if (kv != 0 and (((s > 0) != (h == 1))
                                                                      or (h == 2 and q == kv)))
                            else s - 2.0),
    "invert_on_tracers": (lambda s, b, h, q, kv: where(~(q == kv) | (h == 0), s, s + 1.0),
                          lambda s, b, h, q, kv: s if (q != kv or h == 0) else s + 1.0),
}


# `~` is bitwise on Python bools (~True == -2): a function using it serves
# only as a traced region, not as its own reference.
TRACED_ONLY = {"invert_on_tracers"}


@pytest.mark.parametrize("name", sorted(SCORE_MODS))
def test_score_mod_matches_the_reference(name):
    fn, numpy_fn = SCORE_MODS[name]
    check_score_mod(fn, numpy_fn, seed=sorted(SCORE_MODS).index(name), scale=0.25,
                    self_reference=name not in TRACED_ONLY)


def test_score_mod_changes_the_result():
    # The test above could pass if score_mod were ignored and it were the
    # identity: a capping score_mod must differ from no score_mod.
    x = attention_inputs(3)
    plain, _ = gsa.functional.sparse_attention(**x, scale=2.0)
    capped, _ = gsa.functional.sparse_attention(
        **x, scale=2.0, score_mod=lambda s, b, h, q, kv: 2.0 * tanh(s / 2.0))
    assert ref.relative_error(capped, plain) > 1e-2


def test_score_mod_masking_a_whole_row_gives_zero_and_minus_inf():
    x = attention_inputs(4, L=8)
    o, lse = gsa.functional.sparse_attention(
        **x, score_mod=lambda s, b, h, q, kv: where(q == 5, -math.inf, s))
    assert np.all(o[:, 5] == 0) and np.all(lse[:, 5] == -np.inf)
    assert np.all(np.isfinite(lse[:, :5]))


def test_small_and_large_attribute_literals():
    # repr(1e-05) has no '.', which MLIR's float literals need.
    x = attention_inputs(5, L=10)
    for scale in (1e-5, 3.5e-3):
        o, lse = gsa.functional.sparse_attention(**x, scale=scale)
        o_ref, lse_ref = ref.sparse_attention(x["q"], x["k"], x["v"], x["indices"],
                                              x["counts"], x["gv"], x["go"], scale=scale)
        assert ref.relative_error(o, o_ref) < 1e-5 and ref.relative_error(lse, lse_ref) < 1e-5


def test_format_f32_round_trips():
    for value in (1e-5, 3.0e38, -0.0, 0.1, 1.0 / 3.0, 2048.0, 1e-45):
        text = dsl.format_f32(value)
        assert "." in text and np.float32(float(text)) == np.float32(value), text
    assert dsl.format_f32(math.inf) == "0x7F800000"
    assert dsl.format_f32(-math.inf) == "0xFF800000"


# ---------------------------------------------------------------------------
# Indexer activation and weighting, custom policy: in the whole core
# ---------------------------------------------------------------------------

def leaky(x):
    return where(x > 0, x, 0.1 * x)


def per_head_sigmoid(x, head):
    return sigmoid(x) * (1.0 + to_float(head))


@pytest.mark.parametrize("activation,weighting,numpy_activation,numpy_weighting", [
    (softplus, "sigmoid", lambda x, j: np.log1p(np.exp(x)), "sigmoid"),
    (per_head_sigmoid, leaky, lambda x, j: (1.0 + j) / (1.0 + np.exp(-x)),
     lambda x, j: np.where(x > 0, x, 0.1 * x)),
    (relu, lambda w: w, "relu", "identity"),       # DSA, written in the DSL
])
def test_indexer_functions_match_the_reference(activation, weighting, numpy_activation,
                                                numpy_weighting):
    x = checks.random_core_inputs(np.random.default_rng(11), L=48)
    kw = dict(k_base=8, k_min=4, k_max=16, policy="fixed")
    out = gsa.functional.gated_sparse_attention(**x, **kw, activation=activation,
                                                weighting=weighting)
    checks.check_core(out, x, **kw, activation=numpy_activation, weighting=numpy_weighting)
    checks.check_core(out, x, **kw, activation=activation, weighting=weighting)


def test_indexer_fn_is_another_name_for_activation():
    x = checks.random_core_inputs(np.random.default_rng(12), L=30)
    kw = dict(k_base=6, k_min=6, k_max=6, policy="fixed")
    a = gsa.functional.gated_sparse_attention(**x, **kw, indexer_fn=relu)
    b = gsa.functional.gated_sparse_attention(**x, **kw, activation=relu)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="'activation' or 'indexer_fn'"):
        gsa.functional.gated_sparse_attention(**x, **kw, activation="relu", indexer_fn=relu)


def sqrt_policy(mean, var, v_bar, t):
    """k_t = 12 sqrt(V_bar / var_t), at least a quarter of the visible context."""
    return maximum(12.0 * sqrt(v_bar / var), to_float(t + 1) / 4.0)


@pytest.mark.parametrize("training", [True, False])
def test_custom_policy_matches_the_reference(training):
    x = checks.random_core_inputs(np.random.default_rng(13), L=64)
    kw = dict(k_base=12, k_min=4, k_max=32, training=training,
              running_var=0.0 if training else 0.004)
    out = gsa.functional.gated_sparse_attention(**x, **kw, policy=sqrt_policy)
    expected = checks.check_core(
        out, x, **kw, policy=lambda m, v, vb, t: max(12.0 * np.sqrt(vb / v), (t + 1) / 4.0))
    checks.check_core(out, x, **kw, policy=sqrt_policy)
    # The floor of the policy is visible in the budgets of late rows.
    cnt = out[3]
    t = np.arange(64)
    assert np.all(cnt[0, 40:] >= np.minimum(np.floor((t[40:] + 1) / 4.0), 32))
    assert len(np.unique(cnt)) > 3, "an adaptive policy gives varied budgets"
    assert np.mean(cnt == expected["counts"]) > 0.9


def test_custom_policy_using_the_mean():
    # A policy reading only the row mean (scores lie in (0, H_I) = (0, 2)).
    x = checks.random_core_inputs(np.random.default_rng(14), L=40)
    kw = dict(k_base=8, k_min=2, k_max=16, training=True, running_var=0.0)
    policy = lambda mean, var, v_bar, t: 8.0 * mean * mean
    out = gsa.functional.gated_sparse_attention(**x, **kw, policy=policy)
    checks.check_core(out, x, **kw, policy=lambda m, v, vb, t: 8.0 * m * m)


def test_score_mod_in_the_whole_core():
    x = checks.random_core_inputs(np.random.default_rng(15), L=40)
    kw = dict(k_base=8, k_min=4, k_max=16, policy="inverse", training=True, running_var=0.0)
    mod = lambda s, b, h, q, kv: 1.5 * tanh(s / 1.5) - 0.05 * to_float(q - kv)
    out = gsa.functional.gated_sparse_attention(**x, **kw, score_mod=mod)
    checks.check_core(out, x, **kw,
                      score_mod=lambda s, b, h, q, kv: 1.5 * np.tanh(s / 1.5) - 0.05 * (q - kv))


def test_programs_are_cached_per_traced_text():
    x = checks.random_core_inputs(np.random.default_rng(16), L=20)
    kw = dict(k_base=4, k_min=4, k_max=4, policy="fixed")
    rt = gsa.functional.runtime()

    def capped(cap):
        return lambda s, b, h, q, kv: cap * tanh(s / cap)

    before = rt.cache_stats()
    a = gsa.functional.gated_sparse_attention(**x, **kw, score_mod=capped(3.0))
    gsa.functional.gated_sparse_attention(**x, **kw, score_mod=capped(3.0))
    c = gsa.functional.gated_sparse_attention(**x, **kw, score_mod=capped(0.5))
    after = rt.cache_stats()
    assert after["misses"] - before["misses"] == 2   # two distinct texts
    assert after["hits"] - before["hits"] == 1
    assert not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------------------
# The traced text
# ---------------------------------------------------------------------------

def test_region_text_and_signature():
    region = dsl.trace(lambda s, b, h, q_idx, kv_idx: where(q_idx - kv_idx > 256, -math.inf, s),
                       "score_mod")
    text = region.text
    assert "^bb0(%score: f32, %b: index, %h: index, %q_idx: index, %kv_idx: index)" in text
    assert "arith.subi %q_idx, %kv_idx : index" in text
    assert "arith.cmpi sgt" in text and "arith.constant 0xFF800000 : f32" in text
    assert "arith.select" in text and text.rstrip().endswith("}")
    assert "gsa.yield" in text


def test_only_live_ops_are_emitted():
    def fn(x, head):
        unused = exp(x) * 3.0  # noqa: F841 - dead code must not reach the region
        return sigmoid(x)
    text = dsl.trace(fn, "activation").text
    assert "math.exp" not in text and "gsa.sigmoid %x : f32" in text


def test_index_values_become_floats_when_mixed():
    text = dsl.trace(lambda x, head: x + head, "activation").text
    assert "arith.index_cast %head : index to i64" in text
    assert "arith.sitofp" in text and "arith.addf" in text


def test_activation_may_ignore_the_head():
    assert "gsa.sigmoid %x" in dsl.trace(sigmoid, "activation").text
    assert "math.exp %x" in dsl.trace(np.exp, "weighting").text


def test_region_objects_are_accepted():
    x = attention_inputs(6, L=12)
    region = dsl.trace(lambda s, b, h, q, kv: 0.5 * s, "score_mod")
    o, _ = gsa.functional.sparse_attention(**x, score_mod=region)
    o_ref, _ = ref.sparse_attention(x["q"], x["k"], x["v"], x["indices"], x["counts"],
                                    x["gv"], x["go"], score_mod=lambda s, *_: 0.5 * s)
    assert ref.relative_error(o, o_ref) < 1e-5
    with pytest.raises(ValueError, match="cannot serve as activation"):
        gsa.program.region("activation", region, "activation")


# ---------------------------------------------------------------------------
# The same functions on numpy
# ---------------------------------------------------------------------------

def test_dsl_functions_compute_with_numpy_on_arrays():
    x = np.linspace(-50.0, 50.0, 101)
    assert np.allclose(sigmoid(x), 1.0 / (1.0 + np.exp(-x)))
    assert np.allclose(softplus(x), np.logaddexp(0.0, x))
    assert np.array_equal(relu(x), np.maximum(x, 0.0))
    assert np.array_equal(clamp(x, -1.0, 2.0), np.clip(x, -1.0, 2.0))
    assert np.array_equal(where(x > 0, x, -x), np.abs(x))
    assert np.array_equal(dsl.abs(x), np.abs(x)) and np.array_equal(floor(x), np.floor(x))
    assert to_float(3) == 3.0 and isinstance(to_float(3), np.floating)
    assert SCORE_MODS["soft_cap"][0](50.0, 0, 0, 3, 1) == pytest.approx(2.0 * np.tanh(25.0))


# ---------------------------------------------------------------------------
# Errors: the function, the operation, the line
# ---------------------------------------------------------------------------

def line_of(fn, text):
    """The file line in fn's source that contains `text`."""
    source, first = inspect.getsourcelines(fn)
    for offset, line in enumerate(source):
        if text in line:
            return first + offset
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def branching_mod(score, b, h, q_idx, kv_idx):
    if q_idx - kv_idx > 4:
        return -math.inf
    return score


def boolean_operator_policy(mean, var, v_bar, t):
    return 8.0 if var > 0 and v_bar > 0 else 16.0


def math_module_activation(x, head):
    y = x * 2.0
    return math.sin(y)


def indexing_activation(x, head):
    table = [1.0, 2.0, 3.0, 4.0]
    return x * table[head]


def numpy_without_counterpart(x, head):
    return np.arctan(x)


def builtin_max_mod(score, b, h, q_idx, kv_idx):
    return max(score, 0.0)


@pytest.mark.parametrize("fn,role,operation,marker", [
    (branching_mod, "score_mod", "Python control flow", "if q_idx - kv_idx > 4"),
    (boolean_operator_policy, "policy_fn", "Python control flow", "var > 0 and"),
    (math_module_activation, "activation", "converting a traced value to a Python number",
     "math.sin(y)"),
    (indexing_activation, "activation", "use as an integer index", "table[head]"),
    (numpy_without_counterpart, "weighting", "numpy.arctan", "np.arctan(x)"),
    (builtin_max_mod, "score_mod", "Python control flow", "max(score, 0.0)"),
])
def test_untraceable_code_names_function_operation_and_line(fn, role, operation, marker):
    with pytest.raises(dsl.DSLError) as err:
        dsl.trace(fn, role)
    message = str(err.value)
    assert f"{role} '{fn.__name__}'" in message
    assert operation in message
    assert f"{HERE}:{line_of(fn, marker)}" in message, message
    assert marker.split("(")[0].strip() in message   # the source line is quoted


def test_errors_reach_the_functional_api():
    x = attention_inputs(7, L=8)
    with pytest.raises(gsa.DSLError, match=f"score_mod 'branching_mod'.*{HERE}:"
                                            f"{line_of(branching_mod, 'if q_idx')}"):
        gsa.functional.sparse_attention(**x, score_mod=branching_mod)
    assert issubclass(gsa.DSLError, ValueError)


def test_bad_signatures_and_results():
    with pytest.raises(dsl.DSLError, match=r"score_mod '.*' \(defined at .*test_dsl.py:\d+\) "
                                           r"must take 5 argument\(s\) \(score, b, h, q_idx, "
                                           r"kv_idx\), but takes 2"):
        dsl.trace(lambda s, b: s, "score_mod")
    with pytest.raises(dsl.DSLError, match="must take 4 argument"):
        dsl.trace(lambda mean, var: mean, "policy_fn")
    with pytest.raises(dsl.DSLError, match="returned a condition"):
        dsl.trace(lambda x: x > 0, "activation")
    with pytest.raises(dsl.DSLError, match="returned NoneType"):
        dsl.trace(lambda x, head: None, "activation")
    with pytest.raises(dsl.DSLError, match="arithmetic on a condition"):
        dsl.trace(lambda x: (x > 0) * 2.0, "activation")
    with pytest.raises(dsl.DSLError, match="integer division by zero"):
        dsl.trace(lambda s, b, h, q, kv: to_float(q // 0), "score_mod")
    with pytest.raises(dsl.DSLError, match="where\\(\\) with a f32 condition"):
        dsl.trace(lambda x: where(x, 1.0, 0.0), "activation")


def test_tracers_cannot_leak_between_traces():
    leaked = []
    dsl.trace(lambda x: leaked.append(x) or x, "activation")
    with pytest.raises(dsl.DSLError, match="two different traced functions"):
        dsl.trace(lambda x: x + leaked[0], "activation")


def test_bad_names_and_options():
    x = checks.random_core_inputs(np.random.default_rng(17), L=12)
    kw = dict(k_base=4, k_min=4, k_max=4)
    with pytest.raises(ValueError, match="policy must be one of"):
        gsa.functional.gated_sparse_attention(**x, **kw, policy="topp")
    with pytest.raises(ValueError, match="policy 'custom' needs its function"):
        gsa.functional.gated_sparse_attention(**x, **kw, policy="custom", training=True)
    with pytest.raises(ValueError, match="activation must be one of .* or a Python function"):
        gsa.functional.gated_sparse_attention(**x, **kw, policy="fixed", activation="gelu")
    with pytest.raises(ValueError, match="score_mod must be a Python function"):
        gsa.functional.gated_sparse_attention(**x, **kw, policy="fixed", score_mod=3)
    with pytest.raises(ValueError, match="policy 'custom' in inference mode reads the running"):
        gsa.functional.gated_sparse_attention(**x, **kw, policy=sqrt_policy)
    with pytest.raises(ValueError, match="unknown region role"):
        dsl.trace(sigmoid, "gate")
