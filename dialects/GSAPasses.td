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

#endif // GSA_PASSES_TD
