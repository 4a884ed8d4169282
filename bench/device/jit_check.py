#!/usr/bin/env python3
"""Issue 6's JIT targets for the whole GSA core, measured through libgsa:
cold compile of the whole kernel set <= 1 s, warm dispatch <= 10 us of host
time per launch.

    python3 bench/device/jit_check.py [--lib dist/libgsa.so.xz] [--lengths 4096,131072]

Per L (B = 1, 32/8 heads, d_k 128, H_I 4, d_I 64, bf16, fixed k = 2048 and
the inverse policy at inference), one composite-op program, each
measurement with its own empty kernel cache:
  - cold compile, the first in the process (LLVM's one-time set-up included),
    then again with a fresh cache and context (the steady cold compile), and
    once without ptxas (GSA_PTXAS=0: the MLIR/LLVM pipeline alone, the PTX
    left to the driver's JIT at load time);
  - the memory hit (gsa_compile of the same program again: hashing the text
    and a lookup) and the disk hit (a new context, the same cache directory);
  - the first launch's host time (the module load) and the warm launch's:
    host wall time of one gsa_launch_with_workspace call (a direct ctypes call
    with prebuilt arguments), median over back-to-back launches, once with
    every kernel launched directly (GSA_DISABLE_GRAPHS=1) and once replaying
    the CUDA graph the runtime records for a set of buffers launched twice
    (the recording launch's time too, and the median and maximum of the
    replays); the replays' outputs, poisoned first, must equal the direct
    launches' bit for bit;
  - the Python functional call (gsa.functional.gated_sparse_attention on
    CUDA tensors: program text, cache lookup, outputs and workspace from
    torch, launch), host wall time per call, and under cProfile the
    functions taking most of it (their own time per call in the row,
    the table in $OUT/functional_profile_<L>_<policy>.txt).
Host times are wall times of the calls themselves (the GPU runs behind
them); every launch's outputs are checked finite at the end. Prints one
table last; writes JSON to $OUT/jit_check.json.
"""

import argparse
import cProfile
import ctypes
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from select_check import ROOT, gsa_program, use_libgsa  # noqa: E402

NH, NKV, D, H, DI = 32, 8, 128, 4, 64
K_BASE, K_MIN, K_MAX = 2048, 256, 4096


def fresh_cache():
    os.environ["GSA_CACHE_DIR"] = tempfile.mkdtemp(prefix="gsa-jit-")


def poison(outs):
    """The core's outputs (o, lse, indices, counts) set to values no launch
    writes."""
    outs[0].fill_(float("nan"))
    outs[1].fill_(float("nan"))
    outs[2].fill_(-7)
    outs[3].fill_(-7)


