//===- GSAOps.td - the fused ops of Gated Sparse Attention -*- tablegen -*-===//
//
// Shapes follow ../shared/SPEC.md: q [B, L, n_h, d_k], k/v [B, L, n_kv, d_k],
// qi [B, L, H_I, d_I], ki [B, L, d_I], wi [B, L, H_I], bi [H_I].
// Operand types are checked by the C++ verifiers (GSAOps.cpp) rather than by
// ODS constraints so that every diagnostic names the operand and the
// expected versus actual value.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_OPS_TD
#define GSA_OPS_TD

include "GSADialect.td"
include "GSAAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpBase.td"

// Every fused op is a pure function of its tensors; its regions hold scalar
// code that the op calls per element.
defvar GSA_FusedOpTraits = [IsolatedFromAbove, RecursiveMemoryEffects,
                            RecursivelySpeculatable];

//===----------------------------------------------------------------------===//
// gsa.indexer
//===----------------------------------------------------------------------===//

def GSA_IndexerOp : GSA_Op<"indexer",
    GSA_FusedOpTraits # [AttrSizedOperandSegments]> {
  let summary = "gated lightning indexer: causal score matrix I[b, t, s]";
  let description = [{
    Computes, for every query position `t` and key position `s <= t`,

        I[b, t, s] = sum_j weighting(wi[b, t, j], j)
                           * activation(scale * dot(qi[b, t, j], ki[b, s]) + bi[j], j)

    (SPEC section 1). Entries with `s > t` are `-inf`. `scale` defaults to
    `1 / sqrt(d_I)`. Without `wi` every head weight is 1 and the `weighting`
    region must be absent; without `bi` the bias is 0.

    The `activation` region has block arguments `(%x: f32, %head: index)`
    and yields one `f32`; the `weighting` region the same with the raw weight
    logit. GSA uses sigmoid for both; DSA uses relu and the identity.

    Example (GSA):

    ```mlir
    %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
        activation {
        ^bb0(%x: f32, %j: index):
          %s = math.sigmoid %x ... gsa.yield %s : f32
        } weighting { ... } : (...) -> tensor<1x128x128xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$qi,
                       AnyRankedTensor:$ki,
                       Optional<AnyRankedTensor>:$wi,
                       Optional<AnyRankedTensor>:$bi,
                       OptionalAttr<F32Attr>:$scale);
  let results = (outs AnyRankedTensor:$scores);
  let regions = (region AnyRegion:$activation, AnyRegion:$weighting);
  let assemblyFormat = [{
    $qi `,` $ki (`weights` `(` $wi^ `)`)? (`bias` `(` $bi^ `)`)?
    (`scale` `(` $scale^ `)`)? attr-dict-with-keyword
    `activation` $activation (`weighting` $weighting^)?
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The scale applied to qi . ki: the attribute, else 1 / sqrt(d_I).
    /// Returns failure when d_I is dynamic and no attribute is given.
    float getScaleOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// gsa.adaptive_topk
//===----------------------------------------------------------------------===//

def GSA_AdaptiveTopKOp : GSA_Op<"adaptive_topk", GSA_FusedOpTraits> {
  let summary = "variance-driven adaptive top-k selection";
  let description = [{
    For each query row `t` of the causal score matrix (`n_t = t + 1` visible
    positions) computes the population variance `var_t`, a budget

        k_t = min(clamp(floor(k_base * r_t), k_min, k_max), n_t)

    with `r_t` given by `policy` (`inverse`: `V_bar / var_t`,
    `proportional`: `var_t / V_bar`, `fixed`: 1, `custom`: the `policy_fn`
    region, which receives `(%mean: f32, %var: f32, %v_bar: f32, %t: index)`
    and yields the real budget `k_base * r_t`), and selects the `k_t`
    positions with the largest scores, ties going to the larger position.

    `V_bar` works like batch norm's statistics: with `training` it is the
    batch's mean of `var_t`, and when `running_var` is given the op returns
    `new_running_var = m * V_run + (1 - m) * V_bar` (the first update, with
    `V_run == 0`, sets it directly). Without `training` the op reads
    `V_bar = running_var` and returns no new value.

    Results: `indices` `[B, L, k_max]` i32 (selected positions ascending,
    padded with -1) and `counts` `[B, L]` i32 (`k_t`).
  }];
  let arguments = (ins AnyRankedTensor:$scores,
                       Optional<AnyRankedTensor>:$running_var,
                       GSA_SelectionPolicyAttr:$policy,
                       I64Attr:$k_base,
                       I64Attr:$k_min,
                       I64Attr:$k_max,
                       UnitAttr:$training,
                       OptionalAttr<F32Attr>:$momentum);
  let results = (outs AnyRankedTensor:$indices,
                      AnyRankedTensor:$counts,
                      Optional<AnyRankedTensor>:$new_running_var);
  let regions = (region AnyRegion:$policy_fn);
  let assemblyFormat = [{
    $scores `policy` `=` custom<Policy>($policy) `k` `=` $k_base `in` ` ` `[` $k_min `,` $k_max `]`
    (`running_var` `(` $running_var^ `)`)? (`training` $training^)?
    (`momentum` `(` $momentum^ `)`)? attr-dict-with-keyword
    (`policy_fn` $policy_fn^)?
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The running-variance momentum: the attribute, else 0.99.
    float getMomentumOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// gsa.sparse_attention
//===----------------------------------------------------------------------===//

def GSA_SparseAttentionOp : GSA_Op<"sparse_attention",
    GSA_FusedOpTraits # [AttrSizedOperandSegments]> {
  let summary = "sparse SDPA over selected positions with G2 and G1 gates";
  let description = [{
    For every query `t` and head `h` (reading key/value head
    `h / (n_h / n_kv)`), attends over the first `counts[b, t]` entries of
    `indices[b, t]` (entries equal to -1 are skipped):

        v'[s]      = v[s] * sigmoid(value_gate[s])                  (G2)
        a[t, h, s] = softmax_s(score_mod(scale * dot(q[t, h], k[s]), b, h, t, s))
        o[t, h]    = (sum_s a[t, h, s] * v'[s]) * sigmoid(output_gate[t, h])  (G1)

    and returns `lse[b, t, h]`, the log-sum-exp of the (modified) scores.
    A row with no selected position gives `o = 0`, `lse = -inf`. `scale`
    defaults to `1 / sqrt(d_k)`. The `score_mod` region receives
    `(%score: f32, %b: index, %h: index, %t: index, %s: index)`.
    The selected positions of a row are a set (as `gsa.adaptive_topk`
    returns them): a position listed twice counts twice on the CPU path and
    in the per-query GPU kernel, once in the GPU's query-tile kernel.
  }];
  let arguments = (ins AnyRankedTensor:$q,
                       AnyRankedTensor:$k,
                       AnyRankedTensor:$v,
                       AnyRankedTensor:$indices,
                       AnyRankedTensor:$counts,
                       Optional<AnyRankedTensor>:$value_gate,
                       Optional<AnyRankedTensor>:$output_gate,
                       OptionalAttr<F32Attr>:$scale);
  let results = (outs AnyRankedTensor:$o, AnyRankedTensor:$lse);
  let regions = (region AnyRegion:$score_mod);
  let assemblyFormat = [{
    $q `,` $k `,` $v `select` `(` $indices `,` $counts `)`
    (`value_gate` `(` $value_gate^ `)`)? (`output_gate` `(` $output_gate^ `)`)?
    (`scale` `(` $scale^ `)`)? attr-dict-with-keyword
    (`score_mod` $score_mod^)?
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The softmax scale: the attribute, else 1 / sqrt(d_k).
    float getScaleOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// gsa.gated_sparse_attention
//===----------------------------------------------------------------------===//

def GSA_GatedSparseAttentionOp : GSA_Op<"gated_sparse_attention",
    GSA_FusedOpTraits # [AttrSizedOperandSegments]> {
  let summary = "the whole GSA attention core";
  let description = [{
    Indexer, adaptive top-k and gated sparse attention in one op, with the
    attributes and regions of the three (`gsa-decompose` expands it).
    `scale` is the attention softmax scale, `index_scale` the indexer's.
  }];
  let arguments = (ins AnyRankedTensor:$q,
                       AnyRankedTensor:$k,
                       AnyRankedTensor:$v,
                       AnyRankedTensor:$qi,
                       AnyRankedTensor:$ki,
                       Optional<AnyRankedTensor>:$wi,
                       Optional<AnyRankedTensor>:$bi,
                       Optional<AnyRankedTensor>:$value_gate,
                       Optional<AnyRankedTensor>:$output_gate,
                       Optional<AnyRankedTensor>:$running_var,
                       GSA_SelectionPolicyAttr:$policy,
                       I64Attr:$k_base,
                       I64Attr:$k_min,
                       I64Attr:$k_max,
                       UnitAttr:$training,
                       OptionalAttr<F32Attr>:$momentum,
                       OptionalAttr<F32Attr>:$scale,
                       OptionalAttr<F32Attr>:$index_scale);
  let results = (outs AnyRankedTensor:$o,
                      AnyRankedTensor:$lse,
                      AnyRankedTensor:$indices,
                      AnyRankedTensor:$counts,
                      Optional<AnyRankedTensor>:$new_running_var);
  let regions = (region AnyRegion:$activation, AnyRegion:$weighting,
                        AnyRegion:$policy_fn, AnyRegion:$score_mod);
  let assemblyFormat = [{
    `q` `(` $q `)` `k` `(` $k `)` `v` `(` $v `)`
    `indexer` `(` $qi `,` $ki `)` (`weights` `(` $wi^ `)`)?
    (`bias` `(` $bi^ `)`)? (`value_gate` `(` $value_gate^ `)`)?
    (`output_gate` `(` $output_gate^ `)`)?
    (`running_var` `(` $running_var^ `)`)?
    `policy` `=` custom<Policy>($policy) `k` `=` $k_base `in` ` ` `[` $k_min `,` $k_max `]`
    (`training` $training^)? (`momentum` `(` $momentum^ `)`)?
    (`scale` `(` $scale^ `)`)? (`index_scale` `(` $index_scale^ `)`)?
    attr-dict-with-keyword
    `activation` $activation (`weighting` $weighting^)?
    (`policy_fn` $policy_fn^)? (`score_mod` $score_mod^)?
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// gsa.sigmoid
//===----------------------------------------------------------------------===//

def GSA_SigmoidOp : GSA_Op<"sigmoid", [Pure, SameOperandsAndResultType]> {
  let summary = "logistic sigmoid 1 / (1 + exp(-x)) of a scalar float";
  let description = [{
    The gate and indexer nonlinearity of GSA, as one op so that each backend
    picks its fastest exact-enough form (`exp` on the CPU reference path,
    `tanh.approx` on the GPU, where sigmoid(x) = 0.5 * tanh(x / 2) + 0.5).
  }];
  let arguments = (ins AnyFloat:$x);
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

//===----------------------------------------------------------------------===//
// gsa.tensor_map
//===----------------------------------------------------------------------===//

def GSA_TensorMapOp : GSA_Op<"tensor_map", [Pure]> {
  let summary = "a TMA tensor map of a buffer, passed to a kernel by value";
  let description = [{
    Host side of the GPU lowering: `source` (a buffer of the launch) read as
    a row-major array of `shape` (outermost first), copied by the Tensor
    Memory Accelerator in boxes of `box` elements per dimension into shared
    memory laid out with the `swizzle`-byte swizzle (0: none; 32, 64 or
    128: piece p of 16 bytes of a box row r lands at piece p ^ (r % 8) of
    its 128-byte row, the layout wgmma's descriptors read); reads past the
    shape fill zeros. The result is the kernel argument of a
    `gpu.launch_func`: the runtime encodes the map for the launch's buffer
    (`cuTensorMapEncodeTiled`) and passes its 128 bytes by value (the
    kernel's argument is a grid constant in parameter space, see
    `gsa-grid-constant-params`).

    ```mlir
    %map = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 64] swizzle 128
        : memref<12800xbf16> -> !llvm.ptr
    ```
  }];
  let arguments = (ins AnyStaticShapeMemRef:$source,
                       DenseI64ArrayAttr:$shape, DenseI64ArrayAttr:$box,
                       I64Attr:$swizzle);
  let results = (outs AnyType:$map);
  let assemblyFormat = [{
    $source `shape` $shape `box` $box `swizzle` $swizzle attr-dict `:`
    type($source) `->` type($map)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// gsa.yield
//===----------------------------------------------------------------------===//

def GSA_YieldOp : GSA_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["IndexerOp", "AdaptiveTopKOp", "SparseAttentionOp",
                 "GatedSparseAttentionOp", "TileScoresOp", "TileIndexerHeadsOp",
                 "TileIndexerScoresOp"]>]> {
  let summary = "returns the scalar result of a gsa op's region";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "attr-dict ($values^ `:` type($values))?";
  let builders = [OpBuilder<(ins), [{ /* nothing to yield */ }]>];
}

include "GSATileOps.td"

#endif // GSA_OPS_TD
