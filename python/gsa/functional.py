"""The GSA core as functions.

- NumPy arrays (or CPU torch tensors of a NumPy dtype) run on the CPU path.
- CUDA torch tensors (contiguous, on one device) run on the GPU through the
  runtime's CUDA backend, on torch's current stream.
Shapes follow SPEC.md: q [B,L,n_h,d], k/v [B,L,n_kv,d], qi [B,L,H_I,d_I],
ki [B,L,d_I], wi [B,L,H_I], bi [H_I], gv like v, go like q.

The variable parts are names or Python functions traced by gsa.dsl:
`activation` / `weighting` (x, head) -> float, `policy` (mean, var, v_bar, t)
-> k_base * r_t, and `score_mod` (score, b, h, q_idx, kv_idx) -> float.
"""

import math
import os
import threading
from collections import OrderedDict

import numpy as np

from . import program as programs
from ._capi import Runtime

_NUMPY_ELEMS = {np.dtype(np.float16): "f16", np.dtype(np.float32): "f32",
                np.dtype(np.int32): "i32"}
_runtime = None

# The kernels of earlier calls by specialisation, for calls whose options are
# all plain values: a repeated call skips building the program text and the
# runtime's lookup, which hashes that text (3.5 instead of 24.5 us per call
# on the development machine; docs/python.md). Calls with a Python function among
# their options (activation, weighting, policy, score_mod) trace it again
# every time - what it computes may have changed - and go through the
# runtime's cache as before. Least recently used first out past _KERNELS_MAX.
_KERNELS = OrderedDict()
_KERNELS_MAX = 64
_KERNELS_LOCK = threading.Lock()


def _plain(value):
    # Exact types: a subclass (an enum, say) may print differently from the
    # text it stands for.
    return value is None or type(value) in (str, int, float, bool)


def _kernel(builder, shapes, elems, options, backend="cpu"):
    """The compiled kernel and its argument order for one call: from the
    memo above where the options allow, else built and compiled."""
    rt = runtime()
    key = None
    if all(_plain(v) for v in options.values()):
        # The builder and the runtime themselves: a replaced builder or
        # runtime (functional._runtime reset) starts afresh. Options by repr,
        # not value: 0.0 and -0.0 (or 1 and True) print differently in the
        # program text.
        key = (builder, rt, backend, os.environ.get("GSA_GPU_OPTIONS"),
               tuple((n, tuple(shapes[n]), elems[n]) for n in shapes),
               tuple((k, type(v).__name__, repr(v)) for k, v in options.items()))
        with _KERNELS_LOCK:
            hit = _KERNELS.get(key)
            if hit is not None:
                _KERNELS.move_to_end(key)
                rt.count_hit()
        if hit is not None:
            return hit
    text, order = builder(shapes, elems, **options)
    kernel = rt.compile(text, [(elems[n], shapes[n]) for n in order], backend=backend)
    if key is not None:
        with _KERNELS_LOCK:
            _KERNELS[key] = (kernel, order)
            while len(_KERNELS) > _KERNELS_MAX:
                _KERNELS.popitem(last=False)
    return kernel, order


