#!/usr/bin/env python3
"""The runtime on the GPU machine: libgsa (LLVM/MLIR inside, built by
scripts/package_libgsa.sh) compiles through the C API there, per shape, with
its memory and disk caches, and launches on torch's current stream.

    python3 bench/device/runtime_check.py [--lib dist/libgsa.so.xz]

Prints one table: shape, errors against float64, kernel time, cold compile,
warm (memory) hit, disk hit, host time per gsa_launch; and checks that two
processes compiling the same kernel into one cache both succeed.
"""

import argparse
import ctypes
import json
import lzma
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_check import random_selection, reference_rows, time_ms  # noqa: E402

GSA_BF16, GSA_F16, GSA_I32 = 1, 0, 4
MAX_RANK = 8


class TensorDesc(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK)]


def desc(dtype, shape):
    d = TensorDesc()
    d.dtype, d.rank = dtype, len(shape)
    for i, s in enumerate(shape):
        d.shape[i] = s
    return d


PROGRAM = """
func.func @attend(%q: tensor<?x?x32x128x{t}>, %k: tensor<?x?x8x128x{t}>,
                  %v: tensor<?x?x8x128x{t}>, %idx: tensor<?x?x2048xi32>,
                  %cnt: tensor<?x?xi32>, %gv: tensor<?x?x8x128x{t}>,
                  %go: tensor<?x?x32x128x{t}>)
    -> (tensor<?x?x32x128x{t}>, tensor<?x?x32xf32>) {{
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      : (tensor<?x?x32x128x{t}>, tensor<?x?x8x128x{t}>, tensor<?x?x8x128x{t}>,
         tensor<?x?x2048xi32>, tensor<?x?xi32>, tensor<?x?x8x128x{t}>,
         tensor<?x?x32x128x{t}>) -> (tensor<?x?x32x128x{t}>, tensor<?x?x32xf32>)
  return %o, %lse : tensor<?x?x32x128x{t}>, tensor<?x?x32xf32>
}}
"""


def load_lib(path):
    path = Path(path)
    if path.suffix == ".xz":
        out = Path(tempfile.gettempdir()) / "libgsa.so"
        if not out.exists():
            out.write_bytes(lzma.decompress(path.read_bytes()))
        path = out
    lib = ctypes.CDLL(str(path))
    lib.gsa_last_error.restype = ctypes.c_char_p
    lib.gsa_version.restype = ctypes.c_char_p
    lib.gsa_context_create.restype = ctypes.c_void_p
    lib.gsa_context_destroy.argtypes = [ctypes.c_void_p]
    lib.gsa_compile.restype = ctypes.c_void_p
    lib.gsa_compile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                ctypes.c_int32, ctypes.POINTER(TensorDesc)]
    lib.gsa_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.gsa_kernel_release.argtypes = [ctypes.c_void_p]
    lib.gsa_kernel_result.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(TensorDesc)]
    lib.gsa_cache_stats.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_uint64)] * 3
    return lib


def compile_kernel(lib, ctx, dtype_code, tname, B, L):
    specs = [desc(dtype_code, (B, L, 32, 128)), desc(dtype_code, (B, L, 8, 128)),
             desc(dtype_code, (B, L, 8, 128)), desc(GSA_I32, (B, L, 2048)),
             desc(GSA_I32, (B, L)), desc(dtype_code, (B, L, 8, 128)),
             desc(dtype_code, (B, L, 32, 128))]
    arr = (TensorDesc * len(specs))(*specs)
    start = time.perf_counter()
    kernel = lib.gsa_compile(ctx, PROGRAM.format(t=tname).encode(), None, 1, len(specs), arr)
    seconds = time.perf_counter() - start
    if not kernel:
        raise RuntimeError(lib.gsa_last_error().decode())
    return kernel, seconds


def stats(lib, ctx):
    h, m, d = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
    lib.gsa_cache_stats(ctx, ctypes.byref(h), ctypes.byref(m), ctypes.byref(d))
    return h.value, m.value, d.value


