//===- GPUKernels.h - kernel builders of the GPU lowering passes -*- C++ -*-===//
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
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <functional>

namespace gsa::detail {

/// Checks the static-shape and size limits of the indexer / selection
/// kernels (located errors on `op`).
/// `rows` is the selection tile's number of query rows (a pass option);
/// `tensorCores`: the selection's tensor-core forms are allowed.
mlir::LogicalResult checkIndexerForGPU(IndexerOp op, int64_t rows,
                                       bool tensorCores);
mlir::LogicalResult checkSelectionForGPU(AdaptiveTopKOp op, int64_t rows);
/// The A-fragment registers per mma tile of the selection's tensor-core
/// forms, in units of 16 (4 heads of d_I 64): head groups (H_I / 4 rounded
/// up, one product each) x d_I / 64, rounded up; 0 for an indexer those
/// forms do not take.
int64_t selectionFragmentUnits(IndexerOp op);

/// gsa.adaptive_topk as kernels. `tensorCores`: the fused score products
/// on mma.sync where the shapes allow it (bf16/f16, H_I 1 to 16, d_I % 16
/// = 0).
/// With `fused` (the gsa.indexer whose only
/// user is `op`) the kernels recompute the scores from qi/ki in every pass
/// and the L x L matrix never exists; `fused` is erased. Otherwise they read
/// the op's score tensor. `wgmmaStages` > 0: the statistics sweep on wgmma
/// over a ring of that many staged key chunks, where its shapes allow
/// (2 x `wgmmaQueries` rows per tile, 16 or 32 queries per warpgroup; the
/// other kernels keep `rows`); `tmaMode` > 0: its key chunks by TMA (1:
/// slots freed by the loop's CTA barrier, 2: by per-slot "empty"
/// barriers). `denseTiles`: the sampled selection's tiles of rows that see
/// at most the candidates' capacity skip the sample's sweeps and store
/// their keys by position.
void lowerSelectionToGPU(AdaptiveTopKOp op, IndexerOp fused,
                         mlir::gpu::GPUModuleOp kernels,
                         mlir::IRRewriter &rewriter, llvm::StringRef prefix,
                         int64_t rows, bool tensorCores,
                         bool sampledSelection, int64_t maxRegisters = 0,
                         int64_t wgmmaStages = 0,
                         int64_t wgmmaQueries = 16, int64_t tmaMode = 0,
                         bool denseTiles = true);

/// gsa.indexer as a kernel writing the causal score matrix (for programs
/// that return or reuse the scores themselves).
void lowerIndexerToGPU(IndexerOp op, mlir::gpu::GPUModuleOp kernels,
                       mlir::IRRewriter &rewriter, llvm::StringRef prefix,
                       int64_t rows);

/// Threads of the query-tile union kernel, and the 32-bit words of its
/// shared query-mask buffer (32 KiB).
constexpr int64_t kUnionThreads = 256;
constexpr int64_t kUnionMaskWords = 8192;

/// Makes a workgroup buffer of `n` elements for a kernel being built (a
/// gpu.func's or a gpu.launch's workgroup attribution).
using SharedAllocator = std::function<mlir::Value(mlir::Type, int64_t)>;

/// The shape of the query-tile union: B x L queries in tiles of T, k_max
/// selections per query.
struct TileUnionShape {
  int64_t B, L, K, T, numTiles;
};

/// Where the union kernel records, per tile, whether the tile should run
/// as two half tiles: 1 when union size x `share` > the tile's selected
/// entries (its queries share fewer than `share` selections per union
/// row). No `flags`: no decision.
struct TileSplit {
  mlir::Value flags;
  int64_t share = 0;
};

/// The body of the query-tile union kernel (GPUQueryTiles.cpp): per tile
/// (block x) and batch (block y) of a kUnionThreads-thread block, the
/// sorted union of the tile's selections (`keysOut`, T x K entries per
/// tile), each entry's mask of the queries that selected it (`masksOut`),
/// the union's size (`sizesOut`) and the split decision (`split`). With
/// `stream`, each query's ascending list is read once over all windows (a
/// tile with a list out of order falls back to the per-window rescan).
void buildTileUnion(mlir::OpBuilder &b, mlir::Location loc,
                    const SharedAllocator &shared, const TileUnionShape &s,
                    mlir::Value indices, mlir::Value counts,
                    mlir::Value keysOut, mlir::Value masksOut,
                    mlir::Value sizesOut, TileSplit split = {},
                    bool stream = true);

/// Threads and elements per thread of the value-gate kernel.
constexpr int64_t kValueGateThreads = 256;
constexpr int64_t kValueGateWidth = 8; // d_k is a multiple of 32

/// The body of the value-gate kernel: out = v * sigmoid(gv) in v's type,
/// kValueGateWidth contiguous elements per thread of a kValueGateThreads
/// block (block x); `n` elements in all (flat buffers).
void buildValueGate(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                    mlir::Value gv, mlir::Value out, int64_t n);

/// `<stem><n>` for the first n >= 0 that neither a symbol of @gsa_kernels
/// nor a pending gpu.launch (its `gsa.kernel` name) in `module` uses, alone
/// or as the prefix of a derived kernel (`<stem><n>_value_gate`, ...).
std::string freeKernelName(mlir::ModuleOp module, llvm::StringRef stem);

/// Fails, with a located error on each, where a gsa.gated_sparse_attention
/// is left (the GPU lowerings take its parts: run gsa-decompose first).
mlir::LogicalResult requireDecomposed(mlir::ModuleOp module);

/// Whether `indexer`'s only user is a selection, whose kernels it is fused
/// into (its scores recomputed there, never stored).
inline bool isFusedIntoSelection(IndexerOp indexer) {
  return indexer->hasOneUse() &&
         llvm::isa<AdaptiveTopKOp>(*indexer->getUsers().begin());
}

/// A gpu.launch of a (gx, gy, gz) grid of `threads`-thread blocks, named
/// `name` for gsa-outline-kernels, with `body` built at the start of its
/// region (then the terminator). gsa-tile's launches.
mlir::gpu::LaunchOp
buildNamedLaunch(mlir::OpBuilder &host, mlir::Location loc,
                 llvm::StringRef name, int64_t gx, int64_t gy, int64_t gz,
                 int64_t threads,
                 llvm::function_ref<void(mlir::OpBuilder &,
                                         const SharedAllocator &)>
                     body);

/// Whether gsa-tile runs `op` (a gsa.indexer that is not fused into a
/// selection) over query tiles of `warps` x 16 (query, head) rows:
/// static shapes, bf16/f16 qi and ki of one type, H_I a power of two up to
/// 16, d_I a multiple of 64 elements of 16 bits up to 256 (whole 128-byte
/// rows for the swizzled staging), f32 scores (TileIndexer.cpp).
bool indexerTileable(IndexerOp op);

/// gsa-tile's indexer: one gpu.launch of ((query tile, key span), batch)
/// blocks on gsa.tile ops, each block's key loop over chunks of `keyChunk`
/// consecutive keys of its span (`keySpan` keys rounded up to whole
/// chunks; 0: the whole row) up to the tile's last query, then -inf for
/// the span's keys past it (TileIndexer.cpp).
void tileIndexer(IndexerOp op, mlir::ModuleOp module, int64_t warps,
                 int64_t keyChunk, int64_t keySpan);

/// The module's gpu.module @gsa_kernels (created if missing), the module
/// marked as a GPU container.
mlir::gpu::GPUModuleOp kernelModule(mlir::ModuleOp module);

/// The attribute naming the kernel a gpu.launch becomes.
inline constexpr llvm::StringLiteral kKernelNameAttr = "gsa.kernel";
/// On a gpu.launch: the outlined kernel's register cap (ptxas .maxnreg).
inline constexpr llvm::StringLiteral kMaxRegistersAttr = "gsa.max_registers";
/// On a kernel: the positions of its arguments that are TMA tensor maps
/// (gsa.tensor_map), passed by value (gsa-grid-constant-params).
inline constexpr llvm::StringLiteral kTensorMapArgsAttr =
    "gsa.tensor_map_args";
/// On a gpu.module of one kernel (gsa-split-kernel-modules): the module it
/// came from, whose one binary gsa-serialize-kernels joins it into.
inline constexpr llvm::StringLiteral kJoinsAttr = "gsa.joins";
/// A CUtensorMap: 128 bytes, 64-byte aligned.
inline constexpr int64_t kTensorMapBytes = 128;
inline constexpr int64_t kTensorMapAlign = 64;

} // namespace gsa::detail

#endif // GSA_LIB_CONVERSION_GPUKERNELS_H
