"""Runs gsa programs through `gsa-run` and builds the programs the tests use.

The tests in this folder write inputs as .npy files, run the compiled program
on the CPU path with `gsa-run --inputs DIR --out-dir DIR`, and compare the
results with the float64 reference in `gsa_reference.py` (written from SPEC.md,
independently of the compiler).
"""

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("GSA_BUILD_DIR", ROOT / "build"))
GSA_RUN = BUILD / "bin" / "gsa-run"


class GsaRunError(RuntimeError):
    """gsa-run exited with an error; `stderr` holds its message."""

    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


def run_program(program: str, inputs, extra_args=(), workdir: Optional[Path] = None):
    """Runs `program` on `inputs` (a list of arrays, one per argument) and
    returns (results, stdout)."""
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    work = Path(tmp.name) if tmp else Path(workdir)
    try:
        (work / "in").mkdir(parents=True, exist_ok=True)
        (work / "out").mkdir(parents=True, exist_ok=True)
        prog = work / "program.mlir"
        prog.write_text(program)
        for i, array in enumerate(inputs):
            if array is not None:
                np.save(work / "in" / f"arg{i}.npy", np.require(array, requirements="C"))
        cmd = [str(GSA_RUN), str(prog), "--inputs", str(work / "in"),
               "--out-dir", str(work / "out"), *extra_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise GsaRunError(proc.stderr)
        results = []
        i = 0
        while (work / "out" / f"result{i}.npy").exists():
            results.append(np.load(work / "out" / f"result{i}.npy"))
            i += 1
        return results, proc.stdout
    finally:
        if tmp:
            tmp.cleanup()


def tensor_type(shape, elem):
    dims = "x".join("?" if d is None else str(d) for d in shape)
    return f"tensor<{dims}x{elem}>" if shape else f"tensor<{elem}>"


SIGMOID = "%r = gsa.sigmoid %x : f32\n        gsa.yield %r : f32"
RELU = ("%zero = arith.constant 0.0 : f32\n        %r = arith.maximumf %x, %zero : f32\n"
        "        gsa.yield %r : f32")
IDENTITY = "gsa.yield %x : f32"


@dataclass
class Core:
    """One gsa.gated_sparse_attention program and its shapes."""
    B: int = 1
    L: int = 64
    n_h: int = 4
    n_kv: int = 2
    d: int = 16
    H_I: int = 2
    d_I: int = 8
    k_base: int = 8
    k_min: int = 4
    k_max: int = 16
    policy: str = "inverse"
    training: bool = True
    running_var: bool = True
    weights: bool = True
    bias: bool = True
    value_gate: bool = True
    output_gate: bool = True
    elem: str = "f32"
    # Region bodies: the block argument is %x (activation, weighting) and the
    # body must end in gsa.yield of an f32.
    activation: str = SIGMOID
    weighting: str = SIGMOID
    policy_fn: Optional[str] = None   # args %mean %var %vbar %t
    score_mod: Optional[str] = None   # args %s %b %h %t %kv
    momentum: Optional[float] = None
    scale: Optional[float] = None
    index_scale: Optional[float] = None
    dynamic: bool = False             # B and L dynamic in the signature

    def shapes(self):
        """Argument names and shapes, in the order of the function."""
        B, L = self.B, self.L
        args = [("q", (B, L, self.n_h, self.d), self.elem),
                ("k", (B, L, self.n_kv, self.d), self.elem),
                ("v", (B, L, self.n_kv, self.d), self.elem),
                ("qi", (B, L, self.H_I, self.d_I), self.elem),
                ("ki", (B, L, self.d_I), self.elem)]
        if self.weights:
            args.append(("wi", (B, L, self.H_I), self.elem))
        if self.bias:
            args.append(("bi", (self.H_I,), "f32"))
        if self.value_gate:
            args.append(("gv", (B, L, self.n_kv, self.d), self.elem))
        if self.output_gate:
            args.append(("go", (B, L, self.n_h, self.d), self.elem))
        if self.running_var:
            args.append(("running_var", (), "f32"))
        return args

    def program(self):
        def sig_shape(shape):
            if not self.dynamic or len(shape) < 2:
                return shape
            return (None, None) + tuple(shape[2:])

        args = self.shapes()
        arg_types = {n: tensor_type(sig_shape(s), e) for n, s, e in args}
        B, L = self.B, self.L
        res = [tensor_type(sig_shape((B, L, self.n_h, self.d)), self.elem),
               tensor_type(sig_shape((B, L, self.n_h)), "f32"),
               tensor_type(sig_shape((B, L, self.k_max)), "i32"),
               tensor_type(sig_shape((B, L)), "i32")]
        returns_var = self.training and self.running_var
        if returns_var:
            res.append("tensor<f32>")
        params = ", ".join(f"%{n}: {arg_types[n]}" for n, _, _ in args)
        names = [n for n, _, _ in args]
        parts = ["q(%q) k(%k) v(%v) indexer(%qi, %ki)"]
        if self.weights:
            parts.append("weights(%wi)")
        if self.bias:
            parts.append("bias(%bi)")
        if self.value_gate:
            parts.append("value_gate(%gv)")
        if self.output_gate:
            parts.append("output_gate(%go)")
        if self.running_var:
            parts.append("running_var(%running_var)")
        parts.append(f"policy = {self.policy} k = {self.k_base} in [{self.k_min}, {self.k_max}]")
        if self.training:
            parts.append("training")
        if self.momentum is not None:
            parts.append(f"momentum({self.momentum})")
        if self.scale is not None:
            parts.append(f"scale({self.scale})")
        if self.index_scale is not None:
            parts.append(f"index_scale({self.index_scale})")
        regions = [f"activation {{\n      ^bb0(%x: f32, %j: index):\n        {self.activation}\n      }}"]
        if self.weights:
            regions.append(f"weighting {{\n      ^bb0(%x: f32, %j: index):\n        {self.weighting}\n      }}")
        if self.policy_fn is not None:
            regions.append("policy_fn {\n      ^bb0(%mean: f32, %var: f32, %vbar: f32, %t: index):\n"
                           f"        {self.policy_fn}\n      }}")
        if self.score_mod is not None:
            regions.append("score_mod {\n      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):\n"
                           f"        {self.score_mod}\n      }}")
        results = ["%o", "%lse", "%idx", "%cnt"] + (["%new_var"] if returns_var else [])
        operand_types = ", ".join(arg_types[n] for n in names)
        result_types = ", ".join(res)
        return (
            f"func.func @core({params}) -> ({result_types}) {{\n"
            f"  {', '.join(results)} = gsa.gated_sparse_attention {' '.join(parts)}\n"
            f"      {' '.join(regions)}\n"
            f"      : ({operand_types}) -> ({result_types})\n"
            f"  return {', '.join(results)} : {result_types}\n"
            "}\n")

    def random_inputs(self, rng, running_var_value=0.0):
        """Fresh random inputs with scales that keep sigmoids and softmaxes
        out of saturation (SPEC: numerical acceptance)."""
        out = {}
        for name, shape, _ in self.shapes():
            if name == "running_var":
                out[name] = np.array(running_var_value, dtype=np.float32)
            elif name == "bi":
                out[name] = (0.5 * rng.standard_normal(shape)).astype(np.float32)
            else:
                out[name] = rng.standard_normal(shape).astype(np.float32)
        return out

    def input_list(self, named):
        return [named[n] for n, _, _ in self.shapes()]
