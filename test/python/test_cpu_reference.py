"""The CPU path against the independent float64 reference (SPEC.md).

Every test draws fresh seeded random inputs, compiles a gsa program through
the runtime (gsa-run), and checks, per SPEC's numerical acceptance:
- counts equal the reference's k_t except where the real budget k_base * r_t
  lies within float rounding of an integer (f32 scores vs f64 reference);
- selected sets equal the reference's wherever the k-th and (k+1)-th largest
  scores differ by more than the rounding of f32, and recall >= 0.99;
- o and lse within 1e-5 relative error of the reference computed on the
  selected set that the compiled code returned;
- padding is -1 and nothing is NaN or Inf.
"""

import numpy as np
import pytest

import gsa_harness as h
import gsa_reference as ref

# Scores are f32 on the CPU path: sets must agree where the k-th and
# (k+1)-th scores are further apart than a few f32 ulps of the score range.
SCORE_TOLERANCE = 1e-5
OUTPUT_TOLERANCE = 1e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_for(core, named, activation="sigmoid", weighting="sigmoid",
                  custom_policy=None, score_mod=None):
    """Runs the float64 reference on the same inputs."""
    return ref.gated_sparse_attention(
        named["q"], named["k"], named["v"], named["qi"], named["ki"],
        named.get("wi"), named.get("bi"), named.get("gv"), named.get("go"),
        k_base=core.k_base, k_min=core.k_min, k_max=core.k_max,
        policy=core.policy,
        running_var=(float(named["running_var"]) if "running_var" in named else None),
        training=core.training,
        momentum=core.momentum if core.momentum is not None else 0.99,
        scale=core.scale, scale_I=core.index_scale, score_mod=score_mod,
        activation=activation,
        weighting=weighting if core.weights else "identity",
        custom_policy=custom_policy)


def check_core(core, seed, activation="sigmoid", weighting="sigmoid",
               custom_policy=None, score_mod=None, running_var_value=0.0,
               named=None):
    rng = np.random.default_rng(seed)
    if named is None:
        named = core.random_inputs(rng, running_var_value)
    results, _ = h.run_program(core.program(), core.input_list(named))
    o, lse, idx, cnt = results[:4]
    expected = reference_for(core, named, activation, weighting, custom_policy,
                             score_mod)

    for name, array in (("o", o), ("lse", lse)):
        assert np.all(np.isfinite(array)), f"{name} holds NaN or Inf"
    B, L, K = idx.shape
    assert (B, L, K) == (core.B, core.L, core.k_max)

    # Budgets: exact, except at floor boundaries of the real budget.
    ref_cnt = np.asarray(expected["counts"])
    differ = cnt != ref_cnt
    if differ.any():
        real = np.asarray(ref.budget_real(expected["var"], core.policy, core.k_base,
                                          core.k_min, core.k_max, expected["v_bar"],
                                          mean=ref.row_mean(expected["scores"]),
                                          custom=custom_policy))
        near_integer = np.abs(real - np.round(real)) <= 1e-4 * np.maximum(1.0, np.abs(real))
        assert np.all(near_integer[differ] & (np.abs(cnt - ref_cnt)[differ] <= 1)), (
            f"k_t differs from the reference at {np.argwhere(differ)[:5].tolist()}: "
            f"got {cnt[differ][:5]}, expected {ref_cnt[differ][:5]}")

    # Padding and index validity.
    positions = np.arange(K)[None, None, :]
    valid = positions < cnt[:, :, None]
    assert np.all(idx[~valid] == -1), "padding must be -1"
    t = np.arange(L)[None, :, None]
    assert np.all((idx[valid] >= 0)), "selected positions must be >= 0"
    assert np.all(np.broadcast_to(idx <= t, idx.shape)[valid]), "causality: s <= t"
    for b in range(B):
        for tt in range(L):
            row = idx[b, tt, :cnt[b, tt]]
            assert len(np.unique(row)) == len(row), f"duplicate positions in row {(b, tt)}"
            assert np.all(np.diff(row) > 0), "indices must ascend"

    # Selected sets where the k-th/(k+1)-th gap is clear; recall everywhere.
    same_count = cnt == ref_cnt
    margin = np.asarray(ref.selection_margin(expected["scores"], cnt))
    clear = same_count & (margin > SCORE_TOLERANCE)
    same = np.asarray(ref.same_sets(idx, cnt, expected["indices"], ref_cnt))
    assert np.all(same[clear]), (
        f"selected sets differ where the margin is clear: {np.argwhere(clear & ~same)[:5].tolist()}")
    recall = np.asarray(ref.recall(expected["indices"], ref_cnt, idx, cnt))
    assert recall[same_count].mean() >= 0.99, f"recall {recall[same_count].mean()}"

    # Attention on the set the compiled code returned.
    o_ref, lse_ref = ref.sparse_attention(
        named["q"], named["k"], named["v"], idx, cnt, named.get("gv"), named.get("go"),
        scale=core.scale, score_mod=score_mod)
    assert ref.relative_error(o, o_ref) < OUTPUT_TOLERANCE
    assert ref.relative_error(lse, lse_ref) < OUTPUT_TOLERANCE

    if core.training and core.running_var:
        new_var = results[4]
        assert np.isclose(float(new_var), float(expected["new_running_var"]), rtol=1e-5)
    return results, expected


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------

