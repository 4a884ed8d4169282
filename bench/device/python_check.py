#!/usr/bin/env python3
"""The Python package on the GPU machine, over the self-contained libgsa:
gsa.functional.sparse_attention on CUDA torch tensors (GPU kernel, torch's
stream) and gsa.functional.gated_sparse_attention on NumPy arrays (the CPU
JIT inside libgsa), both against float64 references.

    python3 bench/device/python_check.py [--lib dist/libgsa.so.xz]
"""

import argparse
import lzma
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "test" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    args = parser.parse_args()
    lib = Path(tempfile.gettempdir()) / "libgsa-python.so"
    lib.write_bytes(lzma.decompress(Path(args.lib).read_bytes()))
    os.environ["GSA_LIBRARY"] = str(lib)
    os.environ["GSA_CACHE_DIR"] = tempfile.mkdtemp(prefix="gsa-py-")
    import gsa
    import gsa_reference as ref
    from device_check import random_selection, reference_rows

    ok = True
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev)
    gen.manual_seed(5)
    for dtype, tol in ((torch.bfloat16, 1e-2), (torch.float16, 3e-3)):
        B, L, NH, NKV, D, K = 1, 3000, 32, 8, 128, 512
        rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
        q, k, v, gv, go = rnd(B, L, NH, D), rnd(B, L, NKV, D), rnd(B, L, NKV, D), \
            rnd(B, L, NKV, D), rnd(B, L, NH, D)
        idx, cnt = random_selection(B, L, K, dev, gen)
        start = time.perf_counter()
        o, lse = gsa.functional.sparse_attention(q, k, v, idx, cnt, gv, go)
        torch.cuda.synchronize()
        first = time.perf_counter() - start
        rows = torch.stack([torch.zeros(512, dtype=torch.long, device=dev),
                            torch.randperm(L, device=dev, generator=gen)[:512]], -1)
        o_ref, lse_ref = reference_rows(q, k, v, gv, go, idx, cnt, rows, 1 / math.sqrt(D))
        err = (torch.linalg.norm(o[rows[:, 0], rows[:, 1]].double() - o_ref)
               / torch.linalg.norm(o_ref)).item()
        err_lse = (torch.linalg.norm(lse[rows[:, 0], rows[:, 1]].double() - lse_ref)
                   / torch.linalg.norm(lse_ref)).item()
        good = err < tol and err_lse < 1e-3 and torch.isfinite(o).all().item()
        ok &= good
        print(f"CUDA sparse_attention {str(dtype):15s} err o {err:.2e} lse {err_lse:.1e} "
              f"first call {first:.3f} s {'ok' if good else 'FAILED'}")

    # A score_mod on the GPU (the query-tile kernels inline the traced
    # region per score): a per-head linear bias on the distance and a
    # window that masks far keys (rows can end up empty: o = 0, lse = -inf).
    from gsa.dsl import to_float, where
    window = 700
    mod = lambda s, b, h, q, kv: where(q - kv > window, -math.inf,
                                       s - (to_float(h) + 1.0) / 64.0 * to_float(q - kv) / 64.0)
    for dtype, tol in ((torch.bfloat16, 1e-2), (torch.float16, 3e-3)):
        B, L, NH, NKV, D, K = 2, 2500, 32, 8, 128, 256
        rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
        q, k, v, go = rnd(B, L, NH, D), rnd(B, L, NKV, D), rnd(B, L, NKV, D), rnd(B, L, NH, D)
        idx, cnt = random_selection(B, L, K, dev, gen)
        o, lse = gsa.functional.sparse_attention(q, k, v, idx, cnt, None, go, score_mod=mod)
        torch.cuda.synchronize()
        rows = torch.stack([torch.randint(0, B, (384,), device=dev, generator=gen),
                            torch.randperm(L, device=dev, generator=gen)[:384]], -1)
        rows[0] = torch.tensor([0, L - 1], device=dev)
        b, t = rows[:, 0], rows[:, 1]
        sel = idx[b, t].long()
        valid = (sel >= 0) & (torch.arange(K, device=dev)[None] < cnt[b, t][:, None])
        s_safe = sel.clamp(min=0)
        kk, vv = k[b[:, None], s_safe].double(), v[b[:, None], s_safe].double()
        qq = q[b, t].double().view(-1, NKV, NH // NKV, D)
        sc = torch.einsum("rngd,rknd->rngk", qq, kk) / math.sqrt(D)
        dist = (t[:, None] - sel).double()[:, None, None, :]            # [R, 1, 1, K]
        head = torch.arange(NH, device=dev).double().view(1, NKV, NH // NKV, 1)
        sc = sc - (head + 1.0) / 64.0 * dist / 64.0
        sc = sc.masked_fill(dist > window, float("-inf"))
        sc = sc.masked_fill(~valid[:, None, None, :], float("-inf"))
        lse_ref = torch.logsumexp(sc, -1)
        p_ = torch.exp(sc - lse_ref[..., None]).nan_to_num(0.0)
        o_ref = torch.einsum("rngk,rknd->rngd", p_, vv).reshape(-1, NH, D)
        o_ref = o_ref * torch.sigmoid(go[b, t].double())
        lse_ref = lse_ref.reshape(-1, NH)
        err = (torch.linalg.norm(o[b, t].double() - o_ref) / torch.linalg.norm(o_ref)).item()
        finite = torch.isfinite(lse_ref)
        same_empty = bool((torch.isfinite(lse[b, t]) == finite).all())
        err_lse = (torch.linalg.norm(lse[b, t].double()[finite] - lse_ref[finite])
                   / torch.linalg.norm(lse_ref[finite])).item()
        good = err < tol and err_lse < 1e-3 and same_empty and torch.isfinite(o).all().item()
        ok &= good
        print(f"CUDA sparse_attention score_mod {str(dtype):15s} err o {err:.2e} lse {err_lse:.1e} "
              f"empty rows {int((~finite).sum())} (agree {same_empty}) {'ok' if good else 'FAILED'}")

    rng = np.random.default_rng(11)
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    x = dict(q=n(1, 96, 8, 64), k=n(1, 96, 2, 64), v=n(1, 96, 2, 64), qi=n(1, 96, 4, 32),
             ki=n(1, 96, 32), wi=n(1, 96, 4), bi=0.5 * n(4), gv=n(1, 96, 2, 64),
             go=n(1, 96, 8, 64))
    kw = dict(k_base=16, k_min=8, k_max=32, policy="inverse", training=True, running_var=0.0)
    o, lse, idx, cnt, new_var = gsa.functional.gated_sparse_attention(**x, **kw)
    exp = ref.gated_sparse_attention(*[x[k] for k in ("q", "k", "v", "qi", "ki", "wi", "bi",
                                                      "gv", "go")], **kw)
    err = ref.relative_error(o, exp["o"])
    good = (np.array_equal(cnt, exp["counts"]) and err < 1e-5
            and np.isclose(new_var, exp["new_running_var"], rtol=1e-5))
    ok &= good
    print(f"CPU gated_sparse_attention (libgsa JIT on this machine) err o {err:.2e} "
          f"counts equal {np.array_equal(cnt, exp['counts'])} {'ok' if good else 'FAILED'}")
    print("python check:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
