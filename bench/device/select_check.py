#!/usr/bin/env python3
"""The GPU indexer + adaptive top-k, and the whole GSA core, on the H100.

Compiles through libgsa (CUDA backend, JIT on first use, per-shape cache),
launches on torch tensors, and checks against float64 references written
from SPEC.md:
  - selection: per row, the budget k_t (from the f64 variance of the f64
    scores) and the selected set (recall of the reference set, and identity
    wherever the k-th and (k+1)-th reference scores differ by more than the
    f32 rounding of the scores);
  - attention: o and lse on the set the GPU returned (so a selection
    difference cannot hide an attention error);
  - training mode: the updated running variance.
Outputs are poisoned first. Prints a table last; writes JSON to $OUT.

    python3 bench/device/select_check.py [--lib dist/libgsa.so.xz] [--quick]
"""

import argparse
import json
import lzma
import math
import os
import sys
import tempfile
import time
from pathlib import Path

try:
    import torch
except ImportError:  # the program builder is also used without torch (tests)
    torch = None

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gsa.program import _tensor as tensor_type  # noqa: E402 (after the path)

ELEM = {torch.bfloat16: "bf16", torch.float16: "f16", torch.float32: "f32",
        torch.int32: "i32"} if torch else {}


def use_libgsa(xz_path, name):
    """Unpacks the carried libgsa.so.xz and points the Python package (and a
    fresh kernel cache) at it; call before the first gsa.Runtime()."""
    lib = Path(tempfile.gettempdir()) / name
    lib.write_bytes(lzma.decompress(Path(xz_path).read_bytes()))
    os.environ["GSA_LIBRARY"] = str(lib)
    os.environ.setdefault("GSA_CACHE_DIR", tempfile.mkdtemp(prefix="gsa-cache-"))


SIGMOID = "{{\n  ^bb0(%x: f32, %j: index):\n    %s = gsa.sigmoid %x : f32\n    gsa.yield %s : f32\n  }}"
CUSTOM_POLICY = """ policy_fn {
  ^bb0(%mean: f32, %var: f32, %vbar: f32, %t: index):
    %r = arith.divf %vbar, %var : f32
    %one = arith.constant 1.0 : f32
    %h = arith.addf %r, %one : f32
    %c = arith.constant KHALF : f32
    %budget = arith.mulf %h, %c : f32
    gsa.yield %budget : f32
  }"""


def gsa_program(shapes, elem, policy, k_base, k_min, k_max, training, whole):
    """The GSA core (whole=True) or the indexer + selection alone."""
    names = ["q", "k", "v", "qi", "ki", "wi", "bi", "gv", "go", "rv"] if whole else \
        ["qi", "ki", "wi", "bi", "rv"]
    types = {n: tensor_type(shapes[n], "f32" if n == "rv" else elem) for n in names}
    B, L = shapes["qi"][:2]
    idx_t, cnt_t = tensor_type((B, L, k_max), "i32"), tensor_type((B, L), "i32")
    results = []
    if whole:
        results += [tensor_type(shapes["q"], elem), tensor_type(shapes["q"][:3], "f32")]
    results += [idx_t, cnt_t] + (["tensor<f32>"] if training else [])
    params = ", ".join(f"%{n}: {types[n]}" for n in names)
    sel = f"policy = {policy} k = {k_base} in [{k_min}, {k_max}]"
    mode = " training" if training else ""
    policy_fn = CUSTOM_POLICY.replace("KHALF", repr(0.5 * k_base)) if policy == "custom" else ""
    sig = ", ".join(types[n] for n in names)
    res = ", ".join(results)
    if whole:
        outs = "%o, %lse, %idx, %cnt" + (", %nv" if training else "")
        body = (f"  {outs} = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)"
                f" weights(%wi) bias(%bi) value_gate(%gv) output_gate(%go) running_var(%rv)"
                f" {sel}{mode}\n  activation {SIGMOID.format()} weighting {SIGMOID.format()}"
                f"{policy_fn}\n  : ({sig}) -> ({res})\n")
    else:
        outs = "%idx, %cnt" + (", %nv" if training else "")
        L2 = tensor_type((B, L, L), "f32")
        body = (f"  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)\n"
                f"  activation {SIGMOID.format()} weighting {SIGMOID.format()}\n"
                f"  : ({types['qi']}, {types['ki']}, {types['wi']}, {types['bi']}) -> {L2}\n"
                f"  {outs} = gsa.adaptive_topk %I {sel} running_var(%rv){mode}{policy_fn}\n"
                f"  : ({L2}, tensor<f32>) -> ({', '.join(results)})\n")
    return (f"func.func @core({params}) -> ({res}) {{\n{body}"
            f"  return {outs} : {res}\n}}\n"), names


RELU = ("{{\n  ^bb0(%x: f32, %j: index):\n    %zero = arith.constant 0.0 : f32\n"
        "    %r = arith.maximumf %x, %zero : f32\n    gsa.yield %r : f32\n  }}")
