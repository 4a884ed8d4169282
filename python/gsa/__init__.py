"""gsa: a JIT compiler for Gated Sparse Attention, from Python.

    import gsa
    o, lse, indices, counts = gsa.functional.gated_sparse_attention(
        q, k, v, qi, ki, wi, bi, gv, go, k_base=2048, k_min=256, k_max=4096,
        policy="inverse", running_var=0.04)

NumPy arrays run on the CPU path; see gsa.functional for what runs on CUDA
tensors today. The compiler lives in libgsa.so (C API), found through
$GSA_LIBRARY, next to this package, or in the repository's build tree.
"""

from ._capi import GsaError, Runtime, library_path
from . import functional, program

__all__ = ["GsaError", "Runtime", "functional", "program", "library_path"]
