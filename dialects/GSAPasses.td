//===- GSAPasses.td - passes of the gsa compiler -----------*- tablegen -*-===//

#ifndef GSA_PASSES_TD
#define GSA_PASSES_TD

include "mlir/Pass/PassBase.td"

def GSADecompose : Pass<"gsa-decompose"> {
  let summary = "expand gsa.gated_sparse_attention into indexer, adaptive_topk "
                "and sparse_attention";
  let description = [{
    Rewrites every `gsa.gated_sparse_attention` into the three fused ops it
    is made of, moving its regions and attributes to the op that uses them.
    The score matrix between `gsa.indexer` and `gsa.adaptive_topk` is a
    tensor value here; the backends decide whether it is ever materialised.
  }];
  let dependentDialects = ["::gsa::GSADialect"];
}


def ConvertGSAToLoops : Pass<"convert-gsa-to-loops"> {
  let summary = "lower the gsa fused ops to scf loops on memrefs (CPU reference)";
  let description = [{
    The reference lowering: every `gsa.indexer`, `gsa.adaptive_topk` and
    `gsa.sparse_attention` becomes loop nests (`scf`, `arith`, `math`,
    `memref`) that follow SPEC.md to the letter, with the user's regions
    inlined at their call sites. Operands enter through
    `bufferization.to_buffer`, results leave through
    `bufferization.to_tensor restrict`, so One-Shot Bufferize finishes the
    job. `gsa.sigmoid` becomes `1 / (1 + exp(-x))`.

    Selection computes, per row, the population variance in f64, the budget
    `k_t`, and the exact k-th largest score by bisection over the bits of an
    order-preserving integer key (32 counting passes, no sort, no memory
    beyond the outputs); ties go to the larger position.

    Run `gsa-decompose` first: a remaining `gsa.gated_sparse_attention` is an
    error.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}


def ConvertGSAToGPU : Pass<"convert-gsa-to-gpu", "::mlir::ModuleOp"> {
  let summary = "lower the gsa ops to GPU kernels and their launches";
  let description = [{
    Builds, for every `gsa.sparse_attention` (static shapes), a `gpu.func`
    kernel in `gpu.module @gsa_kernels` and replaces the op with a
    `gpu.launch_func` on flat buffers (inputs, then `o` and `lse`). The
    launch ops are the manifest the runtime follows: kernel, grid, block and
    which buffer goes where.

    Kernel: one CTA of 4 warps per (query, key/value head, batch); the warps
    split the query's selected set, each K/V row is loaded once per CTA and
    serves all query heads of the GQA group (lane-strided head dimension,
    xor-shuffle dot products), online softmax in base 2 with `ex2.approx`,
    partial states combined in shared memory after one barrier, gates as
    `tanh.approx` sigmoids, the `score_mod` region inlined.

    `gsa.adaptive_topk` becomes three kernels (row statistics, the batch's
    V_bar in training mode, radix top-k with an ordered write-out); a
    `gsa.indexer` whose only user is the selection is fused into them (its
    scores are recomputed per pass, never stored), any other indexer gets a
    kernel writing its scores. See docs/gpu-path.md.
  }];
  let options = [
    Option<"selectRowsPerTile", "select-rows-per-tile", "int64_t",
           /*default=*/"8",
           "query rows per thread block of the indexer / selection kernels "
           "(1 to 16; each key row read serves that many queries)">,
    Option<"attentionRowsInFlight", "attention-rows-in-flight", "int64_t",
           /*default=*/"4",
           "selected rows each warp of the attention kernel loads per "
           "iteration (1 to 8): more loads in flight, more registers">,
    Option<"attentionPregateValues", "attention-pregate-values", "bool",
           /*default=*/"true",
           "apply the value gate G2 once per key row in a separate kernel "
           "(v' = v * sigmoid(gv) in v's type) so that the attention "
           "gathers K and v' only">,
    Option<"attentionQueryTiles", "attention-query-tiles", "bool",
           /*default=*/"true",
           "sparse attention over query tiles: a kernel builds each tile's "
           "union of selected keys with per-query masks, and the attention "
           "stages every union row once per tile (cp.async, ldmatrix, "
           "mma.sync); needs bf16/f16, d_k 64 or 128, n_h / n_kv in "
           "{2, 4, 8, 16} and a pre-gated (or no) value gate, otherwise "
           "the per-query kernel runs">,
    Option<"attentionTensorCores", "attention-tensor-cores", "bool",
           /*default=*/"false",
           "attention products (Q K^T, P V) with mma.sync: blocks of 16 "
           "selected rows per warp, the GQA group's heads as the M rows "
           "(bf16/f16, d_k a multiple of 16; other shapes use CUDA cores)">,
    Option<"selectMaxRegisters", "select-max-registers", "int64_t",
           /*default=*/"0",
           "register cap (ptxas .maxnreg) of the selection's sweep kernels "
           "(sample, stats, topk), 0 for none: fewer registers, more warps "
           "per SM">,
    Option<"selectSampled", "select-sampled", "bool",
           /*default=*/"true",
           "sampled selection in front of the radix top-k (tensor-core "
           "indexer, k_max <= 8192): a sampled histogram gives each row a "
           "cut key, the statistics sweep collects the keys above it, and "
           "an exact per-row select finishes the row; rows it cannot "
           "finish (too few candidates, overflow, many ties) go through "
           "the radix passes">,
    Option<"selectTensorCores", "select-tensor-cores", "bool",
           /*default=*/"true",
           "compute the fused indexer's qi . ki products of the selection "
           "with mma.sync (bf16/f16 inputs, H_I = 4, d_I a multiple of 16, "
           "rows per tile a multiple of 4; other shapes use CUDA cores)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // GSA_PASSES_TD