def test_ragged_length_not_a_multiple_of_any_tile():
    check_core(h.Core(B=1, L=37), seed=1)


def test_length_below_k_min_selects_everything_visible():
    core = h.Core(L=10, k_base=16, k_min=12, k_max=16)
    results, _ = check_core(core, seed=2)
    cnt = results[3]
    assert np.array_equal(cnt[0], np.arange(1, 11)), "n_t < k_min: every visible position"


def test_batch_of_two():
    check_core(h.Core(B=2, L=40), seed=3)


@pytest.mark.parametrize("n_h,n_kv", [(4, 4), (8, 2), (8, 1)])
def test_gqa_ratios(n_h, n_kv):
    check_core(h.Core(L=33, n_h=n_h, n_kv=n_kv), seed=4 + n_h + n_kv)


@pytest.mark.parametrize("d", [64, 128])
def test_head_dims(d):
    check_core(h.Core(L=24, n_h=2, n_kv=1, d=d), seed=10 + d)


@pytest.mark.parametrize("H_I", [1, 4])
def test_indexer_heads(H_I):
    check_core(h.Core(L=48, H_I=H_I, d_I=16), seed=20 + H_I)


def test_dynamic_shapes_compile_per_shape():
    check_core(h.Core(B=2, L=29, dynamic=True), seed=25)


# ---------------------------------------------------------------------------
# Policies and the running variance
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["inverse", "proportional", "fixed"])
def test_policies_training(policy):
    check_core(h.Core(L=64, policy=policy, k_base=12, k_min=4, k_max=24), seed=30)


@pytest.mark.parametrize("policy", ["inverse", "proportional"])
def test_policies_inference_read_running_variance(policy):
    core = h.Core(L=64, policy=policy, training=False, k_base=12, k_min=4, k_max=24)
    check_core(core, seed=31, running_var_value=0.004)


def test_fixed_policy_without_running_variance():
    core = h.Core(L=40, policy="fixed", training=False, running_var=False,
                  k_base=8, k_min=8, k_max=8)
    results, _ = check_core(core, seed=32)
    assert np.array_equal(results[3][0], np.minimum(np.arange(1, 41), 8))


def test_custom_policy_region():
    # k_t = k_base * sqrt(V_bar / var_t): a user policy between inverse and fixed.
    body = ("%r = arith.divf %vbar, %var : f32\n        %s = math.sqrt %r : f32\n"
            "        %kb = arith.constant 12.0 : f32\n        %b = arith.mulf %kb, %s : f32\n"
            "        gsa.yield %b : f32")
    core = h.Core(L=64, policy="custom", policy_fn=body, k_base=12, k_min=4, k_max=24)
    check_core(core, seed=33,
               custom_policy=lambda mean, var, v_bar, t: 12.0 * np.sqrt(v_bar / var))


def test_running_variance_update_with_momentum():
    core = h.Core(L=32, momentum=0.9)
    rng = np.random.default_rng(34)
    named = core.random_inputs(rng, running_var_value=0.02)
    results, expected = check_core(core, seed=34, named=named)
    v_bar = float(expected["v_bar"])
    assert np.isclose(float(results[4]), 0.9 * 0.02 + 0.1 * v_bar, rtol=1e-5)


def test_first_training_update_sets_the_running_variance():
    core = h.Core(L=32)
    results, expected = check_core(core, seed=35, running_var_value=0.0)
    assert np.isclose(float(results[4]), float(expected["v_bar"]), rtol=1e-5)


def test_inference_rejects_zero_running_variance():
    core = h.Core(L=16, training=False)
    rng = np.random.default_rng(36)
    named = core.random_inputs(rng, running_var_value=0.0)
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), core.input_list(named))
    assert "('running_var') is 0" in err.value.stderr
    assert "must be finite and positive" in err.value.stderr


# ---------------------------------------------------------------------------
# The tie rule
# ---------------------------------------------------------------------------

def test_ties_go_to_the_larger_position():
    # qi = 0 makes every score of a row equal: the k_t most recent positions
    # must be selected.
    core = h.Core(L=20, policy="fixed", k_base=5, k_min=5, k_max=5, training=False,
                  running_var=False)
    rng = np.random.default_rng(40)
    named = core.random_inputs(rng)
    named["qi"] = np.zeros_like(named["qi"])
    results, _ = check_core(core, seed=40, named=named)
    idx = results[2]
    for t in range(20):
        n = min(5, t + 1)
        assert np.array_equal(idx[0, t, :n], np.arange(t + 1 - n, t + 1)), (t, idx[0, t])


