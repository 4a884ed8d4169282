#!/usr/bin/env python3
"""Per-kernel GPU time of the whole GSA core (indexer + selection + gated
sparse attention), through libgsa, with torch.profiler (CUPTI sees the
kernels libgsa launches through the driver API).

    python3 bench/device/profile_kernels.py [--lengths 16384,65536] [--inputs structured]

Prints, per L, each kernel's time per call (mean over the profiled calls)
and its share; the raw table goes to $OUT/profile_kernels.jsonl.
"""

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "device"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    parser.add_argument("--lengths", default="16384,65536")
    parser.add_argument("--inputs", default="structured")
    parser.add_argument("--policy", default="fixed")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT", tempfile.mkdtemp()))
    from select_check import gsa_program, use_libgsa
    from gsa_bench import indexer_inputs, reference_variance, NH, NKV, D, K_BASE, K_MIN, K_MAX
    use_libgsa(args.lib, "libgsa-profile.so")
    from gsa._capi import Runtime
    rt = Runtime()
    gen = torch.Generator(device="cuda")
    gen.manual_seed(5)
    stream = lambda: torch.cuda.current_stream().cuda_stream
    log = open(out_dir / "profile_kernels.jsonl", "w")
    for L in (int(x) for x in args.lengths.split(",")):
        x = indexer_inputs(L, args.inputs, gen)
        bf = lambda *s: torch.randn(*s, device="cuda", generator=gen).to(torch.bfloat16)
        x.update(q=bf(1, L, NH, D), k=bf(1, L, NKV, D), v=bf(1, L, NKV, D),
                 gv=bf(1, L, NKV, D), go=bf(1, L, NH, D))
        # The reference variance of a training-mode call on the same inputs
        # (as gsa_bench.py): the adaptive policies then budget the rows as
        # in the benchmark (a fixed 1e-4 gave every row k_min).
        x["rv"] = reference_variance(rt, x)
        shapes = {n: tuple(t.shape) for n, t in x.items()}
        text, names = gsa_program(shapes, "bf16", args.policy, K_BASE, K_MIN, K_MAX,
                                  False, True)
        core = rt.compile(text, [("f32" if n == "rv" else "bf16", shapes[n]) for n in names],
                          backend="cuda")
        outs = [torch.empty_like(x["q"]), torch.empty(1, L, NH, device="cuda"),
                torch.empty(1, L, K_MAX, dtype=torch.int32, device="cuda"),
                torch.empty(1, L, dtype=torch.int32, device="cuda")]
        launch = lambda: core.launch([x[n].data_ptr() for n in names],
                                     [t.data_ptr() for t in outs], stream())
        launch()
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(args.calls):
                launch()
            torch.cuda.synchronize()
        per = defaultdict(float)
        for ev in prof.events():
            if ev.device_type == torch.autograd.DeviceType.CUDA:
                per[ev.name] += ev.device_time_total / 1e3 / args.calls
        total = sum(per.values())
        print(f"L={L} inputs={args.inputs} policy={args.policy}: {total:.2f} ms per call")
        for name, ms in sorted(per.items(), key=lambda kv: -kv[1]):
            print(f"  {ms:9.3f} ms  {100 * ms / total:5.1f}%  {name}")
            log.write(json.dumps(dict(L=L, inputs=args.inputs, policy=args.policy,
                                      kernel=name, ms=ms)) + "\n")
        del core, x, outs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
