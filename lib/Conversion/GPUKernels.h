//===- GPUKernels.h - the kernel builders of convert-gsa-to-gpu -*- C++ -*-===//
//
// Each builder turns one gsa op (or a fused pair) into gpu.func kernels in
// the module's gpu.module and replaces the op by host code: flat buffers,
// gpu.launch_func ops and the result tensors.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_CONVERSION_GPUKERNELS_H
#define GSA_LIB_CONVERSION_GPUKERNELS_H

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/PatternMatch.h"

namespace gsa::detail {

/// Checks the static-shape and size limits of the indexer / selection
/// kernels (located errors on `op`).
/// `rows` is the selection tile's number of query rows (a pass option).
mlir::LogicalResult checkIndexerForGPU(IndexerOp op, int64_t rows);
mlir::LogicalResult checkSelectionForGPU(AdaptiveTopKOp op, int64_t rows);

/// gsa.adaptive_topk as kernels. `tensorCores`: the fused score products
/// on mma.sync where the shapes allow it (bf16/f16, H_I = 4, d_I % 16 = 0).
/// With `fused` (the gsa.indexer whose only
/// user is `op`) the kernels recompute the scores from qi/ki in every pass
/// and the L x L matrix never exists; `fused` is erased. Otherwise they read
/// the op's score tensor.
void lowerSelectionToGPU(AdaptiveTopKOp op, IndexerOp fused,
                         mlir::gpu::GPUModuleOp kernels,
                         mlir::IRRewriter &rewriter, llvm::StringRef prefix,
                         int64_t rows, bool tensorCores,
                         bool sampledSelection, int64_t maxRegisters = 0);

/// gsa.indexer as a kernel writing the causal score matrix (for programs
/// that return or reuse the scores themselves).
void lowerIndexerToGPU(IndexerOp op, mlir::gpu::GPUModuleOp kernels,
                       mlir::IRRewriter &rewriter, llvm::StringRef prefix,
                       int64_t rows);

/// Whether gsa.sparse_attention can run over query tiles (bf16/f16, d_k 64
/// or 128, GQA group of 2 to 16 heads dividing 16, the value gate applied
/// beforehand or absent).
bool usableQueryTiles(SparseAttentionOp op, bool valuesPregated);

/// gsa.sparse_attention as the query-tile union kernel and the tile
/// attention kernel (GPUQueryTiles.cpp); `values` is the flat v buffer the
/// attention reads (pre-gated where the op has a value gate).
void lowerAttentionByQueryTiles(SparseAttentionOp op, mlir::Value values,
                                mlir::gpu::GPUModuleOp kernels,
                                mlir::IRRewriter &rewriter,
                                llvm::StringRef name);

} // namespace gsa::detail

#endif // GSA_LIB_CONVERSION_GPUKERNELS_H
