"""Builds gsa programs (MLIR text) for given shapes and options.

The functional API compiles one program per call signature; the runtime
caches kernels by program text and shapes, so repeated calls only run.
"""

ACTIVATIONS = {
    "sigmoid": "%r = gsa.sigmoid %x : f32\n    gsa.yield %r : f32",
    "relu": "%zero = arith.constant 0.0 : f32\n    %r = arith.maximumf %x, %zero : f32\n"
            "    gsa.yield %r : f32",
    "identity": "gsa.yield %x : f32",
}
POLICIES = ("inverse", "proportional", "fixed")


def _tensor(shape, elem):
    return f"tensor<{'x'.join(str(d) for d in shape)}x{elem}>" if shape else f"tensor<{elem}>"


def _region(name, body, args):
    return f"{name} {{\n  ^bb0({args}):\n    {body}\n  }}"


def _float(x):
    return repr(float(x))


def gated_sparse_attention(shapes, elems, *, k_base, k_min, k_max, policy, training,
                           momentum=None, scale=None, index_scale=None,
                           activation="sigmoid", weighting="sigmoid"):
    """shapes/elems: dicts over q k v qi ki [wi bi gv go running_var]."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    for which, value in (("activation", activation), ("weighting", weighting)):
        if value not in ACTIVATIONS:
            raise ValueError(f"{which} must be one of {tuple(ACTIVATIONS)}, got {value!r}")
    order = [n for n in ("q", "k", "v", "qi", "ki", "wi", "bi", "gv", "go", "running_var")
             if n in shapes]
    types = {n: _tensor(shapes[n], elems[n]) for n in order}
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
    operands.append(f"policy = {policy} k = {k_base} in [{k_min}, {k_max}]")
    if training:
        operands.append("training")
    if momentum is not None:
        operands.append(f"momentum({_float(momentum)})")
    if scale is not None:
        operands.append(f"scale({_float(scale)})")
    if index_scale is not None:
        operands.append(f"index_scale({_float(index_scale)})")
    regions = [_region("activation", ACTIVATIONS[activation], "%x: f32, %j: index")]
    if "wi" in shapes:
        regions.append(_region("weighting", ACTIVATIONS[weighting].replace("%x", "%x"),
                               "%x: f32, %j: index"))
    params = ", ".join(f"%{n}: {types[n]}" for n in order)
    result_list = ", ".join(results)
    return (f"func.func @gsa_core({params}) -> ({result_list}) {{\n"
            f"  {', '.join(names)} = gsa.gated_sparse_attention {' '.join(operands)}\n"
            f"  {' '.join(regions)}\n"
            f"  : ({', '.join(types[n] for n in order)}) -> ({result_list})\n"
            f"  return {', '.join(names)} : {result_list}\n}}\n"), order


def sparse_attention(shapes, elems, *, scale=None):
    order = [n for n in ("q", "k", "v", "indices", "counts", "gv", "go") if n in shapes]
    types = {n: _tensor(shapes[n], elems[n]) for n in order}
    B, L, NH, D = shapes["q"]
    results = f"{_tensor((B, L, NH, D), elems['q'])}, {_tensor((B, L, NH), 'f32')}"
    gates = "".join(f" {name}(%{key})" for name, key in (("value_gate", "gv"),
                                                         ("output_gate", "go")) if key in shapes)
    scale_text = f" scale({_float(scale)})" if scale is not None else ""
    params = ", ".join(f"%{n}: {types[n]}" for n in order)
    return (f"func.func @attend({params}) -> ({results}) {{\n"
            f"  %o, %lse = gsa.sparse_attention %q, %k, %v select(%indices, %counts)"
            f"{gates}{scale_text}\n"
            f"  : ({', '.join(types[n] for n in order)}) -> ({results})\n"
            f"  return %o, %lse : {results}\n}}\n"), order