IDENTITY = "{{\n  ^bb0(%w: f32, %j: index):\n    gsa.yield %w : f32\n  }}"


def indexer_program(shapes, elem, dsa=False):
    """gsa.indexer alone: the program returns the causal score matrix. GSA:
    sigmoid weights and activations with a bias; DSA (`dsa`): relu of the
    products and raw weights, no bias."""
    B, L = shapes["qi"][:2]
    names = ["qi", "ki", "wi"] + ([] if dsa else ["bi"])
    types = {n: tensor_type(shapes[n], elem) for n in names}
    out = tensor_type((B, L, L), "f32")
    params = ", ".join(f"%{n}: {types[n]}" for n in names)
    bias = "" if dsa else " bias(%bi)"
    act, weighting = (RELU, IDENTITY) if dsa else (SIGMOID, SIGMOID)
    return (f"func.func @scores({params}) -> {out} {{\n"
            f"  %I = gsa.indexer %qi, %ki weights(%wi){bias}\n"
            f"  activation {act.format()} weighting {weighting.format()}\n"
            f"  : ({', '.join(types[n] for n in names)}) -> {out}\n"
            f"  return %I : {out}\n}}\n"), names


def run_indexer_case(rt, case, gen, log):
    """The standalone indexer kernel against float64 scores (-inf above the
    diagonal). `it`: over query tiles (gsa-tile, the default) or the
    CUDA-core kernel of gsa-lower-selection."""
    os.environ["GSA_GPU_OPTIONS"] = (f"indexer-query-tiles={int(case.get('it', True))}"
                                     f" {os.environ.get('GSA_CHECK_OPTIONS', '')}")
    B, L, dtype = case["B"], case["L"], case["dtype"]
    H, DI, dsa = case.get("H", 4), case.get("DI", 64), case.get("dsa", False)
    dev = torch.device("cuda")
    rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
    x = {"qi": rnd(B, L, H, DI), "ki": rnd(B, L, DI), "wi": rnd(B, L, H)}
    if not dsa:
        x["bi"] = (0.1 * torch.randn(H, device=dev, generator=gen)).to(dtype)
    shapes = {n: tuple(t.shape) for n, t in x.items()}
    text, names = indexer_program(shapes, ELEM[dtype], dsa)
    specs = [(ELEM[dtype], shapes[n]) for n in names]
    t0 = time.perf_counter()
    kernel = rt.compile(text, specs, backend="cuda")
    cold_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    rt.compile(text, specs, backend="cuda")
    hit_us = (time.perf_counter() - t0) * 1e6
    out = torch.full((B, L, L), float("nan"), device=dev)  # poison
    stream = torch.cuda.current_stream().cuda_stream
    launch = lambda: kernel.launch([x[n].data_ptr() for n in names], [out.data_ptr()], stream)
    launch()
    torch.cuda.synchronize()
    scale = 1.0 / math.sqrt(DI)
    worst, masked_ok = 0.0, True
    causal = torch.arange(L, device=dev)[None, :] <= torch.arange(L, device=dev)[:, None]
    for b in range(B):
        dots = torch.einsum("tjd,sd->tjs", x["qi"][b].double(), x["ki"][b].double()) * scale
        if dsa:
            ref = torch.einsum("tj,tjs->ts", x["wi"][b].double(), torch.relu(dots))
        else:
            act = torch.sigmoid(dots + x["bi"].double()[None, :, None])
            ref = torch.einsum("tj,tjs->ts", torch.sigmoid(x["wi"][b].double()), act)
        del dots
        got = out[b].double()
        err = (got - ref)[causal].abs()
        # (NaN anywhere in the causal part fails: max of NaN is NaN.)
        worst = max(worst, err.max().item() / max(1.0, ref.abs().max().item()))
        masked_ok = masked_ok and bool(torch.isneginf(got[~causal]).all().item())
    # tanh.approx sigmoids: ~1e-4 per head; DSA's relu sums are relative.
    ok = worst < 2e-3 and masked_ok
    flops = 2 * B * L * L / 2 * H * DI
    ms = time_ms(launch)[0]
    result = dict(case=case_name(case), cold_ms=round(cold_ms, 1), hit_us=round(hit_us, 1),
                  max_abs_err=worst, masked=masked_ok, ok=bool(ok), ms=round(ms, 3),
                  tflops=round(flops / ms / 1e9, 1),
                  gbps=round(B * L * L * 4 / ms / 1e6, 1))
    log.write(json.dumps(result) + "\n")
    return result


