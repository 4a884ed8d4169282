"""gsa: a JIT compiler for Gated Sparse Attention, from Python.

    import gsa
    o, lse, indices, counts = gsa.functional.gated_sparse_attention(
        q, k, v, qi, ki, wi, bi, gv, go, k_base=2048, k_min=256, k_max=4096,
        policy="inverse", running_var=0.04)

    # variants as plain Python functions, traced into the op's regions
    from gsa.dsl import tanh, where
    o, lse = gsa.functional.sparse_attention(
        q, k, v, indices, counts,
        score_mod=lambda score, b, h, q_idx, kv_idx: 30.0 * tanh(score / 30.0))

    layer = gsa.GatedSparseAttention(d_model=4096)   # needs torch

NumPy arrays run on the CPU path; see gsa.functional for what runs on CUDA
tensors today. The compiler lives in libgsa.so (C API), found through
$GSA_LIBRARY, next to this package, or in the repository's build tree.
`gsa.nn` and `gsa.GatedSparseAttention` import torch on first use, so the
rest of the package works without it.
"""

from ._capi import GsaError, Runtime, library_path
from . import dsl, functional, program
from .dsl import DSLError

__all__ = ["DSLError", "GatedSparseAttention", "GsaError", "Runtime", "dsl", "functional",
           "library_path", "nn", "program"]


def __getattr__(name):
    # The torch module is imported only when asked for (import_module, not
    # `from . import nn`, whose fallback would call this hook again).
    if name in ("nn", "GatedSparseAttention", "GSAStats"):
        import importlib
        nn = importlib.import_module(".nn", __name__)
        return nn if name == "nn" else getattr(nn, name)
    raise AttributeError(f"module 'gsa' has no attribute {name!r}")