def test_partial_ties_at_the_threshold():
    # Scores take few distinct values: the threshold value is shared by many
    # positions, of which only the most recent are taken.
    core = h.Core(L=30, policy="fixed", k_base=7, k_min=7, k_max=7, training=False,
                  running_var=False, weights=False, bias=False, H_I=1, d_I=4)
    rng = np.random.default_rng(41)
    named = core.random_inputs(rng)
    named["ki"] = rng.integers(-1, 2, size=named["ki"].shape).astype(np.float32)
    named["qi"] = np.ones_like(named["qi"])
    check_core(core, seed=41, named=named)


# ---------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value_gate,output_gate", [(False, False), (True, False),
                                                    (False, True), (True, True)])
def test_gates_on_and_off(value_gate, output_gate):
    check_core(h.Core(L=32, value_gate=value_gate, output_gate=output_gate), seed=50)


# ---------------------------------------------------------------------------
# Variants: DSA, user activation, score_mod
# ---------------------------------------------------------------------------

def test_dsa_relu_indexer_with_raw_weights():
    core = h.Core(L=48, activation=h.RELU, weighting=h.IDENTITY, bias=False,
                  policy="fixed", k_base=8, k_min=8, k_max=8, training=False,
                  running_var=False, value_gate=False, output_gate=False)
    check_core(core, seed=60, activation="relu", weighting="identity")


def test_user_indexer_activation_softplus():
    body = ("%e = math.exp %x : f32\n        %one = arith.constant 1.0 : f32\n"
            "        %a = arith.addf %one, %e : f32\n        %r = math.log %a : f32\n"
            "        gsa.yield %r : f32")
    core = h.Core(L=40, activation=body)
    check_core(core, seed=61, activation=lambda x, j: np.log1p(np.exp(x)))


def test_score_mod_tanh_soft_capping():
    body = ("%cap = arith.constant 2.0 : f32\n        %x = arith.divf %s, %cap : f32\n"
            "        %th = math.tanh %x : f32\n        %y = arith.mulf %th, %cap : f32\n"
            "        gsa.yield %y : f32")
    core = h.Core(L=40, score_mod=body, scale=0.5)
    check_core(core, seed=62, score_mod=lambda s, b, hh, t, kv: 2.0 * np.tanh(s / 2.0))


def test_score_mod_uses_positions():
    # ALiBi-like linear bias by distance, using the t and s arguments.
    body = ("%ti = arith.index_cast %t : index to i64\n        %si = arith.index_cast %kv : index to i64\n"
            "        %dist = arith.subi %ti, %si : i64\n        %df = arith.sitofp %dist : i64 to f32\n"
            "        %slope = arith.constant -0.125 : f32\n        %bias = arith.mulf %df, %slope : f32\n"
            "        %y = arith.addf %s, %bias : f32\n        gsa.yield %y : f32")
    core = h.Core(L=36, score_mod=body)
    check_core(core, seed=63, score_mod=lambda s, b, hh, t, kv: s - 0.125 * (t - kv))


# ---------------------------------------------------------------------------
# Element types
# ---------------------------------------------------------------------------

def test_f16_inputs_round_trip_through_the_cpu_path():
    core = h.Core(L=24, elem="f16")
    rng = np.random.default_rng(70)
    named = core.random_inputs(rng)
    for key in list(named):
        if key not in ("bi", "running_var"):
            named[key] = named[key].astype(np.float16)
    results, _ = h.run_program(core.program(), core.input_list(named))
    o, lse, idx, cnt = results[:4]
    assert o.dtype == np.float16
    as64 = {k: v.astype(np.float64) for k, v in named.items()}
    o_ref, lse_ref = ref.sparse_attention(as64["q"], as64["k"], as64["v"], idx, cnt,
                                          as64["gv"], as64["go"])
    # Output rounded to f16: SPEC's fp16 tolerance.
    assert ref.relative_error(o.astype(np.float64), o_ref) < 3e-3
    assert ref.relative_error(lse, lse_ref) < 1e-5


def test_bf16_inputs_round_trip_through_the_cpu_path():
    # NumPy has no bfloat16: gsa-run reads f32 .npy data into bf16 operands
    # (round to nearest even) and writes bf16 results back as exact f32.
    core = h.Core(L=24, elem="bf16")
    rng = np.random.default_rng(71)
    named = core.random_inputs(rng)
    results, _ = h.run_program(core.program(), core.input_list(named))
    o, lse, idx, cnt = results[:4]
    assert o.dtype == np.float32

    def to_bf16(x):
        bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return rounded.astype(np.uint32).view(np.float32).astype(np.float64)

    as_bf16 = {k: (v.astype(np.float64) if k in ("bi", "running_var") else to_bf16(v))
               for k, v in named.items()}
    # o is stored in bf16: every value must be exactly representable.
    assert np.array_equal(to_bf16(o), o.astype(np.float64))
    o_ref, lse_ref = ref.sparse_attention(as_bf16["q"], as_bf16["k"], as_bf16["v"], idx, cnt,
                                          as_bf16["gv"], as_bf16["go"])
    assert ref.relative_error(o, o_ref) < 1e-2      # SPEC's bf16 tolerance
    assert ref.relative_error(lse, lse_ref) < 1e-5  # lse stays f32
