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

#endif // GSA_PASSES_TD