def child(args):
    """One of two processes compiling the same kernel at once."""
    lib = load_lib(args.lib)
    ctx = lib.gsa_context_create()
    kernel, seconds = compile_kernel(lib, ctx, GSA_BF16, "bf16", 1, 777)
    print(json.dumps({"ok": bool(kernel), "compile_s": seconds, "stats": stats(lib, ctx)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default="dist/libgsa.so.xz")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT", "/tmp/gsa-device"))
    if args.child:
        return child(args)  # GSA_CACHE_DIR comes from the parent
    cache = Path(tempfile.mkdtemp(prefix="gsa-cache-"))
    os.environ["GSA_CACHE_DIR"] = str(cache)

    lib = load_lib(args.lib)
    torch.empty(1, device="cuda")
    dev = torch.device("cuda")
    rows_out = []
    ctx = lib.gsa_context_create()
    for B, L, tname, code, dtype in [(2, 1024, "bf16", GSA_BF16, torch.bfloat16),
                                     (1, 4096, "f16", GSA_F16, torch.float16),
                                     (1, 5000, "bf16", GSA_BF16, torch.bfloat16),
                                     (1, 16384, "bf16", GSA_BF16, torch.bfloat16)]:
        row = {"B": B, "L": L, "dtype": tname}
        try:
            kernel, row["cold_s"] = compile_kernel(lib, ctx, code, tname, B, L)
            lib.gsa_kernel_release(kernel)
            kernel, warm = compile_kernel(lib, ctx, code, tname, B, L)
            row["warm_us"] = warm * 1e6
            other = lib.gsa_context_create()          # a fresh in-memory cache
            k2, disk = compile_kernel(lib, other, code, tname, B, L)
            row["disk_us"] = disk * 1e6
            row["disk_hits"] = stats(lib, other)[2]
            lib.gsa_kernel_release(k2)
            lib.gsa_context_destroy(other)

            gen = torch.Generator(device=dev)
            gen.manual_seed(99 + L)
            rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
            q, k, v = rnd(B, L, 32, 128), rnd(B, L, 8, 128), rnd(B, L, 8, 128)
            gv, go = rnd(B, L, 8, 128), rnd(B, L, 32, 128)
            idx, cnt = random_selection(B, L, 2048, dev, gen)
            o = torch.full((B, L, 32, 128), float("nan"), dtype=dtype, device=dev)
            lse = torch.full((B, L, 32), float("nan"), dtype=torch.float32, device=dev)
            ins = (ctypes.c_void_p * 7)(*[t.data_ptr() for t in (q, k, v, idx, cnt, gv, go)])
            outs = (ctypes.c_void_p * 2)(o.data_ptr(), lse.data_ptr())
            stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

            def launch():
                if lib.gsa_launch(kernel, ins, outs, stream) != 0:
                    raise RuntimeError(lib.gsa_last_error().decode())
            launch()
            torch.cuda.synchronize()
            row["unwritten"] = int(torch.isnan(o).sum() + torch.isnan(lse).sum())
            all_rows = torch.stack(torch.meshgrid(torch.arange(B, device=dev),
                                                  torch.arange(L, device=dev), indexing="ij"),
                                   -1).reshape(-1, 2)
            pick = all_rows[torch.randperm(len(all_rows), device=dev, generator=gen)[:1024]]
            o_ref, lse_ref = reference_rows(q, k, v, gv, go, idx, cnt, pick, 1 / math.sqrt(128))
            got = o[pick[:, 0], pick[:, 1]].double()
            row["err_o"] = (torch.linalg.norm(got - o_ref) / torch.linalg.norm(o_ref)).item()
            got_lse = lse[pick[:, 0], pick[:, 1]].double()
            row["err_lse"] = (torch.linalg.norm(got_lse - lse_ref) / torch.linalg.norm(lse_ref)).item()
            tol = 1e-2 if tname == "bf16" else 3e-3
            row["ok"] = row["unwritten"] == 0 and row["err_o"] < tol and row["err_lse"] < 1e-3
            row["kernel_ms"] = time_ms(launch)[0]
            # Host time per launch: many launches back to back, no sync.
            torch.cuda.synchronize()
            n = 200 if L <= 4096 else 20
            start = time.perf_counter()
            for _ in range(n):
                launch()
            row["dispatch_us"] = (time.perf_counter() - start) / n * 1e6
            torch.cuda.synchronize()
            lib.gsa_kernel_release(kernel)
        except Exception as exc:
            row["error"] = str(exc)[:400]
            row["ok"] = False
        print(json.dumps(row), flush=True)
        rows_out.append(row)

    # Two processes compile the same kernel into one cache at once.
    env = dict(os.environ, GSA_CACHE_DIR=str(cache / "shared"))
    procs = [subprocess.Popen([sys.executable, __file__, "--lib", args.lib, "--child"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    concurrent_ok = all(p.returncode == 0 for p in procs)
    entries = sorted(os.listdir(cache / "shared")) if (cache / "shared").exists() else []
    concurrent = {"ok": concurrent_ok and len(entries) == 1, "entries": entries,
                  "children": [r[0].strip() or r[1][-300:] for r in results]}

    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime_check.json").write_text(json.dumps({"rows": rows_out,
                                                         "concurrent": concurrent}, indent=2))
    print()
    print(f"libgsa {lib.gsa_version().decode()} on {torch.cuda.get_device_name()}")
    print(f"{'B':>2s} {'L':>6s} {'dtype':5s} {'err o':>9s} {'err lse':>8s} {'ok':>3s} {'kernel ms':>9s} "
          f"{'cold s':>7s} {'warm us':>8s} {'disk us':>8s} {'launch us':>9s}")
    for r in rows_out:
        if "error" in r:
            print(f"{r['B']:>2d} {r['L']:>6d} {r['dtype']:5s} ERROR {r['error']}")
            continue
        print(f"{r['B']:>2d} {r['L']:>6d} {r['dtype']:5s} {r['err_o']:9.2e} {r['err_lse']:8.1e} "
              f"{'yes' if r['ok'] else 'NO':>3s} {r['kernel_ms']:9.3f} {r['cold_s']:7.3f} "
              f"{r['warm_us']:8.1f} {r['disk_us']:8.1f} {r['dispatch_us']:9.1f}")
    print(f"two processes compiling one kernel into one cache: "
          f"{'ok' if concurrent['ok'] else 'FAILED'} (entries: {len(entries)})")
    sys.exit(0 if all(r.get("ok") for r in rows_out) and concurrent["ok"] else 1)


if __name__ == "__main__":
    main()