def reference_selection(qi, ki, wi, bi, policy, k_base, k_min, k_max, v_run, training,
                        check_rows, chunk=256):
    """float64: var_t of every row, V_bar, k_t, and for the rows in
    `check_rows` the sorted scores with their positions."""
    B, L, H, DI = qi.shape
    scale = 1.0 / math.sqrt(DI)
    var = torch.empty(B, L, dtype=torch.float64, device=qi.device)
    mean = torch.empty_like(var)
    kid = ki.double()
    wgt = torch.sigmoid(wi.double())
    keep = {}
    wanted = {}
    for b, t in check_rows.tolist():
        wanted.setdefault(b, set()).add(t)
    if policy == "fixed" and not training and L > 65536:
        # The fixed budget reads no variance: score the checked rows alone
        # (the full f64 sweep is O(L^2) and takes minutes past 128K).
        for b, ts in wanted.items():
            for t in ts:
                dots = torch.einsum("jd,sd->js", qi[b, t].double(), kid[b, : t + 1]) * scale
                act = torch.sigmoid(dots + bi.double()[:, None])
                keep[(b, t)] = torch.einsum("j,js->s", wgt[b, t], act)
        k = torch.minimum(torch.full((B, L), float(k_base), dtype=torch.float64,
                                     device=qi.device).clamp(k_min, k_max),
                          torch.arange(1, L + 1, device=qi.device,
                                       dtype=torch.float64)[None, :]).long()
        return k, 1.0, keep, 1.0, torch.zeros(B, L, dtype=torch.bool, device=qi.device)
    for b in range(B):
        for start in range(0, L, chunk):
            rows = torch.arange(start, min(L, start + chunk), device=qi.device)
            dots = torch.einsum("rjd,sd->rjs", qi[b, rows].double(), kid[b]) * scale
            act = torch.sigmoid(dots + bi.double()[None, :, None])
            I = torch.einsum("rj,rjs->rs", wgt[b, rows], act)
            visible = torch.arange(L, device=qi.device)[None, :] <= rows[:, None]
            n = rows.double() + 1
            m = (I * visible).sum(1) / n
            mean[b, rows] = m
            var[b, rows] = (((I - m[:, None]) ** 2) * visible).sum(1) / n
            for t in wanted.get(b, ()):
                if start <= t < start + len(rows):
                    keep[(b, t)] = I[t - start, : t + 1].clone()
    if v_run is None:  # inference: a reference variance near the rows' own
        v_run = 0.8 * var.mean().item()
    vbar = var.mean().item() if training else v_run
    if policy == "fixed":
        budget = torch.full_like(var, float(k_base))
    elif policy == "inverse":
        budget = torch.where(var == 0, torch.full_like(var, math.inf), k_base * vbar / var)
    elif policy == "proportional":
        budget = torch.where(var == 0, torch.full_like(var, -math.inf), k_base * var / vbar)
    else:  # the custom policy of CUSTOM_POLICY: k_base / 2 * (V_bar / var + 1)
        budget = 0.5 * k_base * (vbar / var + 1.0)
    k = torch.clamp(torch.floor(budget), k_min, k_max)
    n = torch.arange(1, L + 1, device=qi.device, dtype=torch.float64)[None, :]
    k = torch.minimum(k, n).long()
    # Rows whose real budget lies within f32 rounding of an integer: the
    # floor may go either way when the variance comes from f32 scores.
    frac = budget - torch.floor(budget)
    near = torch.minimum(frac, 1 - frac) <= 1e-5 * budget.abs().clamp(min=1)
    return k, vbar, keep, v_run, near


def compare_sets(keep, k_ref, idx, cnt, rounding):
    """(count agreement, min recall, identical where separable) over rows."""
    agree, recalls, identical, separable = 0, [], 0, 0
    for (b, t), scores in keep.items():
        kr = int(k_ref[b, t])
        kg = int(cnt[b, t])
        agree += int(kr == kg)
        order = torch.argsort(scores, descending=True, stable=True)
        ref = set(order[:kr].tolist())
        got = idx[b, t, :kg].tolist()
        recalls.append(len(ref & set(got)) / max(1, kr))
        if kr < len(scores) and kr == kg:
            sorted_scores = scores[order]
            gap = (sorted_scores[kr - 1] - sorted_scores[kr]).abs().item()
            if gap > rounding:
                separable += 1
                identical += int(ref == set(got))
        elif kr == kg:
            separable += 1
            identical += int(ref == set(got))
    return agree / len(keep), min(recalls), identical, separable


