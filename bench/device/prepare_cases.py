#!/usr/bin/env python3
"""Compiles the device suite's cases here (no GPU needed): one statically
shaped gsa.sparse_attention program per case, through gsa-compile to PTX and
a launch manifest, into build-device/ (carried to the GPU machine).

    bench/device/prepare_cases.py [--build build] [--out build-device]
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (name, B, L, n_h, n_kv, d, K, dtype, gates)
CASES = [
    ("small_ragged_bf16", 1, 300, 32, 8, 128, 64, "bf16", True),
    ("b2_l1k_bf16", 2, 1024, 32, 8, 128, 2048, "bf16", True),
    ("b2_l1k_f16", 2, 1024, 32, 8, 128, 2048, "f16", True),
    ("l4k_bf16", 1, 4096, 32, 8, 128, 2048, "bf16", True),
    ("l4k_f16", 1, 4096, 32, 8, 128, 2048, "f16", True),
    ("l5000_bf16", 1, 5000, 32, 8, 128, 2048, "bf16", True),
    ("l16k_bf16", 1, 16384, 32, 8, 128, 2048, "bf16", True),
    ("l16k_bf16_nogates", 1, 16384, 32, 8, 128, 2048, "bf16", False),
]


def program(B, L, NH, NKV, D, K, dt, gates):
    q = f"tensor<{B}x{L}x{NH}x{D}x{dt}>"
    kv = f"tensor<{B}x{L}x{NKV}x{D}x{dt}>"
    idx = f"tensor<{B}x{L}x{K}xi32>"
    cnt = f"tensor<{B}x{L}xi32>"
    lse = f"tensor<{B}x{L}x{NH}xf32>"
    args = [f"%q: {q}", f"%k: {kv}", f"%v: {kv}", f"%idx: {idx}", f"%cnt: {cnt}"]
    types = [q, kv, kv, idx, cnt]
    gate = ""
    if gates:
        args += [f"%gv: {kv}", f"%go: {q}"]
        types += [kv, q]
        gate = " value_gate(%gv) output_gate(%go)"
    return (f"func.func @attend({', '.join(args)}) -> ({q}, {lse}) {{\n"
            f"  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt){gate}\n"
            f"      : ({', '.join(types)}) -> ({q}, {lse})\n"
            f"  return %o, %lse : {q}, {lse}\n}}\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--out", default=str(ROOT / "build-device"))
    args = parser.parse_args()
    out = Path(args.out)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    listing = []
    for name, B, L, NH, NKV, D, K, dt, gates in CASES:
        src = out / "cases" / f"{name}.mlir"
        src.write_text(program(B, L, NH, NKV, D, K, dt, gates))
        start = time.perf_counter()
        subprocess.run([f"{args.build}/bin/gsa-compile", str(src), "-o",
                        str(out / "cases" / f"{name}.ptx"), "--manifest",
                        str(out / "cases" / f"{name}.json")], check=True)
        compile_s = time.perf_counter() - start
        info = subprocess.run(["/usr/local/cuda/bin/ptxas", "-v", "-arch=sm_90a",
                               str(out / "cases" / f"{name}.ptx"), "-o", "/dev/null"],
                              capture_output=True, text=True)
        regs = [l.strip() for l in info.stderr.splitlines() if "registers" in l or "spill" in l]
        listing.append({"name": name, "B": B, "L": L, "n_h": NH, "n_kv": NKV, "d": D,
                        "K": K, "dtype": dt, "gates": gates,
                        "ptx": f"cases/{name}.ptx", "manifest": f"cases/{name}.json",
                        "compile_s": round(compile_s, 3), "ptxas": regs})
        print(f"{name:22s} compiled in {compile_s:.3f} s; {'; '.join(regs)}")
    (out / "cases.json").write_text(json.dumps(listing, indent=2))


if __name__ == "__main__":
    main()
