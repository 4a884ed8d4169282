"""`import gsa` must work without torch; the nn.Module imports it on first use
and says so plainly when it is missing."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# torch = None in sys.modules makes `import torch` fail as if not installed.
SCRIPT = """
import sys
sys.modules["torch"] = None
sys.path.insert(0, {python!r})
import gsa
assert callable(gsa.functional.gated_sparse_attention) and callable(gsa.dsl.trace)
try:
    gsa.GatedSparseAttention
except ImportError as err:
    print("ImportError:", err)
else:
    raise SystemExit("gsa.GatedSparseAttention imported without torch")
"""


def test_gsa_imports_without_torch_and_the_module_says_it_needs_it():
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(python=str(ROOT / "python"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "needs PyTorch" in proc.stdout
