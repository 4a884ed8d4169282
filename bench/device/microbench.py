#!/usr/bin/env python3
"""Throughput of the H100 units the selection and attention kernels lean on,
measured directly (the floors in benchmark.md take their rates from here):

  mufu   elements per SM and clock of tanh.approx / ex2.approx / rcp / lg2 /
         sin (f32) and of the packed f16x2 / bf16x2 tanh and ex2: 8
         independent chains per thread, 32 or 64 warps per SM;
  wgmma  TFLOP/s of wgmma.mma_async m64nNk16 (bf16, f32 accumulators) in
         chains of 5 or 10 k-steps with a wait after each chain (the stats
         sweep's pattern), A from registers (rs) or shared memory (ss),
         1-3 CTAs of two warpgroups per SM.

The kernels are PTX written here, assembled by ptxas for sm_90a where it is
found (as libgsa's runtime does) or else loaded as PTX through the driver's
JIT (`--jit` forces that). Timing: CUDA events around one launch after two
warm-up launches; rates per SM use the time and the SM count (no clock
assumption). Usage on the device:

    python3 bench/device/microbench.py [--only mufu|wgmma] > $OUT/microbench.txt
"""
import argparse
import ctypes
import itertools
import os
import shutil
import subprocess
import tempfile

CHAINS, UNROLL = 8, 4
MUFU = {
    # name: (register type, instruction(s) with {d} {s}, elements per op)
    "tanh.approx.f32": ("f32", "tanh.approx.f32 {d}, {s};", 1),
    "ex2.approx.ftz.f32": ("f32", "ex2.approx.ftz.f32 {d}, {s};", 1),
    # rcp and lg2 chains would cancel (rcp(rcp x) = x): an add keeps them
    # apart (the add runs on the FMA pipe beside the MUFU).
    "rcp.approx.ftz.f32 (+add)": ("f32", "rcp.approx.ftz.f32 {d}, {s}; add.f32 {d}, {d}, 0f3F800000;", 1),
    "lg2.approx.ftz.f32 (+add)": ("f32", "lg2.approx.ftz.f32 {d}, {s}; add.f32 {d}, {d}, 0f40000000;", 1),
    "sin.approx.ftz.f32": ("f32", "sin.approx.ftz.f32 {d}, {s};", 1),
    "tanh.approx.f16x2": ("b32", "tanh.approx.f16x2 {d}, {s};", 2),
    "tanh.approx.bf16x2": ("b32", "tanh.approx.bf16x2 {d}, {s};", 2),
    "ex2.approx.f16x2": ("b32", "ex2.approx.f16x2 {d}, {s};", 2),
    "ex2.approx.ftz.bf16x2": ("b32", "ex2.approx.ftz.bf16x2 {d}, {s};", 2),
}
# 128-byte swizzle, leading offset 1 (16 bytes), stride offset 64 (1024
# bytes): the stats sweep's descriptor constant; the operands' values do not
# matter for throughput (shared memory is left as it is).
DESCRIPTOR = 4611686293305360384


def kernel_start(globals_=()):
    """Kernel `k(out, iters)` up to its loop: the loop counter, the bound."""
    return [".version 8.7", ".target sm_90a", ".address_size 64", "", *globals_,
            ".visible .entry k(.param .u64 out, .param .u32 iters)", "{",
            "  .reg .u32 %i, %n;", "  .reg .pred %more;", "  ld.param.u32 %n, [iters];"]


def loop(body):
    """`body` (lines) run `iters` times."""
    return ["  mov.u32 %i, 0;", "LOOP:", *body, "  add.u32 %i, %i, 1;",
            "  setp.lt.u32 %more, %i, %n;", "  @%more bra LOOP;"]


def tail_store(lines, values):
    """XOR of `values` to out[global thread] (keeps the chains alive)."""
    lines += ["  .reg .b32 %acc, %tmp, %gid, %nthreads, %block, %thread;",
              "  .reg .u64 %p, %off;", "  mov.b32 %acc, 0;"]
    for v in values:
        lines.append(f"  mov.b32 %tmp, {v}; xor.b32 %acc, %acc, %tmp;")
    lines += ["  mov.u32 %thread, %tid.x;", "  mov.u32 %block, %ctaid.x;",
              "  mov.u32 %nthreads, %ntid.x;", "  mad.lo.u32 %gid, %block, %nthreads, %thread;",
              "  ld.param.u64 %p, [out];",
              "  mul.wide.u32 %off, %gid, 4;", "  add.u64 %p, %p, %off;",
              "  st.global.u32 [%p], %acc;", "  ret;", "}"]


def mufu_ptx(name, spec):
    ty, op, _ = spec
    init = "0f3F000000" if ty == "f32" else "0x38003800"
    lines = kernel_start() + [f"  .reg .{ty} %x<{CHAINS}>;"]
    lines += [f"  mov.b32 %x{c}, {init};" for c in range(CHAINS)]
    lines += loop(["  " + op.format(d=f"%x{c}", s=f"%x{c}")
                   for _ in range(UNROLL) for c in range(CHAINS)])
    tail_store(lines, [f"%x{c}" for c in range(CHAINS)])
    return "\n".join(lines) + "\n"


