"""ctypes binding of the C API (include/gsa-c/gsa.h)."""

import ctypes
import os
import threading
from pathlib import Path

MAX_RANK = 8
DTYPES = {"f16": 0, "bf16": 1, "f32": 2, "f64": 3, "i32": 4}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
BACKENDS = {"cpu": 0, "cuda": 1}


class GsaError(RuntimeError):
    """An error reported by the gsa compiler or runtime."""


class _Desc(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK)]


def library_path():
    """Where libgsa.so is: $GSA_LIBRARY, next to the package, or build/lib."""
    env = os.environ.get("GSA_LIBRARY")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "libgsa.so", here.parents[1] / "build" / "lib" / "libgsa.so"):
        if candidate.exists():
            return candidate
    raise GsaError("libgsa.so not found: build the project (./scripts/build.sh) or set "
                   "GSA_LIBRARY to its path")


_lib = None
_lock = threading.Lock()


def _library():
    global _lib
    with _lock:
        if _lib is None:
            lib = ctypes.CDLL(str(library_path()))
            lib.gsa_last_error.restype = ctypes.c_char_p
            lib.gsa_version.restype = ctypes.c_char_p
            lib.gsa_context_create.restype = ctypes.c_void_p
            lib.gsa_context_destroy.argtypes = [ctypes.c_void_p]
            lib.gsa_compile.restype = ctypes.c_void_p
            lib.gsa_compile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                        ctypes.c_int, ctypes.c_int32, ctypes.POINTER(_Desc)]
            lib.gsa_kernel_release.argtypes = [ctypes.c_void_p]
            lib.gsa_kernel_num_inputs.argtypes = [ctypes.c_void_p]
            lib.gsa_kernel_num_results.argtypes = [ctypes.c_void_p]
            lib.gsa_kernel_result.argtypes = [ctypes.c_void_p, ctypes.c_int32,
                                              ctypes.POINTER(_Desc)]
            lib.gsa_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                       ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
            lib.gsa_launch_with_workspace.argtypes = [
                ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_uint64,
                ctypes.c_void_p]
            lib.gsa_kernel_workspace_size.restype = ctypes.c_uint64
            lib.gsa_kernel_workspace_size.argtypes = [ctypes.c_void_p]
            lib.gsa_cache_stats.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_uint64)] * 3
            _lib = lib
    return _lib


def _error(lib):
    return GsaError(lib.gsa_last_error().decode(errors="replace"))


class Kernel:
    """A compiled specialisation: launch it on buffers of the declared shapes."""

    def __init__(self, lib, handle):
        self._lib, self._handle = lib, handle
        self.results = []
        for i in range(lib.gsa_kernel_num_results(handle)):
            d = _Desc()
            if lib.gsa_kernel_result(handle, i, ctypes.byref(d)) != 0:
                raise _error(lib)
            self.results.append((DTYPE_NAMES[d.dtype], tuple(d.shape[:d.rank])))

    @property
    def workspace_bytes(self):
        """Device memory a launch needs beyond inputs and outputs (0 on CPU)."""
        return self._lib.gsa_kernel_workspace_size(self._handle)

    def launch(self, inputs, outputs, stream=None, workspace=None, workspace_bytes=0):
        """inputs/outputs: data pointers (ints); stream: a CUstream or None;
        workspace: a device pointer to >= workspace_bytes bytes (256-byte
        aligned) used in stream order, or None to let the runtime take the
        memory from the driver's pool for this call."""
        ins = (ctypes.c_void_p * len(inputs))(*inputs)
        outs = (ctypes.c_void_p * len(outputs))(*outputs)
        if self._lib.gsa_launch_with_workspace(
                self._handle, ins, outs, ctypes.c_void_p(workspace or 0),
                ctypes.c_uint64(workspace_bytes), ctypes.c_void_p(stream or 0)) != 0:
            raise _error(self._lib)

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.gsa_kernel_release(self._handle)
            self._handle = None


class Runtime:
    """A compiler context with its kernel cache (memory, and disk for CUDA)."""

    def __init__(self):
        self._lib = _library()
        self._ctx = self._lib.gsa_context_create()
        self._python_hits = 0

    def count_hit(self):
        """A repeated specialisation served by the Python layer's memo of
        compiled kernels (gsa.functional, which calls this under its lock):
        counted among the hits."""
        self._python_hits += 1

    def compile(self, program, inputs, backend="cpu", entry=None):
        """program: MLIR text; inputs: [(dtype name, shape)] per argument."""
        if backend not in BACKENDS:
            raise GsaError(f"unknown backend {backend!r} (expected 'cpu' or 'cuda')")
        descs = (_Desc * len(inputs))()
        for i, (dtype, shape) in enumerate(inputs):
            descs[i].dtype, descs[i].rank = DTYPES[dtype], len(shape)
            for j, s in enumerate(shape):
                descs[i].shape[j] = s
        handle = self._lib.gsa_compile(self._ctx, program.encode(),
                                       entry.encode() if entry else None,
                                       BACKENDS[backend], len(inputs), descs)
        if not handle:
            raise _error(self._lib)
        return Kernel(self._lib, handle)

    def cache_stats(self):
        h, m, d = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        self._lib.gsa_cache_stats(self._ctx, ctypes.byref(h), ctypes.byref(m), ctypes.byref(d))
        return {"hits": h.value + self._python_hits, "misses": m.value, "disk_hits": d.value}

    def __del__(self):
        if getattr(self, "_ctx", None):
            self._lib.gsa_context_destroy(self._ctx)
            self._ctx = None
