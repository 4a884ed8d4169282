#!/usr/bin/env python3
"""The GPU device suite (runs on the GPU machine, with torch).

For every case that bench/device/prepare_cases.py compiled (PTX + launch
manifest from gsa-compile), this script:
  1. loads the PTX through the CUDA driver API (ctypes over libcuda.so.1),
  2. draws fresh random inputs and random causal selections (k_t = min(K, t+1)),
  3. poisons the outputs (NaN), launches the kernel as the manifest says on
     torch's current stream, checks every launch's return code,
  4. compares o and lse with a float64 reference computed with torch on the
     same inputs and the same selected set (all rows for small cases,
     a random sample of rows for large ones; every row checked for NaN),
  5. times the kernel with CUDA events (warm-up, median of repeats) beside
     PyTorch SDPA on the cuDNN backend (dense causal GQA) at the same shape,
and prints one table last. Full results go to $OUT/device_check.json.

    python3 bench/device/device_check.py --cases build-device/cases.json [--only NAME]

Historical (attention v1-v3): it launches each manifest's first kernel only,
so it does not fit today's default lowering (value-gate pre-pass, union
kernel, tile attention, runtime scratch); bench/device/select_check.py checks
the current kernels through the runtime.
"""

import argparse
import ctypes
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

GEMM_TFLOPS = 673.0     # ../shared/ANCHORS.md, bf16 GEMM on this H100
COPY_TBPS = 3.0         # device-to-device copy, read + write


class Driver:
    """The few CUDA driver calls the suite needs, with checked returns."""

    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.lib.cuGetErrorString.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        self.lib.cuModuleLoadData.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
        self.lib.cuModuleGetFunction.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
                                                 ctypes.c_char_p]
        self.lib.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]

    def check(self, rc, what):
        if rc != 0:
            msg = ctypes.c_char_p()
            self.lib.cuGetErrorString(rc, ctypes.byref(msg))
            raise RuntimeError(f"{what}: CUDA error {rc}: {msg.value.decode() if msg.value else '?'}")

    def load(self, ptx: bytes, kernel: str):
        module = ctypes.c_void_p()
        self.check(self.lib.cuModuleLoadData(ctypes.byref(module), ptx + b"\0"), "cuModuleLoadData")
        fn = ctypes.c_void_p()
        self.check(self.lib.cuModuleGetFunction(ctypes.byref(fn), module, kernel.encode()),
                   "cuModuleGetFunction")
        return fn

    def launch(self, fn, grid, block, pointers, stream):
        values = [ctypes.c_void_p(p) for p in pointers]
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        self.check(self.lib.cuLaunchKernel(fn, *grid, *block, 0, ctypes.c_void_p(stream),
                                           params, None), "cuLaunchKernel")


def random_selection(B, L, K, device, gen):
    """Random causal selected sets: k_t = min(K, t+1) distinct positions <= t."""
    idx = torch.full((B, L, K), -1, dtype=torch.int32, device=device)
    chunk = 1024
    for b in range(B):
        for start in range(0, L, chunk):
            rows = torch.arange(start, min(L, start + chunk), device=device)
            r = torch.rand(len(rows), L, device=device, generator=gen)
            r = r.masked_fill(torch.arange(L, device=device)[None, :] > rows[:, None], -1.0)
            kk = min(K, L)
            top = torch.topk(r, kk, dim=1)
            sel = top.indices.to(torch.int32)
            sel = torch.where(top.values < 0, torch.full_like(sel, -1), sel)
            idx[b, rows, :kk] = sel
    counts = torch.clamp(torch.arange(1, L + 1, device=device), max=K).to(torch.int32)
    return idx, counts.expand(B, L).contiguous()


def reference_rows(q, k, v, gv, go, idx, cnt, rows, scale):
    """float64 o and lse for the query rows (b, t) listed in `rows`."""
    B, L, NH, D = q.shape
    NKV = k.shape[2]
    G = NH // NKV
    outs, lses = [], []
    for chunk in torch.split(rows, 64):
        b, t = chunk[:, 0], chunk[:, 1]
        sel = idx[b, t].long()                                   # [R, K]
        valid = (sel >= 0) & (torch.arange(sel.shape[1], device=sel.device)[None] < cnt[b, t][:, None])
        s_safe = sel.clamp(min=0)
        kk = k[b[:, None], s_safe].double()                       # [R, K, NKV, D]
        vv = v[b[:, None], s_safe].double()
        if gv is not None:
            vv = vv * torch.sigmoid(gv[b[:, None], s_safe].double())
        qq = q[b, t].double().view(-1, NKV, G, D)                  # [R, NKV, G, D]
        scores = torch.einsum("rngd,rknd->rngk", qq, kk) * scale
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        lse = torch.logsumexp(scores, dim=-1)                      # [R, NKV, G]
        p = torch.exp(scores - lse[..., None])
        o = torch.einsum("rngk,rknd->rngd", p, vv).reshape(-1, NH, D)
        if go is not None:
            o = o * torch.sigmoid(go[b, t].double())
        outs.append(o)
        lses.append(lse.reshape(-1, NH))
    return torch.cat(outs), torch.cat(lses)


