#!/usr/bin/env python3
"""Reproduces a failure of the training-mode selection that gsa_bench.py's
reference_variance runs (indexer + inverse adaptive top-k, running_var 0)
on the benchmark's own inputs, each attempt in a fresh process (a CUDA
fault ends its context):

    python3 bench/device/variance_repro.py [--lib L] [--length 65536] [--seeds 0,1]
        [--options "select-dense-tiles=0"] [--sanitize]

`--bench` inputs are gsa_bench.py's at --length: its generator (seed 3)
advanced through the shorter lengths of its default run first, in its
order; `--seeds` adds structured inputs from fresh generators. Each line
says the attempt, its GSA_GPU_OPTIONS, and ok / the error's last line.
`--sanitize TOOL` runs the first attempt under compute-sanitizer's TOOL
(its report goes to $OUT/TOOL.txt); `--warm N` runs the selection at
length N first in the same process; `--poison G` fills G GiB of the
memory pool the scratch comes from with 0xff bytes first (what the
scratch holds when earlier work recycled it).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(lib, length, seed, warm, poison):
    if poison:
        # PyTorch on the device's default memory pool (cudaMallocAsync), the
        # pool libgsa's scratch comes from: its freed blocks stay in the pool.
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "backend:cudaMallocAsync"
    import torch
    if poison:
        # Fill and free: the scratch of the next launches starts as 0xff
        # bytes (-1 as i32, NaN as f32) instead of fresh zeroed pages.
        junk = torch.empty(int(poison * 2**30), dtype=torch.uint8, device="cuda")
        junk.fill_(0xFF)
        del junk
        torch.cuda.synchronize()
    sys.path.insert(0, str(ROOT / "python"))
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "bench" / "device"))
    from select_check import use_libgsa
    from gsa_bench import indexer_inputs, reference_variance, NH, NKV, D
    use_libgsa(lib, "libgsa-repro.so")
    from gsa._capi import Runtime
    rt = Runtime()
    gen = torch.Generator(device="cuda")
    if warm:
        gen.manual_seed(7)
        reference_variance(rt, indexer_inputs(warm, "structured", gen))
    if seed < 0:
        # gsa_bench.py's sequence: per length five bf16 tensors, then the
        # structured and random indexer inputs.
        gen.manual_seed(3)
        for L in (4096, 16384, 65536, 131072):
            for shape in ((1, L, NH, D), (1, L, NKV, D), (1, L, NKV, D), (1, L, NKV, D),
                          (1, L, NH, D)):
                torch.randn(*shape, device="cuda", generator=gen)
            if L == length:
                break
            indexer_inputs(L, "structured", gen)
            indexer_inputs(L, "random", gen)
    else:
        gen.manual_seed(seed)
    x = indexer_inputs(length, "structured", gen)
    nv = reference_variance(rt, x)
    print(f"ok: running variance {float(nv):.6g}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    parser.add_argument("--length", type=int, default=65536)
    parser.add_argument("--seeds", default="")
    parser.add_argument("--options", default="",
                        help="space-separated GSA_GPU_OPTIONS settings, one attempt each "
                             "('-' for the defaults)")
    parser.add_argument("--sanitize", default="",
                        help="compute-sanitizer tool for the first attempt "
                             "(memcheck, initcheck, racecheck)")
    parser.add_argument("--poison", type=float, default=0,
                        help="GiB of the device's memory pool filled with 0xff bytes "
                             "and freed before the selection runs")
    parser.add_argument("--warm", type=int, default=0,
                        help="first run the same selection at this length in the "
                             "same process (the runtime's memory pool recycled)")
    parser.add_argument("--child", type=int, default=None)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.lib, args.length, args.child, args.warm, args.poison)
    out = Path(os.environ.get("OUT", "/tmp"))
    attempts = [-1] + [int(s) for s in args.seeds.split(",") if s]
    settings = args.options.split() or ["-"]
    first = True
    for setting in settings:
        env = dict(os.environ)
        if setting != "-":
            env["GSA_GPU_OPTIONS"] = setting.replace("+", " ")
        for seed in attempts:
            cmd = [sys.executable, __file__, "--lib", args.lib, "--length", str(args.length),
                   "--child", str(seed), "--warm", str(args.warm),
                   "--poison", str(args.poison)]
            if args.sanitize and first:
                cmd = ["compute-sanitizer", "--tool", args.sanitize, "--print-limit", "20",
                       "--log-file", str(out / f"{args.sanitize}.txt")] + cmd
            first = False
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            lines = (r.stdout + r.stderr).strip().splitlines()
            last = [l for l in lines if "ok:" in l or "Error" in l or "error" in l]
            name = "bench" if seed < 0 else f"seed {seed}"
            print(f"L {args.length} {name:8} options [{setting}] rc {r.returncode}: "
                  f"{(last or lines or ['-'])[-1][:150]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
