"""The C API (libgsa) through ctypes: CPU kernels on host buffers, CUDA
kernels compiled without a GPU, errors through gsa_last_error."""

import ctypes
import os
from pathlib import Path

import numpy as np
import pytest

import gsa_harness as h
import gsa_reference as ref

# The same variable the package reads (the device machine's unpacked libgsa).
LIB = Path(os.environ.get("GSA_LIBRARY", h.BUILD / "lib" / "libgsa.so"))
GSA_F32, GSA_BF16, GSA_I32 = 2, 1, 4


class Desc(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32), ("shape", ctypes.c_int64 * 8)]


def desc(dtype, shape):
    d = Desc()
    d.dtype, d.rank = dtype, len(shape)
    for i, s in enumerate(shape):
        d.shape[i] = s
    return d


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(str(LIB))
    lib.gsa_last_error.restype = ctypes.c_char_p
    lib.gsa_context_create.restype = ctypes.c_void_p
    lib.gsa_context_destroy.argtypes = [ctypes.c_void_p]
    lib.gsa_compile.restype = ctypes.c_void_p
    lib.gsa_compile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                ctypes.c_int32, ctypes.POINTER(Desc)]
    lib.gsa_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.gsa_kernel_result.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(Desc)]
    lib.gsa_kernel_release.argtypes = [ctypes.c_void_p]
    lib.gsa_kernel_workspace_size.restype = ctypes.c_uint64
    lib.gsa_kernel_workspace_size.argtypes = [ctypes.c_void_p]
    lib.gsa_launch_with_workspace.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p]
    return lib


PROGRAM = """
func.func @attend(%q: tensor<1x?x4x32x{t}>, %k: tensor<1x?x2x32x{t}>, %v: tensor<1x?x2x32x{t}>,
                  %idx: tensor<1x?x8xi32>, %cnt: tensor<1x?xi32>)
    -> (tensor<1x?x4x32x{t}>, tensor<1x?x4xf32>) {{
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x?x4x32x{t}>, tensor<1x?x2x32x{t}>, tensor<1x?x2x32x{t}>, tensor<1x?x8xi32>,
         tensor<1x?xi32>) -> (tensor<1x?x4x32x{t}>, tensor<1x?x4xf32>)
  return %o, %lse : tensor<1x?x4x32x{t}>, tensor<1x?x4xf32>
}}
"""


def specs(L, elem):
    return (Desc * 5)(desc(elem, (1, L, 4, 32)), desc(elem, (1, L, 2, 32)),
                      desc(elem, (1, L, 2, 32)), desc(GSA_I32, (1, L, 8)), desc(GSA_I32, (1, L)))


def test_cpu_kernel_on_host_buffers_matches_the_reference(lib):
    ctx = lib.gsa_context_create()
    L = 12
    kernel = lib.gsa_compile(ctx, PROGRAM.format(t="f32").encode(), None, 0, 5, specs(L, GSA_F32))
    assert kernel, lib.gsa_last_error()
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, L, 4, 32)).astype(np.float32)
    k = rng.standard_normal((1, L, 2, 32)).astype(np.float32)
    v = rng.standard_normal((1, L, 2, 32)).astype(np.float32)
    idx = np.full((1, L, 8), -1, np.int32)
    for t in range(L):
        chosen = np.sort(rng.choice(t + 1, size=min(8, t + 1), replace=False))
        idx[0, t, :len(chosen)] = chosen
    cnt = np.minimum(np.arange(1, L + 1), 8).astype(np.int32)[None]
    o = np.full((1, L, 4, 32), np.nan, np.float32)
    lse = np.full((1, L, 4), np.nan, np.float32)
    arrays = [q, k, v, idx, cnt]
    ins = (ctypes.c_void_p * 5)(*[a.ctypes.data for a in arrays])
    outs = (ctypes.c_void_p * 2)(o.ctypes.data, lse.ctypes.data)
    assert lib.gsa_kernel_workspace_size(kernel) == 0, "CPU kernels allocate host memory"
    assert lib.gsa_launch_with_workspace(kernel, ins, outs, None, 0, None) == 0, \
        lib.gsa_last_error()
    o_ref, lse_ref = ref.sparse_attention(q, k, v, idx, cnt)
    assert ref.relative_error(o, o_ref) < 1e-5
    assert ref.relative_error(lse, lse_ref) < 1e-5
    lib.gsa_kernel_release(kernel)
    lib.gsa_context_destroy(ctx)


def test_cuda_kernel_compiles_without_a_gpu(lib, tmp_path, monkeypatch):
    monkeypatch.setenv("GSA_CACHE_DIR", str(tmp_path))
    ctx = lib.gsa_context_create()
    kernel = lib.gsa_compile(ctx, PROGRAM.format(t="bf16").encode(), b"attend", 1, 5,
                             specs(40, GSA_BF16))
    assert kernel, lib.gsa_last_error()
    out = Desc()
    assert lib.gsa_kernel_result(kernel, 1, ctypes.byref(out)) == 0
    assert (out.dtype, out.rank, list(out.shape[:3])) == (GSA_F32, 3, [1, 40, 4])
    assert len(list(tmp_path.iterdir())) == 1, "one disk-cache entry"
    lib.gsa_kernel_release(kernel)
    lib.gsa_context_destroy(ctx)


