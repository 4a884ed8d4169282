"""SPEC.md's numerical acceptance for one GSA core's outputs, against the
float64 reference (gsa_reference.py). Shared by the DSL tests, the module
tests and the examples, which produce outputs through the Python package.

- k_t equals the reference's except where the real budget k_base * r_t lies
  within float rounding of an integer (the compiled code computes in f32);
- selected sets equal the reference's wherever the k-th and (k+1)-th largest
  scores differ by more than f32 rounding, and recall >= 0.99;
- o and lse within 1e-5 relative error of the reference computed on the
  selected set that the compiled code returned;
- padding is -1, positions ascend and are causal, nothing is NaN or Inf.
"""

import inspect

import numpy as np

import gsa_reference as ref

SCORE_TOLERANCE = 1e-5
OUTPUT_TOLERANCE = 1e-5


class Mismatch(AssertionError):
    """The compiled outputs disagree with the reference."""


def _require(condition, message):
    if not condition:
        raise Mismatch(message)


def per_head(fn):
    """The reference calls activations as fn(x, head); the DSL also takes
    functions of x alone (gsa.dsl.relu, numpy ufuncs)."""
    if not callable(fn):
        return fn
    if isinstance(fn, np.ufunc):
        takes_head = fn.nin >= 2
    else:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return fn
        takes_head = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                    p.VAR_POSITIONAL) for p in params) >= 2
    return fn if takes_head else (lambda x, head: fn(x))


def reference_core(inputs, *, k_base, k_min, k_max, policy="inverse", training=False,
                   running_var=None, momentum=None, scale=None, index_scale=None,
                   activation="sigmoid", weighting="sigmoid", score_mod=None):
    """The float64 reference of the whole core on `inputs` (a dict of q k v
    qi ki [wi bi gv go]); `policy` may be a name or a function."""
    custom = None if isinstance(policy, str) else policy
    return ref.gated_sparse_attention(
        inputs["q"], inputs["k"], inputs["v"], inputs["qi"], inputs["ki"],
        inputs.get("wi"), inputs.get("bi"), inputs.get("gv"), inputs.get("go"),
        k_base=k_base, k_min=k_min, k_max=k_max,
        policy="custom" if custom is not None else policy,
        running_var=running_var, training=training,
        momentum=0.99 if momentum is None else momentum, scale=scale, scale_I=index_scale,
        score_mod=score_mod, activation=per_head(activation),
        weighting=per_head(weighting) if inputs.get("wi") is not None else "identity",
        custom_policy=custom)


