"""Builds gsa programs (MLIR text) for given shapes and options.

The functional API compiles one program per call signature; the runtime
caches kernels by program text and shapes, so repeated calls only run.
Regions (indexer activation and weighting, selection policy, score_mod) are
given as builtin names or as Python functions, which gsa.dsl traces into
MLIR; each distinct traced text is a distinct program.
"""

import numbers

from . import dsl

# The builtin per-head functions, as region bodies over (%x: f32, %head: index).
ACTIVATIONS = {
    "sigmoid": "%r = gsa.sigmoid %x : f32\n    gsa.yield %r : f32",
    "relu": "%zero = arith.constant 0.0 : f32\n    %r = arith.maximumf %x, %zero : f32\n"
            "    gsa.yield %r : f32",
    "identity": "gsa.yield %x : f32",
}
POLICIES = ("inverse", "proportional", "fixed")


def _tensor(shape, elem):
    return f"tensor<{'x'.join(str(d) for d in shape)}x{elem}>" if shape else f"tensor<{elem}>"


def _float(x):
    """An f32 attribute value MLIR parses (1e-05 is not one: it needs a '.')."""
    return dsl.format_f32(x)


def region(role, spec, option):
    """The MLIR text of region `role` (see gsa.dsl.ROLES) from `spec`: a
    builtin name (activation and weighting only), a gsa.dsl.Region, or a
    Python function, traced here. `option` names the argument in errors."""
    if isinstance(spec, dsl.Region):
        if spec.role != role:
            raise ValueError(f"{option}: a traced {spec.role} region cannot serve as {role}")
        return spec.text
    if isinstance(spec, str):
        if role in ("activation", "weighting") and spec in ACTIVATIONS:
            return "{\n  ^bb0(%x: f32, %head: index):\n    " + ACTIVATIONS[spec] + "\n  }"
        names = tuple(ACTIVATIONS) if role in ("activation", "weighting") else ()
        raise ValueError(f"{option} must be " + (f"one of {names} or " if names else "")
                         + f"a Python function, got {spec!r}")
    if callable(spec):
        return dsl.trace(spec, role).text
    names = "a builtin name, " if role in ("activation", "weighting") else ""
    raise ValueError(f"{option} must be {names}a Python function or a gsa.dsl.Region, "
                     f"got {type(spec).__name__}")


def policy_name(policy):
    """The op's policy keyword for `policy`: a builtin name, or "custom" for
    a Python function (or gsa.dsl.Region). Raises ValueError for anything else."""
    if isinstance(policy, str):
        if policy == "custom":
            raise ValueError("policy 'custom' needs its function: pass policy=<Python function "
                             "(mean, var, v_bar, t) -> k_base * r_t>")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES} or a Python function, "
                             f"got {policy!r}")
        return policy
    if callable(policy) or isinstance(policy, dsl.Region):
        return "custom"
    raise ValueError(f"policy must be one of {POLICIES} or a Python function, "
                     f"got {type(policy).__name__}")


def _indexer_regions(shapes, activation, weighting):
    """The indexer's region clauses: the activation, and the weighting where
    there are head weights (the op takes none without them)."""
    regions = [f"activation {region('activation', activation, 'activation')}"]
    if "wi" in shapes:
        regions.append(f"weighting {region('weighting', weighting, 'weighting')}")
    return regions


def _arguments(names, shapes, elems):
    """The arguments among `names` that `shapes` has, in that order, and
    their tensor types."""
    order = [n for n in names if n in shapes]
    return order, {n: _tensor(shapes[n], elems[n]) for n in order}


def _one_op_function(name, order, types, values, results, op):
    """func.func @name over the arguments in `order` whose body is one op,
    `values = op : (argument types) -> results`, returned as it is."""
    params = ", ".join(f"%{n}: {types[n]}" for n in order)
    result_list = results[0] if len(results) == 1 else f"({', '.join(results)})"
    return (f"func.func @{name}({params}) -> {result_list} {{\n"
            f"  {', '.join(values)} = {op}\n"
            f"  : ({', '.join(types[n] for n in order)}) -> {result_list}\n"
            f"  return {', '.join(values)} : {', '.join(results)}\n}}\n")