def test_compile_times_report_each_phase(lib, tmp_path, monkeypatch, capfd):
    """GSA_COMPILE_TIMES=1: the front end, the GPU pipeline with each
    kernel's serialisation and ptxas, on stderr; nothing without it."""
    import re
    for level in ("1", ""):
        monkeypatch.setenv("GSA_CACHE_DIR", str(tmp_path / f"cache{level}"))
        monkeypatch.setenv("GSA_COMPILE_TIMES", level)
        ctx = lib.gsa_context_create()
        kernel = lib.gsa_compile(ctx, PROGRAM.format(t="bf16").encode(), b"attend", 1, 5,
                                 specs(40, GSA_BF16))
        assert kernel, lib.gsa_last_error()
        lib.gsa_kernel_release(kernel)
        lib.gsa_context_destroy(ctx)
        err = capfd.readouterr().err
        summary = re.findall(r"gsa: compiled '@attend' for the GPU in ([0-9.]+) s: front end "
                             r"([0-9.]+) s, GPU pipeline ([0-9.]+) s \(kernels above\), "
                             r"ptxas ([0-9.]+) s", err)
        kernels = re.findall(r"gsa-serialize-kernels: +([0-9.]+) ms (\S+)", err)
        if not level:
            assert not summary and not kernels, err
            continue
        assert len(summary) == 1, err
        total, front, pipeline, ptxas = map(float, summary[0])
        assert 0 < front + pipeline + ptxas <= total + 1e-3
        # Every kernel of the plan, each serialised within the pipeline.
        assert kernels and all(name.startswith("attend") for _, name in kernels), err
        assert all(float(ms) / 1e3 <= pipeline for ms, _ in kernels)


@pytest.mark.skipif(not (os.environ.get("GSA_PTXAS") or any(
    (Path(d) / "ptxas").exists() for d in os.environ.get("PATH", "").split(os.pathsep)
    + ["/usr/local/cuda/bin"])), reason="needs ptxas")
def test_cuda_kernels_assembled_per_kernel(lib, tmp_path, monkeypatch):
    """GSA_PTXAS_PER_KERNEL=1: one cubin per kernel, each listing its
    kernel, made on the kernels' serialising threads; by default one cubin
    for the module (no kernel list). The disk-cache entry keeps them."""
    import json
    plans = {}
    for per_kernel in ("1", "0"):
        cache = tmp_path / per_kernel
        monkeypatch.setenv("GSA_CACHE_DIR", str(cache))
        monkeypatch.setenv("GSA_PTXAS_PER_KERNEL", per_kernel)
        ctx = lib.gsa_context_create()
        L = 256  # the selection's several kernels
        inputs = (Desc * 3)(desc(GSA_BF16, (1, L, 4, 64)), desc(GSA_BF16, (1, L, 64)),
                            desc(GSA_F32, ()))
        kernel = lib.gsa_compile(ctx, SELECTION.format(L=L).encode(), None, 1, 3, inputs)
        assert kernel, lib.gsa_last_error()
        lib.gsa_kernel_release(kernel)
        lib.gsa_context_destroy(ctx)
        (entry,) = [p for p in cache.rglob("*") if p.is_file()]
        payload = json.loads(entry.read_bytes().split(b"\n", 1)[1])
        plans[per_kernel] = payload
    launched = {step["kernel"] for step in plans["1"]["launches"]}
    images = plans["1"]["images"]
    assert len(images) >= 2 and all(len(i["kernels"]) == 1 for i in images)
    assert {i["kernels"][0] for i in images} == launched
    assert all(i["cubin"] for i in images)
    (whole,) = plans["0"]["images"]
    assert whole["kernels"] == [] and whole["cubin"]
    # The same PTX either way.
    assert plans["0"]["ptx"] == plans["1"]["ptx"]


SELECTION = """
func.func @select(%qi: tensor<1x{L}x4x64xbf16>, %ki: tensor<1x{L}x64xbf16>, %rv: tensor<f32>)
    -> (tensor<1x{L}x16xi32>, tensor<1x{L}xi32>) {{
  %I = gsa.indexer %qi, %ki activation {{
  ^bb0(%x: f32, %j: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  }} : (tensor<1x{L}x4x64xbf16>, tensor<1x{L}x64xbf16>) -> tensor<1x{L}x{L}xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = inverse k = 8 in [4, 16] running_var(%rv)
      : (tensor<1x{L}x{L}xf32>, tensor<f32>) -> (tensor<1x{L}x16xi32>, tensor<1x{L}xi32>)
  return %idx, %cnt : tensor<1x{L}x16xi32>, tensor<1x{L}xi32>
}}
"""