def check_selection(idx, cnt, expected, *, k_base, k_min, k_max, policy="inverse",
                    score_tolerance=SCORE_TOLERANCE, budget_tolerance=1e-4):
    """Checks compiled indices/counts against the reference's dict. Budgets
    may differ by one where the real budget is within budget_tolerance
    (relative) of an integer; sets must agree where the k-th and (k+1)-th
    scores are more than score_tolerance apart (defaults: f32 on the CPU)."""
    idx, cnt = np.asarray(idx), np.asarray(cnt)
    custom = None if isinstance(policy, str) else policy
    policy_name = "custom" if custom is not None else policy
    B, L, K = idx.shape
    _require(K == k_max, f"indices have width {K}, expected k_max = {k_max}")

    # Budgets: exact, except at floor boundaries of the real budget.
    ref_cnt = np.asarray(expected["counts"])
    differ = cnt != ref_cnt
    if differ.any():
        real = np.asarray(ref.budget_real(expected["var"], policy_name, k_base, k_min, k_max,
                                          expected["v_bar"], mean=expected["mean"],
                                          custom=custom), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            near = (np.abs(real - np.round(real))
                    <= budget_tolerance * np.maximum(1.0, np.abs(real)))
        _require(np.all(near[differ] & (np.abs(cnt - ref_cnt)[differ] <= 1)),
                 f"k_t differs from the reference at {np.argwhere(differ)[:5].tolist()}: "
                 f"got {cnt[differ][:5]}, expected {ref_cnt[differ][:5]}")

    # Padding, causality, order.
    valid = np.arange(K)[None, None, :] < cnt[:, :, None]
    _require(np.all(idx[~valid] == -1), "padding must be -1")
    t = np.broadcast_to(np.arange(L)[None, :, None], idx.shape)
    _require(np.all((idx[valid] >= 0) & (idx[valid] <= t[valid])), "positions must be in 0..t")
    for b in range(B):
        for tt in range(L):
            _require(np.all(np.diff(idx[b, tt, :cnt[b, tt]]) > 0),
                     f"indices of row {(b, tt)} must ascend")

    # Selected sets where the k-th/(k+1)-th gap is clear; recall everywhere.
    same_count = cnt == ref_cnt
    margin = np.asarray(ref.selection_margin(expected["scores"], cnt))
    clear = same_count & (margin > score_tolerance)
    same = np.asarray(ref.same_sets(idx, cnt, expected["indices"], ref_cnt))
    _require(np.all(same[clear]), "selected sets differ where the margin is clear: "
             f"{np.argwhere(clear & ~same)[:5].tolist()}")
    recall = np.asarray(ref.recall(expected["indices"], ref_cnt, idx, cnt))
    _require(recall[same_count].mean() >= 0.99, f"recall {recall[same_count].mean()}")


def check_core(outputs, inputs, *, k_base, k_min, k_max, policy="inverse", training=False,
               running_var=None, momentum=None, scale=None, index_scale=None,
               activation="sigmoid", weighting="sigmoid", score_mod=None,
               output_tolerance=OUTPUT_TOLERANCE):
    """Checks the (o, lse, indices, counts[, new_var]) of
    gsa.functional.gated_sparse_attention(**inputs, ...) and returns the
    reference's dict (with the relative errors under "errors"). `policy` may
    be a name or a function (mean, var, v_bar, t) -> budget; activation,
    weighting and score_mod are names or functions that the reference
    evaluates with numpy (in float64). Raises Mismatch."""
    o, lse, idx, cnt = (np.asarray(x) for x in outputs[:4])
    expected = reference_core(inputs, k_base=k_base, k_min=k_min, k_max=k_max, policy=policy,
                              training=training, running_var=running_var, momentum=momentum,
                              scale=scale, index_scale=index_scale, activation=activation,
                              weighting=weighting, score_mod=score_mod)
    for name, array in (("o", o), ("lse", lse)):
        _require(np.all(np.isfinite(array)), f"{name} holds NaN or Inf")
    check_selection(idx, cnt, expected, k_base=k_base, k_min=k_min, k_max=k_max, policy=policy)

    # Attention on the set the compiled code returned.
    o_ref, lse_ref = ref.sparse_attention(inputs["q"], inputs["k"], inputs["v"], idx, cnt,
                                          inputs.get("gv"), inputs.get("go"), scale=scale,
                                          score_mod=score_mod)
    err_o, err_lse = ref.relative_error(o, o_ref), ref.relative_error(lse, lse_ref)
    _require(err_o < output_tolerance, f"o: relative error {err_o:.3g}")
    _require(err_lse < output_tolerance, f"lse: relative error {err_lse:.3g}")

    if training and running_var is not None:
        _require(len(outputs) == 5, "training with a running variance returns its update")
        _require(np.isclose(float(outputs[4]), float(expected["new_running_var"]), rtol=1e-5),
                 f"new running variance {float(outputs[4])}, expected "
                 f"{float(expected['new_running_var'])}")
    expected["errors"] = {"o": err_o, "lse": err_lse}
    return expected


def full_causal_selection(B, L):
    """indices [B, L, L] / counts [B, L] selecting every visible position."""
    idx = np.full((B, L, L), -1, dtype=np.int32)
    for t in range(L):
        idx[:, t, :t + 1] = np.arange(t + 1)
    counts = np.broadcast_to(np.arange(1, L + 1, dtype=np.int32), (B, L)).copy()
    return idx, counts


def random_core_inputs(rng, B=1, L=40, n_h=4, n_kv=2, d=16, H_I=2, d_I=8,
                       weights=True, bias=True, value_gate=True, output_gate=True):
    """Fresh float32 inputs with scales that keep sigmoids and softmaxes out
    of saturation (SPEC: numerical acceptance)."""
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    x = dict(q=n(B, L, n_h, d), k=n(B, L, n_kv, d), v=n(B, L, n_kv, d),
             qi=n(B, L, H_I, d_I), ki=n(B, L, d_I))
    if weights:
        x["wi"] = n(B, L, H_I)
    if bias:
        x["bi"] = (0.5 * n(H_I)).astype(np.float32)
    if value_gate:
        x["gv"] = n(B, L, n_kv, d)
    if output_gate:
        x["go"] = n(B, L, n_h, d)
    return x
