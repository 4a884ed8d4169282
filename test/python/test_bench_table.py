"""bench/gsa_bench.py --table: the benchmark's table from saved rows (no
GPU, no torch), with the stage rates and the tile floor issue 6 asks for."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "docs" / "measurements" / "2026-12-07h-h100-gsa-bench-128k-triton.jsonl"


def test_table_from_saved_rows():
    rows = [json.loads(line) for line in open(RUN)]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gsa_bench.py"), "--table",
                           str(RUN)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    header = lines[0].split()
    for column in ("(floor)", "(tile)", "TF/s", "GB/s", "per-query", "att", "vs", "eager",
                   "cuDNN"):
        assert column in header, column
    assert len(lines) == 1 + len(rows)
    for r, line in zip(rows, lines[1:]):
        cells = line.split()
        assert cells[:3] == [str(r["L"]), r["inputs"], r["policy"]]
        # select ms, its floor and TFLOP/s; attend ms and its tile floor
        assert float(cells[4]) == round(r["select_ms"], 2)
        assert float(cells[6]) == round(r["select_tflops"])
        assert float(cells[7]) == round(r["attend_ms"], 2)
        assert float(cells[8]) == round(r["attend_union_floor_ms"], 2)
        assert float(cells[13]) == round(r["attend_triton_ms"], 2)
        # the ratios to cuDNN and to the Triton peer are the saved times' quotients
        assert cells[19] == f"{r['cudnn_ms'] / r['core_ms']:.2f}x"
        assert cells[24] == f"{r['core_triton_ms'] / r['core_ms']:.2f}x"
