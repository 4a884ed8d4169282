//===- GSADialect.td - the gsa dialect ---------------------*- tablegen -*-===//
//
// The dialect of Gated Sparse Attention. Its fused ops are the parts of one
// GSA attention core as ../shared/SPEC.md fixes them.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_DIALECT_TD
#define GSA_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def GSA_Dialect : Dialect {
  let name = "gsa";
  let summary = "Gated Sparse Attention: indexer, adaptive top-k, gated sparse SDPA";
  let description = [{
    The `gsa` dialect holds the fused operations of Gated Sparse Attention:

    * `gsa.indexer` - the gated lightning indexer, with user-written per-head
      activation and weighting regions (sigmoid for GSA, relu/identity for
      DSA, anything else for a new variant);
    * `gsa.adaptive_topk` - variance-driven adaptive top-k selection;
    * `gsa.sparse_attention` - sparse SDPA over the selected positions with
      the value gate (G2), the output gate (G1) and a `score_mod` region;
    * `gsa.gated_sparse_attention` - the whole core, which `gsa-decompose`
      expands into the three ops above.

    All ops have tensor (value) semantics. Regions are scalar functions of
    their block arguments, isolated from above, so that every backend can
    inline them into its kernels.
  }];
  let cppNamespace = "::gsa";
  let useDefaultAttributePrinterParser = 1;
}

class GSA_Op<string mnemonic, list<Trait> traits = []>
    : Op<GSA_Dialect, mnemonic, traits>;

#endif // GSA_DIALECT_TD
