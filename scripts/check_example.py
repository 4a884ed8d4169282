#!/usr/bin/env python3
"""The main job's check: run a gsa program on the CPU through gsa-run with
seeded random inputs, then compare every output with the independent float64
reference (test/python/gsa_reference.py, written from SPEC.md).

    scripts/check_example.py [PROGRAM] [--seed N]

PROGRAM must hold one gsa.gated_sparse_attention whose operands are the entry
function's arguments, in the order q k v qi ki [wi] [bi] [gv] [go]
[running_var], with sigmoid indexer activation and weighting (the paper's
GSA), as examples/gsa_core.mlir does.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "python"))
import gsa_reference as ref  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", nargs="?", default=str(ROOT / "examples" / "gsa_core.mlir"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build", default=str(ROOT / "build"))
    args = parser.parse_args()

    text = Path(args.program).read_text()
    attrs = re.search(r"policy = (\w+) k = (\d+) in \[(\d+), (\d+)\]", text)
    if not attrs:
        sys.exit("check_example: no 'policy = ... k = ... in [...]' in the program")
    policy, k_base, k_min, k_max = attrs.group(1), *map(int, attrs.groups()[1:])
    training = re.search(r"\]\s+training", text) is not None
    operands = re.search(r"gsa\.gated_sparse_attention(.*?)policy", text, re.S).group(1)
    present = {name: f"{name}(" in operands for name in
               ("weights", "bias", "value_gate", "output_gate", "running_var")}

    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([f"{args.build}/bin/gsa-run", args.program, "--random",
                              "--seed", str(args.seed), "--out-dir", tmp, "--gsa-stats"],
                             capture_output=True, text=True)
        print(run.stdout, end="")
        if run.returncode != 0:
            sys.exit(run.stderr)
        out = Path(tmp)
        arrays = sorted(out.glob("arg*.npy"), key=lambda p: int(p.stem[3:]))
        inputs = [np.load(p).astype(np.float64) for p in arrays]
        results = [np.load(out / f"result{i}.npy") for i in range(len(list(out.glob("result*.npy"))))]

    names = ["q", "k", "v", "qi", "ki"]
    for key, name in (("weights", "wi"), ("bias", "bi"), ("value_gate", "gv"),
                      ("output_gate", "go"), ("running_var", "running_var")):
        if present[key]:
            names.append(name)
    named = dict(zip(names, inputs))
    expected = ref.gated_sparse_attention(
        named["q"], named["k"], named["v"], named["qi"], named["ki"], named.get("wi"),
        named.get("bi"), named.get("gv"), named.get("go"), k_base=k_base, k_min=k_min,
        k_max=k_max, policy=policy,
        running_var=float(named["running_var"]) if "running_var" in named else None,
        training=training)
    o, lse, idx, cnt = results[:4]
    same_budget = cnt == expected["counts"]
    same = np.asarray(ref.same_sets(idx, cnt, expected["indices"], expected["counts"]))
    recall = np.asarray(ref.recall(expected["indices"], expected["counts"], idx, cnt))
    o_ref, lse_ref = ref.sparse_attention(named["q"], named["k"], named["v"], idx, cnt,
                                          named.get("gv"), named.get("go"))
    err_o = ref.relative_error(o.astype(np.float64), o_ref)
    err_lse = ref.relative_error(lse.astype(np.float64), lse_ref)
    print("check against the float64 reference (SPEC.md):")
    print(f"  budgets k_t equal            {same_budget.mean() * 100:6.2f} % of rows")
    print(f"  selected sets identical      {same.mean() * 100:6.2f} % of rows")
    print(f"  recall of the reference set  {recall.mean():.4f}")
    print(f"  o   relative error           {err_o:.2e}   (SPEC: < 1e-5 for f32)")
    print(f"  lse relative error           {err_lse:.2e}")
    ok = err_o < 1e-5 and err_lse < 1e-5 and recall.mean() >= 0.99
    if training and present["running_var"]:
        new_var, ref_var = float(results[4]), float(expected["new_running_var"])
        print(f"  new running variance         {new_var:.6g} (reference {ref_var:.6g})")
        ok &= bool(np.isclose(new_var, ref_var, rtol=1e-5))
    print("  result:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