def gated_sparse_attention(shapes, elems, *, k_base, k_min, k_max, policy, training,
                           momentum=None, scale=None, index_scale=None,
                           activation="sigmoid", weighting="sigmoid", score_mod=None):
    """shapes/elems: dicts over q k v qi ki [wi bi gv go running_var].
    Returns (program text, argument order)."""
    for name, value in (("k_base", k_base), ("k_min", k_min), ("k_max", k_max)):
        # (The op's budgets are integers; a float would reach the MLIR
        # parser as "floating point value not valid for specified type".)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    policy_keyword = policy_name(policy)
    regions = _indexer_regions(shapes, activation, weighting)
    if policy_keyword == "custom":
        regions.append(f"policy_fn {region('policy_fn', policy, 'policy')}")
    if score_mod is not None:
        regions.append(f"score_mod {region('score_mod', score_mod, 'score_mod')}")

    order, types = _arguments(("q", "k", "v", "qi", "ki", "wi", "bi", "gv", "go", "running_var"),
                              shapes, elems)
    B, L, NH, D = shapes["q"]
    results = [_tensor((B, L, NH, D), elems["q"]), _tensor((B, L, NH), "f32"),
               _tensor((B, L, k_max), "i32"), _tensor((B, L), "i32")]
    names = ["%o", "%lse", "%idx", "%cnt"]
    if training and "running_var" in shapes:
        results.append("tensor<f32>")
        names.append("%new_var")
    operands = ["q(%q) k(%k) v(%v) indexer(%qi, %ki)"]
    for name, key in (("weights", "wi"), ("bias", "bi"), ("value_gate", "gv"),
                      ("output_gate", "go"), ("running_var", "running_var")):
        if key in shapes:
            operands.append(f"{name}(%{key})")
    operands.append(f"policy = {policy_keyword} k = {k_base} in [{k_min}, {k_max}]")
    if training:
        operands.append("training")
    if momentum is not None:
        operands.append(f"momentum({_float(momentum)})")
    if scale is not None:
        operands.append(f"scale({_float(scale)})")
    if index_scale is not None:
        operands.append(f"index_scale({_float(index_scale)})")
    op = f"gsa.gated_sparse_attention {' '.join(operands)}\n  {' '.join(regions)}"
    return _one_op_function("gsa_core", order, types, names, results, op), order


def sparse_attention(shapes, elems, *, scale=None, score_mod=None):
    """shapes/elems: dicts over q k v indices counts [gv go].
    Returns (program text, argument order)."""
    order, types = _arguments(("q", "k", "v", "indices", "counts", "gv", "go"), shapes, elems)
    B, L, NH, D = shapes["q"]
    results = [_tensor((B, L, NH, D), elems["q"]), _tensor((B, L, NH), "f32")]
    gates = "".join(f" {name}(%{key})" for name, key in (("value_gate", "gv"),
                                                         ("output_gate", "go")) if key in shapes)
    scale_text = f" scale({_float(scale)})" if scale is not None else ""
    mod_text = (f"\n  score_mod {region('score_mod', score_mod, 'score_mod')}"
                if score_mod is not None else "")
    op = (f"gsa.sparse_attention %q, %k, %v select(%indices, %counts)"
          f"{gates}{scale_text}{mod_text}")
    return _one_op_function("attend", order, types, ["%o", "%lse"], results, op), order


def indexer(shapes, elems, *, scale=None, activation="sigmoid", weighting="sigmoid"):
    """shapes/elems: dicts over qi ki [wi bi]. The program returns the causal
    score matrix [B, L, L] (f32). Returns (program text, argument order)."""
    order, types = _arguments(("qi", "ki", "wi", "bi"), shapes, elems)
    B, L = shapes["qi"][:2]
    result = _tensor((B, L, L), "f32")
    operands = "".join(f" {name}(%{key})" for name, key in (("weights", "wi"), ("bias", "bi"))
                       if key in shapes)
    scale_text = f" scale({_float(scale)})" if scale is not None else ""
    regions = _indexer_regions(shapes, activation, weighting)
    op = f"gsa.indexer %qi, %ki{operands}{scale_text}\n  {' '.join(regions)}"
    return _one_op_function("indexer", order, types, ["%scores"], [result], op), order
