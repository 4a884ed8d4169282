#!/usr/bin/env python3
"""Where one kernel of the GSA core spends its warps' time, per SASS
instruction: Nsight Compute's source counters (warp stall samples) of one
launch, summarised.

    python3 bench/device/ncu_hotspots.py --kernel select_finish \
        [--lib dist/libgsa.so.xz] [--lengths 131072] [--inputs structured] \
        [--policy fixed] [--top 30]
    python3 bench/device/ncu_hotspots.py --csv saved-source.csv   # summary only

Runs `profile_kernels.py` under `ncu --section SourceCounters` for the
first launch of the kernel whose name matches, exports the SASS source page
as CSV ($OUT/<kernel>-sass.csv) and prints: the stall samples between
consecutive CTA barriers (which phase of the kernel the warps wait in,
the barrier's own samples included with the phase it ends), the busiest
instructions, and the samples by opcode.
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def number(text):
    text = (text or "").replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return 0.0


def read_rows(path):
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    # ncu prints a few lines before the table; the header is the first line
    # naming the Address and Source columns.
    start = next(i for i, line in enumerate(lines)
                 if '"Address"' in line and '"Source"' in line)
    reader = csv.DictReader(lines[start:])
    return list(reader), reader.fieldnames


def column(fields, *needles):
    for name in fields:
        if all(n.lower() in name.lower() for n in needles):
            return name
    return None


def summarise(path, top):
    rows, fields = read_rows(path)
    samples_col = column(fields, "Warp Stall Sampling", "All")
    executed_col = column(fields, "Instructions Executed") or column(fields, "Executed")
    if samples_col is None:
        sys.exit(f"{path}: no warp stall sampling column among {fields}")
    total = sum(number(r[samples_col]) for r in rows) or 1.0
    print(f"{len(rows)} SASS instructions, {total:.0f} warp stall samples "
          f"(columns: {samples_col!r}, {executed_col!r})")

    # Phases between CTA barriers: each barrier closes the phase before it.
    print("\nsamples per phase (instructions up to and including a BAR):")
    phase, first = 0.0, 0
    for i, r in enumerate(rows):
        phase += number(r[samples_col])
        source = r["Source"].strip()
        if re.match(r"(@!?U?P\d+\s+)?BAR\b", source) or i == len(rows) - 1:
            own = number(r[samples_col]) if "BAR" in source else 0.0
            if phase / total >= 0.005:
                print(f"  {100 * phase / total:5.1f}%  [{first:5d}, {i:5d}]  "
                      f"(the barrier itself {100 * own / total:4.1f}%)  {source[:60]}")
            phase, first = 0.0, i + 1

    print(f"\ntop {top} instructions by stall samples:")
    ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i][samples_col]))
    for i in ranked[:top]:
        r = rows[i]
        executed = number(r[executed_col]) if executed_col else 0.0
        print(f"  {100 * number(r[samples_col]) / total:5.1f}%  #{i:5d}  "
              f"exec {executed:12.0f}  {r['Source'].strip()[:80]}")

    print("\nsamples by opcode:")
    by_op = defaultdict(float)
    for r in rows:
        source = re.sub(r"^@!?U?P\w+\s+", "", r["Source"].strip())
        op = source.split(" ")[0].split(".")[0] if source else "?"
        by_op[op] += number(r[samples_col])
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {100 * s / total:5.1f}%  {op}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", help="a part of the kernel's name, e.g. select_finish")
    parser.add_argument("--csv", help="summarise an exported source page instead")
    parser.add_argument("--lib", default=str(ROOT / "dist" / "libgsa.so.xz"))
    parser.add_argument("--lengths", default="131072")
    parser.add_argument("--inputs", default="structured")
    parser.add_argument("--policy", default="fixed")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.csv:
        summarise(args.csv, args.top)
        return
    if not args.kernel:
        sys.exit("name --kernel (or --csv)")
    out = Path(os.environ.get("OUT", tempfile.mkdtemp()))
    report = out / f"{args.kernel}.ncu-rep"
    profile = [sys.executable, str(ROOT / "bench/device/profile_kernels.py"),
               "--lib", args.lib, "--lengths", args.lengths, "--inputs", args.inputs,
               "--policy", args.policy, "--calls", "1"]
    subprocess.run(["ncu", "--clock-control", "none", "--kernel-name",
                    f"regex:{args.kernel}", "--launch-count", "1",
                    "--section", "SourceCounters", "--section", "WarpStateStats",
                    "--import-source", "no", "-f", "-o", str(report.with_suffix(""))]
                   + profile, check=True)
    sass = out / f"{args.kernel}-sass.csv"
    with open(sass, "w") as f:
        subprocess.run(["ncu", "--import", str(report), "--page", "source", "--csv",
                        "--print-source", "sass"], stdout=f, check=True)
    report.unlink(missing_ok=True)
    summarise(sass, args.top)


if __name__ == "__main__":
    main()
