#!/usr/bin/env python3
"""Where a cold compile of the whole GSA core goes (issue 6: <= 1 s).

    python3 bench/device/compile_times.py [--lib dist/libgsa.so.xz]
        [--lengths 16384,131072] [--policies fixed,inverse] [--repeats 3]

Compiles issue 6's core program (B = 1, 32/8 heads, d_k 128, H_I 4, d_I 64,
bf16, k 2048 in [256, 4096], inference) for the GPU, each time in a fresh
runtime with the disk cache off, with GSA_COMPILE_TIMES=1, and reads the
runtime's report from its stderr: the front end, the GPU pipeline and each
kernel's LLVM / NVPTX time in it (in parallel: the longest bounds it; its
LLVM optimiser and NVPTX back end apart), and ptxas (the module's kernels in
parallel, `-split-compile 0`; with GSA_PTXAS_PER_KERNEL=1 each kernel's ptxas
runs on its thread right after its LLVM, inside the kernel's time). No GPU is
needed. Prints one row per compile and, last, the median per phase; the
raw reports go to $OUT/compile_times.txt.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "python"))

SUMMARY = re.compile(r"gsa: compiled '@\w+' for the GPU in ([0-9.]+) s: front end ([0-9.]+) s, "
                     r"GPU pipeline ([0-9.]+) s \(kernels above\), ptxas ([0-9.]+) s")
KERNEL = re.compile(r"gsa-serialize-kernels: +([0-9.]+) ms (\S+) \(to LLVM IR ([0-9.]+), "
                    r"link ([0-9.]+), optimise ([0-9.]+), back end ([0-9.]+)"
                    r"(?:, ptxas ([0-9.]+))?\)")


def compile_once(text, specs):
    """One cold compile in a fresh runtime; (wall s, the runtime's stderr)."""
    from gsa._capi import Runtime
    with tempfile.TemporaryFile(mode="w+") as err:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            rt = Runtime()
            t0 = time.perf_counter()
            rt.compile(text, specs, backend="cuda")
            wall = time.perf_counter() - t0
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return wall, err.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", default="")
    parser.add_argument("--lengths", default="16384,131072")
    parser.add_argument("--policies", default="fixed,inverse")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.lib:
        from select_check import use_libgsa
        use_libgsa(args.lib, "libgsa-compile-times.so")
    from select_check import gsa_program
    os.environ["GSA_DISABLE_CACHE"] = "1"
    os.environ["GSA_COMPILE_TIMES"] = "1"
    out = Path(os.environ.get("OUT", tempfile.gettempdir()))
    rows = []
    with open(out / "compile_times.txt", "w") as log:
        for L in map(int, args.lengths.split(",")):
            shapes = dict(q=(1, L, 32, 128), k=(1, L, 8, 128), v=(1, L, 8, 128),
                          qi=(1, L, 4, 64), ki=(1, L, 64), wi=(1, L, 4), bi=(4,),
                          gv=(1, L, 8, 128), go=(1, L, 32, 128), rv=())
            for policy in args.policies.split(","):
                text, names = gsa_program(shapes, "bf16", policy, 2048, 256, 4096, False, True)
                specs = [("f32" if n == "rv" else "bf16", shapes[n]) for n in names]
                for rep in range(args.repeats):
                    wall, err = compile_once(text, specs)
                    log.write(f"== L {L} {policy} #{rep}: wall {wall:.3f} s\n{err}\n")
                    summary = SUMMARY.search(err)
                    kernels = [(float(k[0]), k[1], float(k[4]), float(k[5]))
                               for k in KERNEL.findall(err)]
                    if not summary or not kernels:
                        print(f"L {L} {policy} #{rep}: no report in stderr:\n{err}")
                        return 1
                    total, front, pipeline, ptxas = map(float, summary.groups())
                    longest_ms, longest, opt_ms, back_ms = max(kernels)
                    rows.append(dict(L=L, policy=policy, wall=wall, total=total, front=front,
                                     pipeline=pipeline, longest=longest, longest_s=longest_ms / 1e3,
                                     longest_opt_s=opt_ms / 1e3, longest_back_s=back_ms / 1e3,
                                     kernels_s=sum(k[0] for k in kernels) / 1e3, ptxas=ptxas))
    print(f"{'L':>7} {'policy':>8} {'wall s':>7} {'front':>6} {'pipeline':>8} "
          f"{'longest kernel (LLVM)':>36} {'opt':>6} {'back':>6} {'sum':>6} {'ptxas':>6}")
    for r in rows:
        print(f"{r['L']:7d} {r['policy']:>8} {r['wall']:7.3f} {r['front']:6.3f} "
              f"{r['pipeline']:8.3f} {r['longest']:>29} {r['longest_s']:6.3f} "
              f"{r['longest_opt_s']:6.3f} {r['longest_back_s']:6.3f} "
              f"{r['kernels_s']:6.3f} {r['ptxas']:6.3f}")
    med = lambda k: statistics.median(r[k] for r in rows)
    print(f"median over {len(rows)}: wall {med('wall'):.3f} s = front {med('front'):.3f} + "
          f"pipeline {med('pipeline'):.3f} (longest kernel {med('longest_s'):.3f}: optimise "
          f"{med('longest_opt_s'):.3f}, back end {med('longest_back_s'):.3f}; all kernels "
          f"{med('kernels_s'):.3f} on their threads) + ptxas {med('ptxas'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