def test_cuda_selection_states_and_checks_its_workspace(lib, tmp_path, monkeypatch):
    monkeypatch.setenv("GSA_CACHE_DIR", str(tmp_path))
    ctx = lib.gsa_context_create()
    L = 256
    inputs = (Desc * 3)(desc(GSA_BF16, (1, L, 4, 64)), desc(GSA_BF16, (1, L, 64)),
                        desc(GSA_F32, ()))
    kernel = lib.gsa_compile(ctx, SELECTION.format(L=L).encode(), None, 1, 3, inputs)
    assert kernel, lib.gsa_last_error()
    # Statistics and candidates: at least k_max keys and positions per row.
    size = lib.gsa_kernel_workspace_size(kernel)
    assert size >= L * 16 * 8 and size % 256 == 0
    ins = (ctypes.c_void_p * 3)(*[0x1000] * 3)
    outs = (ctypes.c_void_p * 2)(0x1000, 0x1000)
    assert lib.gsa_launch_with_workspace(kernel, ins, outs, 0x100000, size - 1, None) != 0
    assert f"the workspace holds {size - 1} bytes but this kernel needs {size}".encode() \
        in lib.gsa_last_error()
    lib.gsa_kernel_release(kernel)
    lib.gsa_context_destroy(ctx)


def test_errors_are_reported_not_crashed(lib):
    ctx = lib.gsa_context_create()
    bad = lib.gsa_compile(ctx, b"func.func @f(", None, 0, 0, None)
    assert not bad
    assert b"<program>:1:" in lib.gsa_last_error()
    wrong = lib.gsa_compile(ctx, PROGRAM.format(t="f32").encode(), None, 0, 5, specs(12, GSA_BF16))
    assert not wrong
    assert b"input #0 ('q'): expected f32 elements, got bf16" in lib.gsa_last_error()
    assert lib.gsa_launch(None, None, None, None) != 0
    assert b"null kernel" in lib.gsa_last_error()
    lib.gsa_context_destroy(ctx)


INDEXER = """
func.func @scores(%qi: tensor<1x{L}x16x64xbf16>, %ki: tensor<1x{L}x64xbf16>)
    -> tensor<1x{L}x{L}xf32> {{
  %I = gsa.indexer %qi, %ki activation {{
  ^bb0(%x: f32, %j: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  }} : (tensor<1x{L}x16x64xbf16>, tensor<1x{L}x64xbf16>) -> tensor<1x{L}x{L}xf32>
  return %I : tensor<1x{L}x{L}xf32>
}}
"""


def test_cuda_indexer_of_16_heads_compiles_over_query_tiles(lib, tmp_path, monkeypatch):
    # 16 indexer heads at d_I 64: over query tiles (gsa-tile) by default;
    # the CUDA-core kernel (indexer-query-tiles=0) stages 16 x 64 x 8 f32
    # queries, more than its 24 KiB, and says so.
    monkeypatch.setenv("GSA_CACHE_DIR", str(tmp_path))
    ctx = lib.gsa_context_create()
    L = 100
    inputs = lambda: (Desc * 2)(desc(GSA_BF16, (1, L, 16, 64)), desc(GSA_BF16, (1, L, 64)))
    program = INDEXER.format(L=L).encode()
    kernel = lib.gsa_compile(ctx, program, None, 1, 2, inputs())
    assert kernel, lib.gsa_last_error()
    out = Desc()
    assert lib.gsa_kernel_result(kernel, 0, ctypes.byref(out)) == 0
    assert (out.dtype, out.rank, list(out.shape[:3])) == (GSA_F32, 3, [1, L, L])
    # Misaligned device buffers are refused before anything reaches the
    # driver (on a GPU they would fault in the kernels' 16-byte copies).
    ins = (ctypes.c_void_p * 2)(0x1008, 0x1000)
    outs = (ctypes.c_void_p * 1)(0x2000)
    assert lib.gsa_launch(kernel, ins, outs, None) != 0
    assert b"input #0 ('qi') starts at 0x1008, which is not 16-byte aligned" \
        in lib.gsa_last_error()
    ins = (ctypes.c_void_p * 2)(0x1000, 0x1000)
    outs = (ctypes.c_void_p * 1)(0x2004)
    assert lib.gsa_launch(kernel, ins, outs, None) != 0
    assert b"output #0 starts at 0x2004, which is not 16-byte aligned" in lib.gsa_last_error()
    lib.gsa_kernel_release(kernel)
    monkeypatch.setenv("GSA_GPU_OPTIONS", "indexer-query-tiles=0")
    assert not lib.gsa_compile(ctx, program, None, 1, 2, inputs())
    assert b"at most 24 KiB of shared memory" in lib.gsa_last_error()
    lib.gsa_context_destroy(ctx)