def run_case(rt, case, gen, log):
    # Lowering options (an A/B switch of the runtime, part of its cache key):
    # the selection's products on tensor cores (default) or CUDA cores, and
    # the attention's rows in flight per warp.
    os.environ["GSA_GPU_OPTIONS"] = (f"select-tensor-cores={int(case.get('tc', True))}"
                                     f" attention-rows-in-flight={case.get('rif', 4)}"
                                     f" attention-tensor-cores={int(case.get('atc', False))}"
                                     f" attention-pregate-values={int(case.get('pg', True))}"
                                     f" attention-query-tiles={int(case.get('qt', True))}"
                                     f" select-sampled={int(case.get('ss', True))}"
                                     f" {os.environ.get('GSA_CHECK_OPTIONS', '')}")
    B, L, dtype, policy, training, whole = (case["B"], case["L"], case["dtype"], case["policy"],
                                            case["training"], case["whole"])
    NH, NKV, D = 32, 8, 128
    H, DI = case.get("H", 4), case.get("DI", 64)
    k_base, k_min, k_max = case.get("k", (2048, 256, 4096))
    dev = torch.device("cuda")
    rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
    # qscale: the indexer products (scaled by 1/sqrt(d_I), unit spread for
    # N(0, 1) inputs) times qscale; at 16 most sigmoids saturate, many
    # scores crowd the top of the range (the sample's crowded-bin pass, the
    # finish kernel's ties, the topk fallback).
    x = {"qi": rnd(B, L, H, DI) * case.get("qscale", 1), "ki": rnd(B, L, DI), "wi": rnd(B, L, H),
         "bi": (0.1 * torch.randn(H, device=dev, generator=gen)).to(dtype)}
    if whole:
        x.update(q=rnd(B, L, NH, D), k=rnd(B, L, NKV, D), v=rnd(B, L, NKV, D),
                 gv=rnd(B, L, NKV, D), go=rnd(B, L, NH, D))
    check_rows = torch.cat([
        torch.stack([torch.randint(0, B, (96,), device=dev, generator=gen),
                     torch.randint(0, L, (96,), device=dev, generator=gen)], -1),
        torch.tensor([[B - 1, L - 1], [0, 0], [0, 1], [B - 1, L // 2]], device=dev)])
    # The reference first: in inference mode it also picks V_run (near the
    # rows' mean variance, so that budgets spread around k_base).
    k_ref, vbar, keep, v_run, near_boundary = reference_selection(
        x["qi"], x["ki"], x["wi"], x["bi"], policy, k_base, k_min, k_max,
        0.0 if training else None, training, check_rows)
    x["rv"] = torch.tensor(v_run, dtype=torch.float32, device=dev)
    shapes = {n: tuple(t.shape) for n, t in x.items()}
    text, names = gsa_program(shapes, ELEM[dtype], policy, k_base, k_min, k_max, training, whole)
    specs = [(ELEM[x[n].dtype], shapes[n]) for n in names]
    t0 = time.perf_counter()
    kernel = rt.compile(text, specs, backend="cuda")
    cold_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    rt.compile(text, specs, backend="cuda")
    hit_us = (time.perf_counter() - t0) * 1e6
    outs = []
    for dt, shape in kernel.results:
        torch_dt = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32,
                    "i32": torch.int32}[dt]
        o = torch.empty(shape, dtype=torch_dt, device=dev)
        o.fill_(-7 if torch_dt == torch.int32 else float("nan"))  # poison
        outs.append(o)
    stream = torch.cuda.current_stream().cuda_stream
    launch = lambda: kernel.launch([x[n].data_ptr() for n in names],
                                   [o.data_ptr() for o in outs], stream)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    launch()  # the first launch loads the module (a cubin, or the PTX through the JIT)
    torch.cuda.synchronize()
    first_ms = (time.perf_counter() - t0) * 1e3
    if whole:
        o, lse, idx, cnt = outs[:4]
    else:
        idx, cnt = outs[:2]
    new_var = outs[-1].item() if training else None

    # Every row: counts agree with the reference budget (the floor may flip
    # where k_base * r_t lies within rounding of an integer).
    same = cnt.long() == k_ref
    count_agree_all = same.double().mean().item()
    # A budget that differs must be a floor at an integer boundary, by one.
    off = ~same & ~(near_boundary & ((cnt.long() - k_ref).abs() <= 1))
    count_off_boundary = int(off.sum().item())
    rounding = 4e-6 * H  # f32 rounding of scores in (0, H_I), with margin
    agree, min_recall, identical, separable = compare_sets(keep, k_ref, idx, cnt, rounding)
    # Structural checks on every row: ascending, distinct, causal, -1 padded.
    pos = torch.arange(k_max, device=dev)[None, None, :]
    live = pos < cnt[..., None].long()
    t_of = torch.arange(L, device=dev)[None, :, None]
    ok_live = ((idx >= 0) & (idx <= t_of)) | ~live
    ok_pad = (idx == -1) | live
    ascending = ((idx[..., 1:] > idx[..., :-1]) | ~live[..., 1:]).all().item()
    structure = bool(ok_live.all().item() and ok_pad.all().item() and ascending)
    result = dict(case=case_name(case), cold_ms=round(cold_ms, 1), hit_us=round(hit_us, 1),
                  first_launch_ms=round(first_ms, 1),
                  count_agree=count_agree_all, count_off_boundary=count_off_boundary,
                  min_recall=min_recall,
                  identical=f"{identical}/{separable}", structure=structure)
    ok = (structure and min_recall >= 0.99 and count_off_boundary == 0
          and identical == separable)
    if training:
        result["new_var_rel_err"] = abs(new_var - vbar) / vbar
        ok = ok and result["new_var_rel_err"] < 1e-4
    if whole:
        rows = check_rows
        o_ref, lse_ref = reference_rows(x["q"], x["k"], x["v"], x["gv"], x["go"], idx, cnt,
                                        rows, 1 / math.sqrt(D))
        got = o[rows[:, 0], rows[:, 1]].double()
        err = (torch.linalg.norm(got - o_ref) / torch.linalg.norm(o_ref)).item()
        result["o_rel_err"] = err
        # lse (f32): equal where the reference is -inf (nothing selected).
        lse_got = lse[rows[:, 0], rows[:, 1]].double()
        both_empty = torch.isinf(lse_ref) & (lse_got == lse_ref)
        lse_err = torch.where(both_empty, 0.0, (lse_got - lse_ref).abs()).max().item()
        result["lse_abs_err"] = lse_err
        result["finite"] = bool(torch.isfinite(o).all().item() and not torch.isnan(lse).any().item())
        tol = 1e-2 if dtype == torch.bfloat16 else 3e-3
        ok = ok and err < tol and result["finite"] and lse_err < 1e-3
    result["ms"] = round(time_ms(launch)[0], 3)  # median
    result["ok"] = bool(ok)
    log.write(json.dumps(result) + "\n")
    log.flush()
    return result


def run_attention_case(rt, case, gen, log):
    """gsa.sparse_attention alone on random causal selections (unsorted,
    with -1 entries inside the counts), any GQA group and head size: the
    query-tile kernels (or, qt=False, the per-query kernel) against the
    float64 reference on sampled rows (the last rows always: ragged tiles)."""
    from gsa.program import sparse_attention as attend_program
    os.environ["GSA_GPU_OPTIONS"] = (f"attention-query-tiles={int(case.get('qt', True))}"
                                     f" {os.environ.get('GSA_CHECK_OPTIONS', '')}")
    B, L, NH, NKV, D, K = (case[x] for x in ("B", "L", "NH", "NKV", "D", "K"))
    dtype = case["dtype"]
    dev = torch.device("cuda")
    rnd = lambda *s: torch.randn(*s, device=dev, generator=gen).to(dtype)
    named = dict(q=rnd(B, L, NH, D), k=rnd(B, L, NKV, D), v=rnd(B, L, NKV, D))
    idx, cnt = random_selection(B, L, K, dev, gen)
    if case.get("sorted"):
        # Ascending lists (as the selection writes them), -1 entries last:
        # the union kernel's streaming path (unsorted lists take its
        # per-window rescan).
        big = torch.iinfo(torch.int32).max
        idx = torch.where(idx < 0, big, idx).sort(dim=-1).values
        idx = torch.where(idx == big, -1, idx).contiguous()
    named.update(indices=idx, counts=cnt)
    if case["gates"]:
        named.update(gv=rnd(B, L, NKV, D), go=rnd(B, L, NH, D))
    elems = {n: "i32" if t.dtype == torch.int32 else ELEM[dtype] for n, t in named.items()}
    shapes = {n: tuple(t.shape) for n, t in named.items()}
    text, order = attend_program(shapes, elems)
    t0 = time.perf_counter()
    kernel = rt.compile(text, [(elems[n], shapes[n]) for n in order], backend="cuda")
    cold_ms = (time.perf_counter() - t0) * 1e3
    o = torch.full((B, L, NH, D), float("nan"), dtype=dtype, device=dev)
    lse = torch.full((B, L, NH), float("nan"), dtype=torch.float32, device=dev)
    stream = torch.cuda.current_stream().cuda_stream
    launch = lambda: kernel.launch([named[n].data_ptr() for n in order],
                                   [o.data_ptr(), lse.data_ptr()], stream)
    launch()
    torch.cuda.synchronize()
    rows = torch.cat([
        torch.stack([torch.randint(0, B, (128,), device=dev, generator=gen),
                     torch.randint(0, L, (128,), device=dev, generator=gen)], -1),
        torch.tensor([[B - 1, L - 1], [B - 1, L - 2], [0, 0], [0, 1]], device=dev)])
    o_ref, lse_ref = reference_rows(named["q"], named["k"], named["v"], named.get("gv"),
                                    named.get("go"), idx, cnt, rows, 1 / math.sqrt(D))
    got = o[rows[:, 0], rows[:, 1]].double()
    err = (torch.linalg.norm(got - o_ref) / torch.linalg.norm(o_ref)).item()
    lse_got = lse[rows[:, 0], rows[:, 1]].double()
    both_empty = torch.isinf(lse_ref) & (lse_got == lse_ref)
    lse_err = torch.where(both_empty, 0.0, (lse_got - lse_ref).abs()).max().item()
    finite = bool(torch.isfinite(o).all().item() and not torch.isnan(lse).any().item())
    tol = 1e-2 if dtype == torch.bfloat16 else 3e-3
    result = dict(case=case_name(case), cold_ms=round(cold_ms, 1), hit_us=0.0,
                  count_agree=1.0, min_recall=1.0, identical="-", o_rel_err=err,
                  lse_abs_err=lse_err, finite=finite,
                  ms=round(time_ms(launch)[0], 3),
                  ok=bool(finite and err < tol and lse_err < 1e-3))
    log.write(json.dumps(result) + "\n")
    log.flush()
    return result


def case_name(c):
    dt = {torch.bfloat16: "bf16", torch.float16: "fp16"}[c["dtype"]]
    if c.get("attention"):
        qt = "" if c.get("qt", True) else " [per-query]"
        return (f"attend B{c['B']} L{c['L']} {c['NH']}/{c['NKV']}x{c['D']} K{c['K']} {dt}"
                f"{' gates' if c['gates'] else ''}{' sorted' if c.get('sorted') else ''}{qt}")
    if c.get("indexer"):
        kind = " dsa" if c.get("dsa") else ""
        where = "" if c.get("it", True) else " [CUDA cores]"
        return (f"indexer B{c['B']} L{c['L']} {c.get('H', 4)}x{c.get('DI', 64)} {dt}"
                f"{kind}{where}")
    what = "core" if c["whole"] else "select"
    mode = "train" if c["training"] else "infer"
    cores = "" if c.get("tc", True) else " [cuda cores]"
    rif = f" [rows in flight {c['rif']}]" if "rif" in c else ""
    atc = " [attention mma]" if c.get("atc") else ""
    pg = " [gate in attention]" if not c.get("pg", True) else ""
    qt = " [per-query attention]" if not c.get("qt", True) else ""
    ss = " [radix only]" if not c.get("ss", True) else ""
    qs = f" [qi x{c['qscale']}]" if "qscale" in c else ""
    heads = (f" H_I {c.get('H', 4)}x{c.get('DI', 64)}"
             if (c.get("H", 4), c.get("DI", 64)) != (4, 64) else "")
    return (f"{what} B{c['B']} L{c['L']} {dt} {c['policy']} {mode}{heads}"
            f"{cores}{rif}{atc}{pg}{qt}{ss}{qs}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--matrix", action="store_true",
                        help="the issue's device matrix (B, L up to 64K, each policy, bf16/fp16)")
    parser.add_argument("--compare", action="store_true",
                        help="selection on tensor cores vs CUDA cores, side by side")
    parser.add_argument("--attention-tc", action="store_true",
                        help="the attention on tensor cores vs CUDA cores, side by side")
    parser.add_argument("--pregate", action="store_true",
                        help="value gate once per key row vs inside the attention, side by side")
    parser.add_argument("--query-tiles", action="store_true",
                        help="attention over query tiles vs per query, side by side")
    parser.add_argument("--sampled", action="store_true",
                        help="sampled selection vs the radix passes alone, side by side")
    parser.add_argument("--heads", action="store_true",
                        help="fused selections of 1-16 indexer heads (tensor-core head "
                             "groups), d_I 64/128; two side by side with CUDA cores")
    parser.add_argument("--wide", action="store_true",
                        help="timings of wider indexers in the fused selection (d_I 128, "
                             "H_I 8) at 16K-64K, beside H_I 4 x d_I 64")
    parser.add_argument("--indexer", action="store_true",
                        help="the standalone indexer over query tiles vs its CUDA-core "
                             "kernel, side by side (H_I 2-16, d_I 64/128, GSA and DSA)")
    parser.add_argument("--attention-shapes", action="store_true",
                        help="sparse attention alone over GQA groups 1-16, d_k 64/128, "
                             "query tiles vs per query")
    # GSA_CHECK_OPTIONS="key=value ...": lowering options added to every
    # case's GSA_GPU_OPTIONS (e.g. attention-stages=4).
    parser.add_argument("--first", type=int, default=0,
                        help="run only the first N cases (e.g. under compute-sanitizer)")
    parser.add_argument("--last", type=int, default=0,
                        help="run only the last N cases (e.g. --large --last 2: the large ones)")
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT", tempfile.mkdtemp()))
    use_libgsa(args.lib, "libgsa-select.so")
    from gsa._capi import Runtime
    global reference_rows, time_ms
    global random_selection
    from device_check import reference_rows, time_ms, random_selection
    rt = Runtime()
    gen = torch.Generator(device="cuda")
    gen.manual_seed(11)
    bf, fp = torch.bfloat16, torch.float16
    small = dict(k=(64, 16, 128))
    cases = [
        dict(B=1, L=300, dtype=bf, policy="inverse", training=True, whole=False, **small),
        # The fixed policy trains through the variance (V_bar, the running
        # update) although its budget reads none: the stats sweep's moments.
        dict(B=1, L=2048, dtype=bf, policy="fixed", training=True, whole=False),
        dict(B=2, L=1000, dtype=bf, policy="inverse", training=False, whole=False, **small),
        dict(B=1, L=1024, dtype=bf, policy="fixed", training=False, whole=True),
        dict(B=2, L=1024, dtype=fp, policy="inverse", training=True, whole=True),
        dict(B=1, L=5000, dtype=bf, policy="proportional", training=False, whole=True),
        dict(B=1, L=4096, dtype=bf, policy="custom", training=False, whole=True),
        dict(B=2, L=4096, dtype=fp, policy="inverse", training=False, whole=True),
        dict(B=1, L=8192, dtype=bf, policy="fixed", training=False, whole=False, qscale=16),
        dict(B=2, L=6000, dtype=bf, policy="inverse", training=False, whole=False, qscale=16),
        # Two head groups on the tensor cores (H_I 8), training (V_bar).
        dict(B=1, L=3000, dtype=bf, policy="inverse", training=True, whole=True, H=8),
        # The fixed policy's sampled path beside its dense tiles in one call:
        # k 64's capacity is 752 keys, so the tiles below it store every key
        # by position and the later ones take a sampled cut (B 2: the batch
        # offsets of both).
        dict(B=2, L=2000, dtype=bf, policy="fixed", training=False, whole=False, **small),
    ]
    if not args.quick:
        cases += [dict(B=1, L=16384, dtype=bf, policy="inverse", training=True, whole=True),
                  dict(B=1, L=16384, dtype=bf, policy="fixed", training=False, whole=False)]
    if args.large:
        cases += [dict(B=1, L=65536, dtype=bf, policy="inverse", training=False, whole=True),
                  # Rows past one bitmap window (t >= 131072) take the finish
                  # kernel's radix path; a ragged L.
                  dict(B=1, L=140000, dtype=bf, policy="fixed", training=False, whole=False)]
    if args.matrix:
        M = lambda B, L, dt, pol, train=False, whole=True: dict(
            B=B, L=L, dtype=dt, policy=pol, training=train, whole=whole)
        cases = [dict(B=1, L=1024, dtype=bf, indexer=True), dict(B=2, L=4096, dtype=fp, indexer=True)]
        cases += [M(1, L, bf, "inverse") for L in (1024, 4096, 5000, 16384, 65536)]
        cases += [M(2, L, bf, "inverse") for L in (1024, 4096, 16384)]
        cases += [M(1, 4096, fp, "inverse", True), M(2, 5000, fp, "inverse", True),
                  M(1, 16384, fp, "inverse", True)]
        cases += [M(1, 1024, bf, "fixed"), M(2, 16384, bf, "fixed"), M(1, 65536, bf, "fixed")]
        cases += [M(1, 4096, bf, "proportional"), M(2, 5000, fp, "proportional")]
        cases += [M(1, 4096, bf, "custom"), M(2, 16384, bf, "custom", True)]
        cases += [M(1, L, bf, "inverse", whole=False) for L in (16384, 65536)]
    if args.compare:
        cases = []
        for L in (4096, 16384, 65536):
            for tc in (True, False):
                cases.append(dict(B=1, L=L, dtype=bf, policy="inverse", training=False,
                                  whole=False, tc=tc))
        for L in (16384, 65536):
            for rif in (1, 2, 4, 8):
                cases.append(dict(B=1, L=L, dtype=bf, policy="inverse", training=False,
                                  whole=True, rif=rif))
    def side_by_side(shapes, option):
        """Cases (B, L, dtype, policy, training[, whole]; whole cores unless
        said), each with `option` on, then off."""
        return [dict(B=c[0], L=c[1], dtype=c[2], policy=c[3], training=c[4],
                     whole=c[5] if len(c) > 5 else True, **{option: on})
                for c in shapes for on in (True, False)]
    # The attention variants' side-by-side shapes.
    attention_cores = ((1, 1024, bf, "fixed", False), (2, 1024, fp, "inverse", True),
                       (1, 5000, bf, "proportional", False), (2, 4096, fp, "inverse", False),
                       (1, 16384, bf, "inverse", False), (1, 65536, bf, "fixed", False))
    if args.attention_tc:
        cases = side_by_side(attention_cores, "atc")
    if args.pregate:
        cases = side_by_side(((2, 1024, fp, "inverse", True),
                              (1, 5000, bf, "proportional", False),
                              (1, 16384, bf, "inverse", False),
                              (1, 65536, bf, "fixed", False)), "pg")
    if args.query_tiles:
        cases = side_by_side(attention_cores, "qt")
    if args.sampled:
        cases = side_by_side((
            (1, 300, bf, "inverse", True, False), (2, 1000, bf, "inverse", False, False),
            (2, 4096, fp, "inverse", True, True), (1, 5000, bf, "proportional", False, True),
            (1, 4096, bf, "custom", False, True), (1, 16384, bf, "fixed", False, False),
            (1, 16384, bf, "inverse", False, True), (1, 65536, bf, "inverse", False, False)),
            "ss")
        for c in cases[:4]:
            c.update(k=(64, 16, 128))
    if args.attention_shapes:
        A = lambda B, L, NH, NKV, D, K, dt, gates: dict(
            attention=True, B=B, L=L, NH=NH, NKV=NKV, D=D, K=K, dtype=dt, gates=gates)
        shapes = [A(2, 1000, 8, 4, 128, 64, bf, True), A(1, 777, 32, 4, 64, 128, fp, True),
                  A(1, 1500, 16, 1, 128, 256, bf, False), A(2, 3001, 32, 8, 64, 512, fp, True),
                  A(1, 2048, 32, 16, 128, 2048, bf, True), A(1, 500, 8, 8, 128, 64, bf, True)]
        # (The per-query kernel refuses groups above 8: query tiles only.)
        cases = [dict(c, qt=on) for c in shapes
                 for on in ((True, False) if c["NH"] // c["NKV"] <= 8 else (True,))]
        # Ascending selections (the selection kernels' output), also over
        # several union windows (16384 keys for 16-query tiles).
        cases += [dict(c, sorted=True) for c in shapes[:4]]
        cases += [dict(A(1, 40000, 32, 8, 128, 2048, bf, True), sorted=s)
                  for s in (True, False)]
    if args.indexer:
        I = lambda B, L, dt, H=4, DI=64, dsa=False: dict(
            indexer=True, B=B, L=L, dtype=dt, H=H, DI=DI, dsa=dsa)
        # The CUDA-core kernel stages H_I x d_I x 8 f32 queries in 24 KiB:
        # H_I 8 at d_I 128 and H_I 16 run over query tiles only.
        both = [I(1, 1024, bf), I(2, 4096, fp), I(1, 5000, bf), I(1, 999, fp, H=2, dsa=True),
                I(1, 8192, bf), I(1, 16384, bf)]
        cases = [dict(c, it=on) for c in both for on in (True, False)]
        cases += [I(1, 777, bf, H=8, DI=128), I(2, 1000, bf, H=16), I(1, 3000, fp, H=1)]
    # A selection (or core) case with H heads of d_I DI.
    Hc = lambda B, L, dt, pol, H, DI=64, train=False, whole=False, **kw: dict(
        B=B, L=L, dtype=dt, policy=pol, training=train, whole=whole, H=H, DI=DI, **kw)
    if args.heads:
        cases = [Hc(1, 4096, bf, "fixed", 8), Hc(2, 5000, fp, "inverse", 8, train=True),
                 Hc(1, 4096, bf, "inverse", 8, whole=True), Hc(1, 3000, bf, "fixed", 2),
                 Hc(1, 2048, fp, "inverse", 1, **small), Hc(1, 4096, bf, "inverse", 3),
                 Hc(1, 4096, bf, "fixed", 16), Hc(1, 2048, bf, "inverse", 8, 128),
                 Hc(1, 2048, bf, "fixed", 12, qscale=16)]
        # Side by side with the CUDA-core form it replaces (a smaller k:
        # the radix selection's time is its sweeps, not the budget).
        cases += [Hc(1, 16384, bf, "fixed", 8, tc=tc) for tc in (True, False)]
    if args.wide:
        W = lambda L, pol, H, DI: Hc(1, L, bf, pol, H, DI)
        cases = [W(65536, "fixed", 4, 64), W(65536, "fixed", 4, 128), W(65536, "inverse", 4, 128),
                 W(65536, "fixed", 8, 64), W(16384, "fixed", 8, 128), W(16384, "inverse", 8, 128)]
    if args.first:
        cases = cases[:args.first]
    if args.last:
        cases = cases[-args.last:]
    results = []
    with open(out_dir / "select_check.jsonl", "w") as log:
        for case in cases:
            try:
                run = (run_indexer_case if case.get("indexer") else
                       run_attention_case if case.get("attention") else run_case)
                results.append(run(rt, case, gen, log))
            except Exception as exc:  # report and go on
                results.append(dict(case=case_name(case), ok=False, error=str(exc)[:400]))
                log.write(json.dumps(results[-1]) + "\n")
            print(json.dumps(results[-1]), flush=True)
    print()
    print(f"{'case':44} {'ok':>3} {'ms':>9} {'cold ms':>8} {'hit us':>7} {'counts':>7} "
          f"{'recall':>7} {'ident':>8} {'o err':>9} {'lse err':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['case']:44} {'NO':>3} error: {r['error'][:150]}")
            continue
        if "max_abs_err" in r:
            print(f"{r['case']:44} {'yes' if r['ok'] else 'NO':>3} {r['ms']:9.3f} {r['cold_ms']:8.1f} "
                  f"{r['hit_us']:7.1f}  scores: max err {r['max_abs_err']:.2e} (relative to "
                  f"max(1, |ref|)), masked -inf {r['masked']}, {r.get('tflops', 0)} TFLOP/s, "
                  f"{r.get('gbps', 0)} GB/s written")
            continue
        print(f"{r['case']:44} {'yes' if r['ok'] else 'NO':>3} {r['ms']:9.3f} {r['cold_ms']:8.1f} "
              f"{r['hit_us']:7.1f} {r['count_agree']:7.4f} {r['min_recall']:7.4f} "
              f"{r['identical']:>8} {r.get('o_rel_err', float('nan')):9.2e} "
              f"{r.get('lse_abs_err', float('nan')):9.2e}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