def host_times(lib, launch, n):
    """Host wall time (s) of each of n back-to-back calls of launch()."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        rc = launch()
        times.append(time.perf_counter() - t0)
        assert rc == 0, lib.gsa_last_error()
    return times


def compile_core(gsa, text, names, shapes):
    rt = gsa._capi.Runtime()
    t0 = time.perf_counter()
    kernel = rt.compile(text, [("f32" if n == "rv" else "bf16", shapes[n]) for n in names],
                        backend="cuda")
    return rt, kernel, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    ap.add_argument("--lengths", default="4096,131072")
    ap.add_argument("--policies", default="fixed,inverse")
    ap.add_argument("--launches", type=int, default=20,
                    help="back-to-back launches timed per row")
    args = ap.parse_args()
    use_libgsa(args.lib, "libgsa-jit.so")
    sys.path.insert(0, str(ROOT / "python"))
    import gsa  # noqa: E402
    import gsa._capi  # noqa: E402
    import gsa.functional  # noqa: E402
    out_dir = Path(os.environ.get("OUT", "/tmp"))
    gen = torch.Generator(device="cuda").manual_seed(7)
    rows = []
    first = True
    for L in (int(x) for x in args.lengths.split(",")):
        bf = lambda *s: torch.randn(*s, device="cuda", generator=gen).to(torch.bfloat16)
        feed = dict(q=bf(1, L, NH, D), k=bf(1, L, NKV, D), v=bf(1, L, NKV, D),
                    qi=bf(1, L, H, DI), ki=bf(1, L, DI), wi=bf(1, L, H),
                    bi=torch.zeros(H, device="cuda", dtype=torch.bfloat16),
                    gv=bf(1, L, NKV, D), go=bf(1, L, NH, D),
                    rv=torch.tensor(0.05, device="cuda"))
        shapes = {n: tuple(t.shape) for n, t in feed.items()}
        for policy in args.policies.split(","):
            text, names = gsa_program(shapes, "bf16", policy, K_BASE, K_MIN, K_MAX,
                                      False, True)
            row = dict(L=L, policy=policy)
            # cold: first in the process (only the first row), then steady
            fresh_cache()
            rt, kernel, cold = compile_core(gsa, text, names, shapes)
            row["cold_first_s" if first else "cold_s"] = cold
            if first:
                fresh_cache()
                rt, kernel, row["cold_s"] = compile_core(gsa, text, names, shapes)
                first = False
            # the pipeline alone: no cubin (the driver's JIT would assemble
            # the PTX at load time; not launched)
            fresh_cache()
            os.environ["GSA_PTXAS"] = "0"
            _, _, row["cold_no_ptxas_s"] = compile_core(gsa, text, names, shapes)
            del os.environ["GSA_PTXAS"]
            # disk hit: a new context over the cache the steady cold compile
            # filled is gone (fresh_cache moved on): compile once more into a
            # known directory, then read it from a new context
            fresh_cache()
            compile_core(gsa, text, names, shapes)
            _, _, row["disk_hit_s"] = compile_core(gsa, text, names, shapes)
            # memory hit, the C call with prebuilt arguments
            lib = gsa._capi._library()
            descs = (gsa._capi._Desc * len(names))()
            for i, n in enumerate(names):
                descs[i].dtype = gsa._capi.DTYPES["f32" if n == "rv" else "bf16"]
                descs[i].rank = len(shapes[n])
                for j, s in enumerate(shapes[n]):
                    descs[i].shape[j] = s
            encoded = text.encode()
            hits = []
            for _ in range(200):
                t0 = time.perf_counter()
                handle = lib.gsa_compile(rt._ctx, encoded, None, 1, len(names), descs)
                hits.append(time.perf_counter() - t0)
                lib.gsa_kernel_release(handle)
            row["memory_hit_us"] = statistics.median(hits) * 1e6
            # launches: outputs poisoned, workspace from torch
            outs = [torch.empty((1, L, NH, D), device="cuda", dtype=torch.bfloat16),
                    torch.empty((1, L, NH), device="cuda"),
                    torch.empty((1, L, K_MAX), device="cuda", dtype=torch.int32),
                    torch.empty((1, L), device="cuda", dtype=torch.int32)]
            poison(outs)
            size = kernel.workspace_bytes
            ws = torch.empty(size, dtype=torch.uint8, device="cuda")
            ins = (ctypes.c_void_p * len(names))(*[feed[n].data_ptr() for n in names])
            outp = (ctypes.c_void_p * len(outs))(*[t.data_ptr() for t in outs])
            stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
            wsp, wsn = ctypes.c_void_p(ws.data_ptr()), ctypes.c_uint64(size)
            launch = lambda: lib.gsa_launch_with_workspace(kernel._handle, ins, outp, wsp,
                                                           wsn, stream)
            # direct launches (GSA_DISABLE_GRAPHS=1): the first loads the
            # module, the others are timed; their outputs are the reference
            os.environ["GSA_DISABLE_GRAPHS"] = "1"
            torch.cuda.synchronize()
            row["first_launch_ms"] = host_times(lib, launch, 1)[0] * 1e3
            torch.cuda.synchronize()
            times = host_times(lib, launch, args.launches)
            torch.cuda.synchronize()
            row["launch_direct_us"] = statistics.median(times) * 1e6
            ok = bool(torch.isfinite(outs[0].float()).all() and torch.isfinite(outs[1]).all()
                      and (outs[3] > 0).all())
            reference = [t.clone() for t in outs]
            # graphs (the default): the first launch of these buffers goes
            # direct, the second records the graph and launches it, the
            # others replay it; outputs poisoned after the direct one, so
            # that what is compared with the direct launches (bit for bit)
            # was written by the graph's launches only
            del os.environ["GSA_DISABLE_GRAPHS"]
            assert launch() == 0, lib.gsa_last_error()
            torch.cuda.synchronize()
            poison(outs)
            torch.cuda.synchronize()
            row["record_launch_us"] = host_times(lib, launch, 1)[0] * 1e6
            times = host_times(lib, launch, args.launches)
            torch.cuda.synchronize()
            row["launch_us"] = statistics.median(times) * 1e6
            row["launch_max_us"] = max(times) * 1e6
            row["graph_equal"] = all(torch.equal(a, b) for a, b in zip(outs, reference))
            ok = ok and row["graph_equal"]
            # inside a caller's stream capture (torch.cuda.graph): two
            # launches on one buffer set - the second would record and
            # launch a graph of ours, which a capturing stream refuses, so
            # the runtime launches directly and the capture records those
            # launches; the captured graph's replay must give the reference
            try:
                poison(outs)
                captured = torch.cuda.CUDAGraph()
                with torch.cuda.graph(captured):
                    side = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                    for _ in range(2):
                        rc = lib.gsa_launch_with_workspace(kernel._handle, ins, outp, wsp,
                                                           wsn, side)
                        assert rc == 0, lib.gsa_last_error()
                captured.replay()
                torch.cuda.synchronize()
                row["caller_capture_equal"] = all(torch.equal(a, b)
                                                  for a, b in zip(outs, reference))
            except Exception as err:  # noqa: BLE001 (reported in the row)
                row["caller_capture_equal"] = False
                row["caller_capture_error"] = str(err)
            ok = ok and row["caller_capture_equal"]
            # the functional path (its own program text: k_min / k_max of
            # the op's defaults); the first call compiles, not timed
            fn = lambda: gsa.functional.gated_sparse_attention(
                feed["q"], feed["k"], feed["v"], feed["qi"], feed["ki"], feed["wi"],
                feed["bi"], feed["gv"], feed["go"], policy=policy, k_base=K_BASE,
                k_min=K_MIN, k_max=K_MAX, running_var=0.05)
            res = fn()
            torch.cuda.synchronize()
            ftimes = []
            for _ in range(args.launches):
                t0 = time.perf_counter()
                res = fn()
                ftimes.append(time.perf_counter() - t0)
            torch.cuda.synchronize()
            ok = ok and bool(torch.isfinite(res[0].float()).all())
            row["functional_us"] = statistics.median(ftimes) * 1e6
            # Where the Python call's host time goes (cProfile inflates every
            # call, so read the shares, not the sums): the functions with the
            # most time of their own, per call; the whole table to $OUT.
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.launches):
                res = fn()
            profiler.disable()
            torch.cuda.synchronize()
            table = io.StringIO()
            stats = pstats.Stats(profiler, stream=table).sort_stats("tottime")
            stats.print_stats(25)
            (out_dir / f"functional_profile_{L}_{policy}.txt").write_text(table.getvalue())
            own = sorted(((v[2], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.stats.items()),
                         reverse=True)[:6]
            row["functional_top_us"] = [[name, round(t / args.launches * 1e6, 1)]
                                        for t, name in own]
            row["ok"] = ok
            rows.append(row)
            print(json.dumps(row), flush=True)
            del outs, ws, res, kernel, rt
        del feed
        torch.cuda.empty_cache()
    (out_dir / "jit_check.json").write_text(json.dumps(rows, indent=1))
    print()
    print(f"{'L':>7} {'policy':>8} {'cold 1st s':>10} {'cold s':>7} {'no ptxas s':>10} "
          f"{'disk hit s':>10} {'mem hit us':>10} {'load ms':>8} {'direct us':>9} "
          f"{'record us':>9} {'graph us':>8} {'max us':>7} {'python us':>9} {'equal':>5} {'capture':>7} ok")
    for r in rows:
        print(f"{r['L']:>7} {r['policy']:>8} {r.get('cold_first_s', float('nan')):10.3f} "
              f"{r['cold_s']:7.3f} {r['cold_no_ptxas_s']:10.3f} {r['disk_hit_s']:10.4f} "
              f"{r['memory_hit_us']:10.1f} {r['first_launch_ms']:8.2f} "
              f"{r['launch_direct_us']:9.1f} {r['record_launch_us']:9.1f} {r['launch_us']:8.1f} "
              f"{r['launch_max_us']:7.1f} {r['functional_us']:9.1f} "
              f"{'yes' if r['graph_equal'] else 'NO':>5} "
              f"{'yes' if r['caller_capture_equal'] else 'NO':>7} {'yes' if r['ok'] else 'NO'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
