"""Bad input to gsa-run and the runtime: clear errors naming the operand,
never a crash; and a standalone gsa.sparse_attention with padding."""

import numpy as np
import pytest

import gsa_harness as h
import gsa_reference as ref


def core_inputs(core, seed=0):
    return core.input_list(core.random_inputs(np.random.default_rng(seed)))


def test_wrong_static_shape_names_the_operand():
    core = h.Core(L=16)
    inputs = core_inputs(core)
    inputs[2] = inputs[2][:, :, :, :8]            # v with d = 8
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), inputs)
    assert "input #2 ('v'): expected shape [1, 16, 2, 16], got [1, 16, 2, 8]" in err.value.stderr


def test_mismatched_dynamic_lengths_are_caught_by_the_verifier():
    core = h.Core(L=16, dynamic=True)
    inputs = core_inputs(core)
    inputs[4] = inputs[4][:, :12]                  # ki with L = 12
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), inputs)
    assert "'ki' dim 1 (L) is 12, but 'qi' dim 1 (L) is 16" in err.value.stderr
    assert "program.mlir:2:" in err.value.stderr


def test_integer_data_for_a_float_operand_is_rejected():
    core = h.Core(L=8)
    inputs = core_inputs(core)
    inputs[0] = inputs[0].astype(np.int32)
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), inputs)
    assert "input #0 ('q'" in err.value.stderr and "cannot convert i32 data to f32" in err.value.stderr


def test_missing_input_is_named():
    core = h.Core(L=8)
    inputs = core_inputs(core)
    inputs[3] = None
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), inputs)
    assert "input #3 ('qi'" in err.value.stderr and "has no value" in err.value.stderr


def test_corrupt_npy_is_reported(tmp_path):
    core = h.Core(L=8)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "arg0.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(h.GsaRunError) as err:
        h.run_program(core.program(), [None] + core_inputs(core)[1:], workdir=tmp_path)
    assert "is not a valid .npy file" in err.value.stderr


def test_parse_error_is_located():
    with pytest.raises(h.GsaRunError) as err:
        h.run_program("func.func @f(%x: tensor<2xf32>) {\n  %y = gsa.bogus %x\n}\n",
                      [np.zeros(2, np.float32)])
    assert "program.mlir:2:" in err.value.stderr


STANDALONE = """
func.func @attend(%q: tensor<1x6x2x4xf32>, %k: tensor<1x6x1x4xf32>, %v: tensor<1x6x1x4xf32>,
                  %idx: tensor<1x6x3xi32>, %cnt: tensor<1x6xi32>)
    -> (tensor<1x6x2x4xf32>, tensor<1x6x2xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x6x2x4xf32>, tensor<1x6x1x4xf32>, tensor<1x6x1x4xf32>, tensor<1x6x3xi32>, tensor<1x6xi32>)
        -> (tensor<1x6x2x4xf32>, tensor<1x6x2xf32>)
  return %o, %lse : tensor<1x6x2x4xf32>, tensor<1x6x2xf32>
}
"""


def test_standalone_sparse_attention_with_padding_and_empty_rows():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 6, 2, 4)).astype(np.float32)
    k = rng.standard_normal((1, 6, 1, 4)).astype(np.float32)
    v = rng.standard_normal((1, 6, 1, 4)).astype(np.float32)
    idx = np.array([[[0, -1, -1], [1, 0, -1], [-1, 2, 0], [3, 1, -1],
                     [4, 2, 0], [-1, -1, -1]]], dtype=np.int32)
    cnt = np.array([[1, 2, 3, 2, 3, 0]], dtype=np.int32)
    (o, lse), _ = h.run_program(STANDALONE, [q, k, v, idx, cnt])
    o_ref, lse_ref = ref.sparse_attention(q, k, v, idx, cnt)
    assert ref.relative_error(o, o_ref) < 1e-5
    assert ref.relative_error(lse, lse_ref) < 1e-5
    assert np.all(o[0, 5] == 0) and np.all(lse[0, 5] == -np.inf)


def test_standalone_sparse_attention_skips_positions_that_are_not_visible():
    # Positions beyond t (or beyond L) are skipped like -1 padding: causality
    # holds whatever the indices say, and nothing reads out of bounds.
    rng = np.random.default_rng(6)
    q = rng.standard_normal((1, 6, 2, 4)).astype(np.float32)
    k = rng.standard_normal((1, 6, 1, 4)).astype(np.float32)
    v = rng.standard_normal((1, 6, 1, 4)).astype(np.float32)
    idx = np.array([[[0, 5, 1000], [1, 0, -7], [2, 3, 0], [3, 1, 9],
                     [4, 2, 0], [5, 5, 5]]], dtype=np.int32)
    cnt = np.array([[3, 3, 3, 3, 3, 99]], dtype=np.int32)
    (o, lse), _ = h.run_program(STANDALONE, [q, k, v, idx, cnt])
    visible = idx.copy()
    for t in range(6):
        row = visible[0, t]
        row[(row < 0) | (row > t)] = -1
    o_ref, lse_ref = ref.sparse_attention(q, k, v, visible, np.minimum(cnt, 3))
    assert ref.relative_error(o, o_ref) < 1e-5
    assert ref.relative_error(lse, lse_ref) < 1e-5