def runtime():
    """The process-wide runtime (its caches serve every call)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _host(name, x, rank, int_ok=False):
    """A C-contiguous NumPy array of a supported dtype, or a ValueError
    naming the argument."""
    if _is_torch(x):
        if x.is_cuda:
            raise ValueError(f"'{name}' is a CUDA tensor but the other inputs are not")
        try:
            x = x.detach().numpy()
        except TypeError as exc:  # bf16 has no NumPy dtype
            raise ValueError(f"'{name}' has dtype {x.dtype}, which the CPU path takes as "
                             "float32 or float16: convert it first") from exc
    x = np.asarray(x)
    if x.ndim != rank:
        raise ValueError(f"'{name}' must have rank {rank}, got shape {x.shape}")
    if x.dtype == np.float64:
        x = x.astype(np.float32)
    if x.dtype == np.int64 and int_ok:
        x = x.astype(np.int32)
    if x.dtype not in _NUMPY_ELEMS or (_NUMPY_ELEMS[x.dtype] == "i32") != int_ok:
        raise ValueError(f"'{name}' has unsupported dtype {x.dtype} "
                         f"({'int32' if int_ok else 'float16 or float32'} expected)")
    return np.require(x, requirements="C")


def _indexer_activation(activation, indexer_fn):
    """`indexer_fn` is another name for `activation` (the indexer's per-head
    function); giving both is ambiguous."""
    if indexer_fn is None:
        return activation
    if activation != "sigmoid" and activation is not indexer_fn:
        raise ValueError("pass the indexer activation once: 'activation' or 'indexer_fn'")
    return indexer_fn


def gated_sparse_attention(q, k, v, qi, ki, wi=None, bi=None, gv=None, go=None, *,
                           k_base=2048, k_min=256, k_max=4096, policy="inverse",
                           running_var=None, training=False, momentum=None,
                           scale=None, index_scale=None, activation="sigmoid",
                           weighting="sigmoid", score_mod=None, indexer_fn=None):
    """The whole GSA core. Returns (o, lse, indices, counts) and, in training
    mode with a running variance, the updated running variance as a float.

    In inference mode the inverse/proportional/custom policies read
    `running_var` (a positive float, the trained reference variance, or for CUDA
    inputs a 0-d float32 CUDA tensor holding it, read without waiting); in
    training mode the batch's own mean variance is used and the running value
    is updated.

    activation (alias indexer_fn), weighting: "sigmoid", "relu", "identity"
    or a Python function (x, head) -> float. policy: "inverse",
    "proportional", "fixed" or a Python function (mean, var, v_bar, t) ->
    k_base * r_t (the op's custom policy). score_mod: None or a Python
    function (score, b, h, q_idx, kv_idx) -> float.
    """
    activation = _indexer_activation(activation, indexer_fn)
    policy_keyword = programs.policy_name(policy)
    if running_var is None and not training and policy_keyword != "fixed":
        raise ValueError(f"policy '{policy_keyword}' in inference mode reads the running "
                         "variance: pass running_var (or training=True)")
    tensors = {"q": q, "k": k, "v": v, "qi": qi, "ki": ki, "wi": wi, "bi": bi, "gv": gv,
               "go": go}
    options = dict(k_base=k_base, k_min=k_min, k_max=k_max, policy=policy, training=training,
                   momentum=momentum, scale=scale, index_scale=index_scale,
                   activation=activation, weighting=weighting, score_mod=score_mod)
    if any(_is_torch(x) and x.is_cuda for x in (q, k, v, qi, ki)):
        return _gated_sparse_attention_cuda(tensors, running_var, options)
    named = {"q": _host("q", q, 4), "k": _host("k", k, 4), "v": _host("v", v, 4),
             "qi": _host("qi", qi, 4), "ki": _host("ki", ki, 3)}
    for key, value, rank in (("wi", wi, 3), ("bi", bi, 1), ("gv", gv, 4), ("go", go, 4)):
        if value is not None:
            named[key] = _host(key, value, rank)
    if running_var is not None:
        named["running_var"] = np.array(float(running_var), dtype=np.float32)
    shapes = {n: a.shape for n, a in named.items()}
    elems = {n: _NUMPY_ELEMS[a.dtype] for n, a in named.items()}
    kernel, order = _kernel(programs.gated_sparse_attention, shapes, elems, options)
    outputs = [np.empty(shape, dtype={"f16": np.float16, "f32": np.float32,
                                      "i32": np.int32}[dtype])
               for dtype, shape in kernel.results]
    kernel.launch([named[n].ctypes.data for n in order], [o.ctypes.data for o in outputs])
    if len(outputs) == 5:
        return tuple(outputs[:4]) + (float(outputs[4]),)
    return tuple(outputs)


_RANKS = {"q": 4, "k": 4, "v": 4, "qi": 4, "ki": 3, "wi": 3, "bi": 1, "gv": 4, "go": 4}


def _cuda_inputs(tensors, lead):
    """The given (not None) CUDA inputs by name, checked against `lead`, the
    input whose device they must share: device, rank, dtype, contiguity.
    Returns (named tensors, their element names, the device)."""
    import torch
    elem_of = {torch.bfloat16: "bf16", torch.float16: "f16", torch.float32: "f32"}
    device = tensors[lead].device
    named = {}
    for name, t in tensors.items():
        if t is None:
            continue
        if not (_is_torch(t) and t.is_cuda):
            raise ValueError(f"'{name}' is not a CUDA tensor but '{lead}' is one: pass every "
                             "input on the same CUDA device")
        if t.device != device:
            raise ValueError(f"'{name}' is on {t.device} but '{lead}' is on {device}")
        if t.dim() != _RANKS[name]:
            raise ValueError(f"'{name}' must have rank {_RANKS[name]}, got shape {tuple(t.shape)}")
        if t.dtype not in elem_of or not t.is_contiguous():
            raise ValueError(f"'{name}' must be a contiguous CUDA tensor of bf16, fp16 or "
                             f"fp32, got {t.dtype}" + ("" if t.is_contiguous()
                                                       else " (not contiguous)"))
        named[name] = t
    return named, {n: elem_of[t.dtype] for n, t in named.items()}, device


def _gated_sparse_attention_cuda(tensors, running_var, options):
    """The core on CUDA torch tensors: the outputs are CUDA tensors; the
    updated running variance (training) comes back as a float, which waits
    for the kernels."""
    import torch
    torch_of = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32,
                "i32": torch.int32}
    # (Checked against the first CUDA input: 'q' unless it is on the host.)
    lead = next(n for n, t in tensors.items() if _is_torch(t) and t.is_cuda)
    named, elems, device = _cuda_inputs(tensors, lead)
    if running_var is not None:
        elems["running_var"] = "f32"
        if _is_torch(running_var):
            if not (running_var.is_cuda and running_var.device == device
                    and running_var.dim() == 0 and running_var.dtype == torch.float32):
                raise ValueError("'running_var' as a tensor must be a 0-d float32 tensor on "
                                 f"{device}, got {running_var.dtype} of shape "
                                 f"{tuple(running_var.shape)} on {running_var.device}")
            named["running_var"] = running_var
        else:
            # The runtime checks host values only (a device value would have
            # to be read back): a number is checked here as it checks them.
            v, training = float(running_var), options["training"]
            reads_v_bar = programs.policy_name(options["policy"]) != "fixed"
            if training and not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"running_var is {v}: in training mode the running variance "
                                 "is updated from each batch's and must be finite and not "
                                 "negative")
            if not training and reads_v_bar and not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"running_var is {v}: in inference mode the running variance "
                                 "is the reference V_bar and must be finite and positive")
            # torch.full, not torch.tensor: a host value copied into a new
            # CUDA tensor waits for the device (a pageable copy), which made
            # every call wait for the kernels queued before it
            # (bench/device/jit_check.py: 160 ms of host time per 128K call).
            named["running_var"] = torch.full((), float(running_var), dtype=torch.float32,
                                              device=device)
    shapes = {n: tuple(t.shape) for n, t in named.items()}
    kernel, order = _kernel(programs.gated_sparse_attention, shapes, elems, options, "cuda")
    outputs = [torch.empty(shape, dtype=torch_of[dtype], device=device)
               for dtype, shape in kernel.results]
    _launch_cuda(kernel, [named[n] for n in order], outputs, device)
    if len(outputs) == 5:
        return tuple(outputs[:4]) + (float(outputs[4]),)
    return tuple(outputs)


def sparse_attention(q, k, v, indices, counts, gv=None, go=None, *, scale=None,
                     score_mod=None):
    """Gated sparse SDPA over given selections: (o, lse). CUDA torch tensors
    (bf16/fp16, contiguous) run on the GPU on the current stream; NumPy
    arrays on the CPU. score_mod: None or a Python function (score, b, h,
    q_idx, kv_idx) -> float, traced by gsa.dsl."""
    if all(_is_torch(x) and x.is_cuda for x in (q, k, v, indices, counts)):
        return _sparse_attention_cuda(q, k, v, indices, counts, gv, go, scale, score_mod)
    named = {"q": _host("q", q, 4), "k": _host("k", k, 4), "v": _host("v", v, 4),
             "indices": _host("indices", indices, 3, int_ok=True),
             "counts": _host("counts", counts, 2, int_ok=True)}
    for key, value in (("gv", gv), ("go", go)):
        if value is not None:
            named[key] = _host(key, value, 4)
    shapes = {n: a.shape for n, a in named.items()}
    elems = {n: _NUMPY_ELEMS[a.dtype] for n, a in named.items()}
    kernel, order = _kernel(programs.sparse_attention, shapes, elems,
                            dict(scale=scale, score_mod=score_mod))
    outputs = [np.empty(shape, dtype={"f16": np.float16, "f32": np.float32}[dtype])
               for dtype, shape in kernel.results]
    kernel.launch([named[n].ctypes.data for n in order], [o.ctypes.data for o in outputs])
    return tuple(outputs)


def _sparse_attention_cuda(q, k, v, indices, counts, gv, go, scale, score_mod):
    import torch
    elem_of = {torch.bfloat16: "bf16", torch.float16: "f16", torch.int32: "i32"}
    named = {"q": q, "k": k, "v": v, "indices": indices, "counts": counts}
    if gv is not None:
        named["gv"] = gv
    if go is not None:
        named["go"] = go
    for name, t in named.items():
        if not t.is_cuda or t.dtype not in elem_of or not t.is_contiguous():
            raise ValueError(f"'{name}' must be a contiguous CUDA tensor of bf16/fp16 "
                             f"(int32 for indices and counts), got {t.dtype} on {t.device}")
        if t.device != q.device:
            raise ValueError(f"'{name}' is on {t.device} but 'q' is on {q.device}")
    shapes = {n: tuple(t.shape) for n, t in named.items()}
    elems = {n: elem_of[t.dtype] for n, t in named.items()}
    kernel, order = _kernel(programs.sparse_attention, shapes, elems,
                            dict(scale=scale, score_mod=score_mod), "cuda")
    B, L, NH, D = q.shape
    o = torch.empty_like(q)
    lse = torch.empty((B, L, NH), dtype=torch.float32, device=q.device)
    _launch_cuda(kernel, [named[n] for n in order], [o, lse], q.device)
    return o, lse


def indexer(qi, ki, wi=None, bi=None, *, scale=None, activation="sigmoid",
            weighting="sigmoid"):
    """The gated lightning indexer's causal score matrix (SPEC section 1):
    I [B, L, L] float32, I[b, t, s] = sum_j weighting(wi[b, t, j], j) *
    activation(scale qi[b, t, j] . ki[b, s] + bi[j], j) for s <= t, -inf
    above the diagonal - what the indexer's training losses read (SPEC
    section 4). The matrix is L x L (4 L^2 bytes per batch): for the
    selection itself use gated_sparse_attention, which never stores it.

    CUDA torch tensors (bf16/fp16/fp32, contiguous, one device) run on the
    GPU (bf16/fp16 with a power-of-two H_I up to 16 and d_I a multiple of 64
    up to 256 on the tensor cores); NumPy arrays on the CPU. scale: default
    1/sqrt(d_I). activation, weighting: "sigmoid", "relu", "identity" or a
    Python function (x, head) -> float (weighting only applies with wi)."""
    options = dict(scale=scale, activation=activation, weighting=weighting)
    tensors = {"qi": qi, "ki": ki, "wi": wi, "bi": bi}
    for name in ("qi", "ki"):
        if tensors[name] is None:
            raise ValueError(f"'{name}' is required")
    on_cuda = [n for n, t in tensors.items() if _is_torch(t) and t.is_cuda]
    if on_cuda:
        import torch
        named, elems, device = _cuda_inputs(tensors, on_cuda[0])
        shapes = {n: tuple(t.shape) for n, t in named.items()}
        kernel, order = _kernel(programs.indexer, shapes, elems, options, "cuda")
        B, L = named["qi"].shape[:2]
        scores = torch.empty((B, L, L), dtype=torch.float32, device=device)
        _launch_cuda(kernel, [named[n] for n in order], [scores], device)
        return scores
    named = {n: _host(n, t, _RANKS[n]) for n, t in tensors.items() if t is not None}
    shapes = {n: a.shape for n, a in named.items()}
    elems = {n: _NUMPY_ELEMS[a.dtype] for n, a in named.items()}
    kernel, order = _kernel(programs.indexer, shapes, elems, options)
    B, L = named["qi"].shape[:2]
    scores = np.empty((B, L, L), dtype=np.float32)
    kernel.launch([named[n].ctypes.data for n in order], [scores.ctypes.data])
    return scores


def _launch_cuda(kernel, inputs, outputs, device):
    """Launches on the current stream with the kernel's workspace taken from
    PyTorch's caching allocator (so it is reused across calls, counted by
    torch.cuda.memory_allocated, and stream-ordered like any tensor)."""
    import torch
    stream = torch.cuda.current_stream(device).cuda_stream
    size = kernel.workspace_bytes
    workspace = torch.empty(size, dtype=torch.uint8, device=device) if size else None
    kernel.launch([t.data_ptr() for t in inputs], [o.data_ptr() for o in outputs], stream,
                  workspace=workspace.data_ptr() if size else None, workspace_bytes=size)
