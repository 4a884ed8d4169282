"""Every Python example in examples/ runs and passes its own check against a
reference (each exits non-zero on a mismatch)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_issue_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"gsa_paper.py", "dsa.py", "gated_dense.py", "new_variant.py"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_and_matches_its_reference(example):
    proc = subprocess.run([sys.executable, str(example)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "MISMATCH" not in proc.stdout and "FAILED" not in proc.stdout