def time_ms(fn, warmup=3, repeat=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), min(times), max(times)


def run_case(case, root, driver, args, log):
    name = case["name"]
    B, L, NH, NKV, D, K = (case[x] for x in ("B", "L", "n_h", "n_kv", "d", "K"))
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[case["dtype"]]
    manifest = json.loads((root / case["manifest"]).read_text())
    launch = manifest["launches"][0]
    t0 = time.perf_counter()
    fn = driver.load((root / case["ptx"]).read_bytes(), launch["kernel"])
    load_s = time.perf_counter() - t0

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234 + L + B)
    rnd = lambda *shape: torch.randn(*shape, device=dev, generator=gen).to(dtype)
    q, k, v = rnd(B, L, NH, D), rnd(B, L, NKV, D), rnd(B, L, NKV, D)
    gv = rnd(B, L, NKV, D) if case["gates"] else None
    go = rnd(B, L, NH, D) if case["gates"] else None
    idx, cnt = random_selection(B, L, K, dev, gen)
    o = torch.full((B, L, NH, D), float("nan"), dtype=dtype, device=dev)
    lse = torch.full((B, L, NH), float("nan"), dtype=torch.float32, device=dev)
    args_by_role = [q, k, v, idx, cnt] + ([gv, go] if case["gates"] else [])
    pointers = []
    for p in launch["params"]:
        if "arg" in p:
            pointers.append(args_by_role[p["arg"]].data_ptr())
        else:
            pointers.append([o, lse][p["result"]].data_ptr())
    stream = torch.cuda.current_stream().cuda_stream
    grid, block = launch["grid"], launch["block"]
    go_fn = lambda: driver.launch(fn, grid, block, pointers, stream)
    go_fn()
    torch.cuda.synchronize()

    unwritten = int(torch.isnan(o).sum().item() + torch.isnan(lse).sum().item())
    nonfinite_o = int((~torch.isfinite(o)).sum().item())
    scale = 1.0 / math.sqrt(D)
    all_rows = torch.stack(torch.meshgrid(torch.arange(B, device=dev), torch.arange(L, device=dev),
                                          indexing="ij"), -1).reshape(-1, 2)
    if len(all_rows) > args.max_rows:
        pick = torch.randperm(len(all_rows), device=dev, generator=gen)[:args.max_rows]
        rows = all_rows[pick]
    else:
        rows = all_rows
    o_ref, lse_ref = reference_rows(q, k, v, gv, go, idx, cnt, rows, scale)
    o_got = o[rows[:, 0], rows[:, 1]].double()
    lse_got = lse[rows[:, 0], rows[:, 1]].double()
    err_o = (torch.linalg.norm(o_got - o_ref) / torch.linalg.norm(o_ref)).item()
    err_lse = (torch.linalg.norm(lse_got - lse_ref) / torch.linalg.norm(lse_ref)).item()
    tol = 1e-2 if case["dtype"] == "bf16" else 3e-3
    ok = unwritten == 0 and nonfinite_o == 0 and err_o < tol and err_lse < 1e-3

    result = dict(case, load_s=load_s, checked_rows=len(rows), err_o=err_o, err_lse=err_lse,
                  unwritten=unwritten, ok=ok)
    if not args.no_time:
        med, lo, hi = time_ms(go_fn)
        # Work of the selected sets: QK and PV, 2 FLOPs per MAC.
        selected = float(cnt.sum().item())
        flops = 4.0 * selected * NH * D
        # Bytes a per-query gather moves: one K and one V row (and a gv row)
        # per selected position and key/value head.
        gathered = selected * NKV * D * q.element_size() * (3 if case["gates"] else 2)
        result.update(time_ms=med, time_min_ms=lo, time_max_ms=hi,
                      tflops=flops / med / 1e9, gathered_gbs=gathered / med / 1e6,
                      floor_flops_ms=flops / (GEMM_TFLOPS * 1e12) * 1e3,
                      floor_gather_ms=gathered / (COPY_TBPS * 1e12) * 1e3)
        if B == 1 and L >= 4096:
            qd = torch.randn(B, NH, L, D, device=dev, dtype=dtype)
            kd = torch.randn(B, NKV, L, D, device=dev, dtype=dtype)
            vd = torch.randn(B, NKV, L, D, device=dev, dtype=dtype)
            try:
                from torch.nn.attention import SDPBackend, sdpa_kernel
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    dense = lambda: F.scaled_dot_product_attention(qd, kd, vd, is_causal=True,
                                                                   enable_gqa=True)
                    dmed, _, _ = time_ms(dense)
                result.update(cudnn_dense_ms=dmed, speedup_vs_cudnn=dmed / med)
            except Exception as exc:  # report, do not hide
                result.update(cudnn_error=str(exc)[:200])
    log.write(json.dumps(result) + "\n")
    log.flush()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="build-device/cases.json")
    parser.add_argument("--only", default="")
    parser.add_argument("--no-time", action="store_true")
    parser.add_argument("--max-rows", type=int, default=2048)
    parser.add_argument("--memcheck", default="small_ragged_bf16",
                        help="case to rerun under compute-sanitizer memcheck ('' = none)")
    args = parser.parse_args()
    cases_path = Path(args.cases)
    root = cases_path.parent
    cases = json.loads(cases_path.read_text())
    if args.only:
        cases = [c for c in cases if c["name"] in args.only.split(",")]
    out = Path(os.environ.get("OUT", "."))
    out.mkdir(parents=True, exist_ok=True)
    torch.cuda.init()
    torch.empty(1, device="cuda")  # the primary context, current on this thread
    driver = Driver()
    results = []
    with open(out / "device_check.jsonl", "a") as log:
        for case in cases:
            try:
                results.append(run_case(case, root, driver, args, log))
            except Exception as exc:
                results.append(dict(case, ok=False, error=str(exc)[:300]))
                log.write(json.dumps(results[-1]) + "\n")
            print(json.dumps(results[-1]), flush=True)

    memcheck = None
    sanitizer = shutil.which("compute-sanitizer") or (
        "/usr/local/cuda/bin/compute-sanitizer"
        if Path("/usr/local/cuda/bin/compute-sanitizer").exists() else None)
    if args.memcheck and not args.only:
        if sanitizer:
            proc = subprocess.run([sanitizer, "--tool", "memcheck", sys.executable, __file__,
                                   "--cases", str(cases_path), "--only", args.memcheck,
                                   "--no-time", "--memcheck", ""],
                                  capture_output=True, text=True, timeout=300,
                                  env=dict(os.environ, OUT=str(out / "memcheck")))
            (out / "memcheck.log").write_text(proc.stdout + proc.stderr)
            summary = [l for l in (proc.stdout + proc.stderr).splitlines() if "ERROR SUMMARY" in l]
            memcheck = summary[-1] if summary else f"no summary (rc {proc.returncode})"
        else:
            memcheck = "compute-sanitizer not found on this machine"

    (out / "device_check.json").write_text(json.dumps({"results": results, "memcheck": memcheck},
                                                      indent=2))
    print()
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__}")
    header = (f"{'case':22s} {'dtype':5s} {'max-rel-err o':>13s} {'lse':>9s} {'ok':>3s} "
              f"{'ms':>8s} {'TFLOP/s':>8s} {'GB/s':>7s} {'floor ms':>8s} {'cuDNN ms':>8s} "
              f"{'x cuDNN':>7s} {'compile s':>9s} {'load s':>6s}")
    print(header)
    for r in results:
        if "error" in r:
            print(f"{r['name']:22s} ERROR {r['error']}")
            continue
        print(f"{r['name']:22s} {r['dtype']:5s} {r['err_o']:13.2e} {r['err_lse']:9.1e} "
              f"{'yes' if r['ok'] else 'NO':>3s} {r.get('time_ms', float('nan')):8.3f} "
              f"{r.get('tflops', float('nan')):8.2f} {r.get('gathered_gbs', float('nan')):7.0f} "
              f"{max(r.get('floor_flops_ms', 0), r.get('floor_gather_ms', 0)):8.3f} "
              f"{r.get('cudnn_dense_ms', float('nan')):8.3f} "
              f"{r.get('speedup_vs_cudnn', float('nan')):7.2f} {r['compile_s']:9.3f} {r['load_s']:6.3f}")
    print(f"memcheck ({args.memcheck}): {memcheck}")
    sys.exit(0 if all(r.get("ok") for r in results) else 1)


if __name__ == "__main__":
    main()