def wgmma_ptx(n, shared_a, ksteps):
    acc = n // 2
    lines = kernel_start([".shared .align 1024 .b8 buf[32768];"])
    lines += [f"  .reg .f32 %d<{acc}>;", "  .reg .b32 %a<4>;",
             "  .reg .b64 %da, %db, %base64;", "  .reg .u32 %base;",
             "  mov.u32 %base, buf;", "  shr.u32 %base, %base, 4;",
             "  and.b32 %base, %base, 16383;", "  cvt.u64.u32 %base64, %base;",
             f"  or.b64 %db, %base64, {DESCRIPTOR};", f"  or.b64 %da, %base64, {DESCRIPTOR + 512};"]
    lines += [f"  mov.b32 %a{k}, 0;" for k in range(4)]
    lines += [f"  mov.f32 %d{k}, 0f00000000;" for k in range(acc)]
    regs = "{" + ", ".join(f"%d{k}" for k in range(acc)) + "}"
    operands = ("%da, %db, 1, 1, 1, 0, 0" if shared_a
                else "{%a0, %a1, %a2, %a3}, %db, 1, 1, 1, 0")
    chain = [f"  wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {regs}, {operands};"
             for _ in range(ksteps)]
    lines += loop(["  wgmma.fence.sync.aligned;", *chain, "  wgmma.commit_group.sync.aligned;",
                   "  wgmma.wait_group.sync.aligned 0;"])
    tail_store(lines, [f"%d{k}" for k in range(acc)])
    return "\n".join(lines) + "\n"


class Driver:
    def __init__(self):
        import torch
        self.torch = torch
        torch.zeros(1, device="cuda")  # the primary context, current
        self.cu = ctypes.CDLL("libcuda.so.1")
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        self.name = torch.cuda.get_device_name(0)

    def check(self, result, what):
        if result != 0:
            raise RuntimeError(f"{what}: CUresult {result}")

    def load(self, ptx, ptxas=None):
        image = ptx.encode() + b"\0"
        if ptxas:
            with tempfile.TemporaryDirectory() as tmp:
                src, out = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
                with open(src, "w") as f:
                    f.write(ptx)
                subprocess.run([ptxas, "-arch=sm_90a", src, "-o", out], check=True)
                with open(out, "rb") as f:
                    image = f.read()
        module, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.cu.cuModuleLoadData(ctypes.byref(module), image),
                   "cuModuleLoadData")
        self.check(self.cu.cuModuleGetFunction(ctypes.byref(fn), module, b"k"),
                   "cuModuleGetFunction")
        return fn

    def time_ms(self, fn, blocks, threads, iters):
        torch = self.torch
        out = torch.empty(blocks * threads, dtype=torch.int32, device="cuda")
        ptr, n = ctypes.c_uint64(out.data_ptr()), ctypes.c_uint32(iters)
        params = (ctypes.c_void_p * 2)(ctypes.addressof(ptr), ctypes.addressof(n))
        launch = lambda: self.check(self.cu.cuLaunchKernel(
            fn, blocks, 1, 1, threads, 1, 1, 0, None, params, None), "cuLaunchKernel")
        launch(); launch()
        torch.cuda.synchronize()
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record(); launch(); end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("mufu", "wgmma"))
    parser.add_argument("--jit", action="store_true",
                        help="load the PTX through the driver even where ptxas is found")
    args = parser.parse_args()
    d = Driver()
    ptxas = None if args.jit else (shutil.which("ptxas") or
                                   next((p for p in ("/usr/local/cuda/bin/ptxas",)
                                         if os.path.exists(p)), None))
    print(f"# {d.name}, {d.sms} SMs; kernels {'assembled by ' + ptxas if ptxas else 'through the driver JIT'}")
    if args.only in (None, "mufu"):
        print("\n| instruction | warps/SM | elements per ns and SM | per clock at 1.755 / 1.98 GHz |")
        print("| --- | --- | --- | --- |")
        iters = 4096
        for name, spec in MUFU.items():
            fn = d.load(mufu_ptx(name, spec), ptxas)
            for per_sm in (4, 8):  # CTAs of 256 threads: 32 / 64 warps
                blocks = d.sms * per_sm
                ms = d.time_ms(fn, blocks, 256, iters)
                elements = blocks * 256 * iters * CHAINS * UNROLL * spec[2]
                rate = elements / (ms * 1e-3) / d.sms / 1e9
                print(f"| {name} | {per_sm * 8} | {rate:.1f} | {rate / 1.755:.1f} / {rate / 1.98:.1f} |")
    if args.only in (None, "wgmma"):
        print("\n| wgmma | k-steps per wait | CTAs (2 warpgroups) per SM | TFLOP/s |")
        print("| --- | --- | --- | --- |")
        iters = 2000
        for n, shared_a, ksteps in itertools.product((64, 128, 256), (False, True), (5, 10)):
            fn = d.load(wgmma_ptx(n, shared_a, ksteps), ptxas)
            for per_sm in (1, 3):
                blocks = d.sms * per_sm
                ms = d.time_ms(fn, blocks, 256, iters)
                flop = 2.0 * blocks * 2 * iters * ksteps * 64 * n * 16
                print(f"| m64n{n}k16 {'ss' if shared_a else 'rs'} | {ksteps} | {per_sm} | "
                      f"{flop / ms / 1e9:.0f} |")


if __name__ == "__main__":
    main()
