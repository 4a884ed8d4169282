//===- MapTensorCores.cpp - gsa-map-tensor-cores: tiles onto the lanes ----===//
//
// The third stage of the GPU lowering (GSAPasses.td has the contract). Every
// tile value of a launch is replaced by what each lane holds of it:
//
//   [M, N] f32 tiles (scores, probabilities, accumulators): per 8-column
//     n-tile nt, four values at nt * 4 + 2 r + x: row 16 w + l / 4 + 8 r,
//     column nt * 8 + 2 (l % 4) + x (warp w, lane l) - the m16n8k16
//     accumulator layout, which is also, two n-tiles at a time, the A
//     operand layout of the next product (so P never leaves registers);
//   [M] f32 row values (max, sum, rescale): the lane's two rows; a row sum
//     stays a per-lane partial (the quad's four lanes add up to it) until
//     the store, which saves two shuffles per row and chunk;
//   the query block: the A fragments of each 16-column k-step;
//   shared tiles: nothing (their elements are loaded where used, B
//     fragments by ldmatrix);
//   [T, N] f32 query tiles (the indexer's head sums): the [M, N] layout of
//     the rows they sum, each query's value in every lane of its heads
//     (the lane whose row is head 0 stores it).
//
// Each (query, head) row lives in one lane quad, so row reductions are two
// xor-shuffles and no shared memory or barrier is needed.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Matchers.h"

#include "GPUEmitter.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSAMAPTENSORCORES
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

/// What one lane holds of a tile value (file comment).
struct Fragment {
  enum Kind { QueryBlock, Tile, Rows, Shared, GlobalWords, QueryTile } kind =
      Tile;
  SmallVector<Value> values;
  /// Rows: per-lane partial sums of the quad.
  bool partial = false;
  /// Rows / Tile: a splat of 0 (valid as partial sums too).
  bool zero = false;
  /// Tile: the tile is `values` times this positive factor. Scores without a
  /// score_mod leave their scale to the online softmax, which folds it into
  /// the one fma in front of each exp2 (no other op reads such a tile).
  float scale = 1.0f;
  /// Shared: the ring, its slot, whether the pieces are swizzled.
  /// QueryBlock with shared-queries (stageQueries): its buffer and, as the
  /// slot, the element offset of this warp's warpgroup block in it.
  Value ring, stage;
  bool swizzled = false;
  /// GlobalWords (an unstaged gsa.tile.gather_words): its list, offset and
  /// count (ring / stage / the count reused: source, offset).
  Value count;
  /// QueryTile: the heads each query's value was summed over.
  int64_t heads = 0;
};

class LaunchMapper {
public:
  LaunchMapper(gpu::LaunchOp launch, int64_t warps, bool wgmma,
               bool sharedQueries)
      : launch(launch), warps(warps), wgmma(wgmma),
        sharedQueries(wgmma && sharedQueries) {}
  LogicalResult run();

private:
  LogicalResult mapBlock(Block &block);
  LogicalResult mapOp(Operation *op);
  LogicalResult mapLoop(scf::ForOp loop);

  LogicalResult loadQueries(TileLoadQueriesOp op);
  LogicalResult dot(TileDotOp op);
  LogicalResult scores(TileScoresOp op);
  LogicalResult softmax(TileOnlineSoftmaxOp op);
  LogicalResult rescale(TileRescaleOp op);
  LogicalResult storeOutput(TileStoreOutputOp op);
  LogicalResult indexerHeads(TileIndexerHeadsOp op);
  LogicalResult indexerScores(TileIndexerScoresOp op);
  LogicalResult storeScores(TileStoreScoresOp op);

  /// The fragment of a tile operand of `user`, or a located error.
  FailureOr<Fragment *> fragmentOf(Operation *user, Value v,
                                   Fragment::Kind kind, StringRef what);
  /// Whether `op` runs as wgmma: asked for, whole warpgroups of 4 warps, a
  /// swizzled shared rhs (the descriptor layout) and 16-bit operands (dot
  /// has checked the lhs already).
  bool useWarpgroupMma(TileDotOp op);
  /// The product of `op` on wgmma.mma_async (see dot).
  SmallVector<Value> warpgroupDot(OpBuilder &b, Location loc, StringRef kind,
                                  Fragment &lhs, Type elem, Value slotAddress,
                                  int64_t rhsRows, int64_t N, int64_t K,
                                  bool transposed, ArrayRef<Value> acc);
  /// gsa.tile.load_queries with shared-queries: the loaded fragments also
  /// stored to a new shared buffer (f.ring), where they fit.
  void stageQueries(OpBuilder &b, Location loc, Fragment &f, Type elem,
                    int64_t D);
  /// The four A-operand registers of k-step `ks` of `lhs`.
  SmallVector<Value> aOperand(OpBuilder &b, Fragment &lhs, Type elem,
                              int64_t ks);
  /// A row value as full sums (reducing partial sums over the quad).
  SmallVector<Value> fullRows(OpBuilder &b, Location loc, const Fragment &f);
  /// A row value as partial sums.
  SmallVector<Value> partialRows(OpBuilder &b, Location loc, const Fragment &f);

  /// The rows this lane holds, for a tile at (batch, first query, KV head).
  struct Row {
    Value query, clamped, valid, head, queryBit;
  };
  std::array<Row, 2> rowsOf(OpBuilder &b, Location loc, Value batch,
                            Value firstQuery, Value kvHead, int64_t group,
                            int64_t seqLen);

  gpu::LaunchOp launch;
  int64_t warps;
  bool wgmma;
  /// Whether the query block also goes to shared memory for wgmma's A
  /// operand (the pass's shared-queries).
  bool sharedQueries;
  /// Whether some product of the launch runs on wgmma (then the staged
  /// copies need a proxy fence before the wgmma reads them).
  bool usedWgmma = false;
  DenseMap<Value, Fragment> fragments;
  SmallVector<Operation *> mapped;
  /// The yields of the loops mapLoop is flattening (it rewrites them).
  llvm::SmallPtrSet<Operation *, 4> carryingYields;
  Value lane, warp, g, col, laneRow, laneMatrix, zeroF;
};

/// The row mapping gives each warp 16 / group whole queries.
LogicalResult checkGroup(Operation *op, int64_t group) {
  if (kRowsPerWarp % group != 0)
    return op->emitOpError(fmt::format(
        "gsa-map-tensor-cores: a warp's 16 rows hold whole queries only for "
        "a group dividing 16, but the group is {}",
        group));
  return success();
}

std::array<LaunchMapper::Row, 2>
LaunchMapper::rowsOf(OpBuilder &b, Location loc, Value batch, Value firstQuery,
                     Value kvHead, int64_t group, int64_t seqLen) {
  Emitter e(b, loc);
  std::array<Row, 2> rows;
  for (int64_t r = 0; r < 2; ++r) {
    // Row 16 w + g + 8 r of the tile.
    Value m = e.add(g, e.index(8 * r));
    Value queryInTile =
        e.add(e.mul(warp, e.index(kRowsPerWarp / group)),
              arith::DivUIOp::create(b, loc, m, e.index(group)));
    Row &row = rows[r];
    row.query = e.add(firstQuery, queryInTile);
    row.valid = e.cmpi(arith::CmpIPredicate::ult, row.query, e.index(seqLen));
    row.clamped = e.minui(row.query, e.index(seqLen - 1));
    row.head = e.add(e.mul(kvHead, e.index(group)),
                     arith::RemUIOp::create(b, loc, m, e.index(group)));
    row.queryBit = arith::ShLIOp::create(b, loc, e.i32(1),
                                         e.indexToI32(queryInTile));
  }
  return rows;
}

/// The error for a scores tile (Fragment::scale != 1) where something other
/// than gsa.tile.online_softmax would read it.
LogicalResult refuseScoresTile(Operation *op, StringRef what) {
  return op->emitOpError(fmt::format(
      "gsa-map-tensor-cores: {} is a scores tile, which only "
      "gsa.tile.online_softmax reads",
      what.str()));
}

FailureOr<Fragment *> LaunchMapper::fragmentOf(Operation *user, Value v,
                                               Fragment::Kind kind,
                                               StringRef what) {
  auto it = fragments.find(v);
  if (it != fragments.end() && it->second.kind == Fragment::Tile &&
      it->second.scale != 1.0f && !isa<TileOnlineSoftmaxOp>(user))
    return refuseScoresTile(user, what);
  if (it == fragments.end() || it->second.kind != kind) {
    static const char *names[] = {"the query block", "a register tile",
                                  "a row value", "a shared-memory tile",
                                  "a list of words", "a query tile"};
    return user->emitOpError(fmt::format(
        "gsa-map-tensor-cores: {} must be {} here{}", what.str(),
        names[kind],
        kind == Fragment::Shared ? " (run gsa-stage-shared first)" : ""));
  }
  return &it->second;
}

SmallVector<Value> LaunchMapper::aOperand(OpBuilder &b, Fragment &lhs,
                                          Type elem, int64_t ks) {
  Location loc = launch.getLoc();
  if (lhs.kind == Fragment::QueryBlock)
    return SmallVector<Value>(ArrayRef<Value>(lhs.values).slice(ks * 4, 4));
  // A register tile: n-tiles 2 ks and 2 ks + 1 are k-step ks's A layout.
  auto at = [&](int64_t nt, int64_t r, int64_t x) {
    return lhs.values[nt * 4 + 2 * r + x];
  };
  return {packPair(b, loc, elem, at(2 * ks, 0, 0), at(2 * ks, 0, 1)),
          packPair(b, loc, elem, at(2 * ks, 1, 0), at(2 * ks, 1, 1)),
          packPair(b, loc, elem, at(2 * ks + 1, 0, 0), at(2 * ks + 1, 0, 1)),
          packPair(b, loc, elem, at(2 * ks + 1, 1, 0), at(2 * ks + 1, 1, 1))};
}

SmallVector<Value> LaunchMapper::fullRows(OpBuilder &b, Location loc,
                                          const Fragment &f) {
  SmallVector<Value> out(f.values);
  if (!f.partial)
    return out;
  Emitter e(b, loc);
  for (Value &x : out)
    for (int32_t off : {1, 2})
      x = e.add(x, shuffleXor(b, loc, x, off));
  return out;
}

SmallVector<Value> LaunchMapper::partialRows(OpBuilder &b, Location loc,
                                             const Fragment &f) {
  SmallVector<Value> out(f.values);
  if (f.partial || f.zero)
    return out;
  // A full value counts once per quad: in its first lane.
  Emitter e(b, loc);
  Value first = e.cmpi(arith::CmpIPredicate::eq,
                       arith::AndIOp::create(b, loc, lane, e.index(3)),
                       e.index(0));
  for (Value &x : out)
    x = e.select(first, x, e.f32(0.0));
  return out;
}

LogicalResult LaunchMapper::loadQueries(TileLoadQueriesOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  auto qType = op.getQ().getType();
  auto tile = op.getTile().getType();
  int64_t L = qType.getDimSize(1), NH = qType.getDimSize(2),
          D = qType.getDimSize(3);
  if (tile.getDimSize(0) != warps * kRowsPerWarp || D % 16 != 0)
    return op.emitOpError(fmt::format(
        "gsa-map-tensor-cores: a tile of {} warps has {} rows and d_k a "
        "multiple of 16, but this one is {}x{}",
        warps, warps * kRowsPerWarp, tile.getDimSize(0), D));
  if (failed(checkGroup(op, op.getGroup())))
    return failure();
  Value q = collapse(b, loc, op.getQ());
  auto rows = rowsOf(b, loc, op.getBatch(), op.getFirstQuery(), op.getKvHead(),
                     op.getGroup(), L);
  Value base[2];
  for (int64_t r = 0; r < 2; ++r)
    base[r] = e.mul(e.add(e.mul(e.add(e.mul(op.getBatch(), e.index(L)),
                                      rows[r].clamped),
                                e.index(NH)),
                          rows[r].head),
                    e.index(D));
  Fragment f;
  f.kind = Fragment::QueryBlock;
  for (int64_t ks = 0; ks < D / 16; ++ks) {
    Value at = e.add(col, e.index(ks * 16));
    Value hi = e.add(at, e.index(8));
    f.values.append({loadPair(b, loc, q, e.add(base[0], at)),
                     loadPair(b, loc, q, e.add(base[1], at)),
                     loadPair(b, loc, q, e.add(base[0], hi)),
                     loadPair(b, loc, q, e.add(base[1], hi))});
  }
  if (sharedQueries)
    stageQueries(b, loc, f, qType.getElementType(), D);
  fragments[op.getTile()] = std::move(f);
  return success();
}

void LaunchMapper::stageQueries(OpBuilder &b, Location loc, Fragment &f,
                                Type elem, int64_t D) {
  // Each warpgroup's 64 rows x D in the 128-byte swizzle layout of the
  // staged slots (swizzledPieceOffset: 128-byte column blocks of 64 rows,
  // pieces permuted by row % 8), so that wgmma reads them through the same
  // kind of descriptor as a K slot. Only whole warpgroups, whole column
  // blocks and what the static shared memory still holds (the rings may
  // already use it; gsa-stage-shared's limit).
  int64_t elemBytes = elem.getIntOrFloatBitWidth() / 8;
  int64_t bytes = warps * kRowsPerWarp * D * elemBytes;
  // (Each attribution counted with up to 1 KiB of padding in front of it:
  // gsa-outline-kernels aligns the rank-3 ones, this buffer among them, to
  // 1024 bytes.)
  int64_t staticBytes = 1024, dynamicBytes = 0;
  for (BlockArgument buffer : launch.getWorkgroupAttributions()) {
    auto type = cast<MemRefType>(buffer.getType());
    staticBytes += bytesOf(type) + (type.getRank() == 3 ? 1024 : 0);
  }
  if (Value size = launch.getDynamicSharedMemorySize()) {
    auto c = size.getDefiningOp<arith::ConstantIntOp>();
    if (!c)
      return;
    dynamicBytes = c.value();
  }
  if (warps % 4 != 0 || (D * elemBytes) % 128 != 0 ||
      staticBytes + bytes > kStaticSharedBytes ||
      staticBytes + bytes + dynamicBytes > kBlockSharedBytes)
    return;
  Emitter e(b, loc);
  auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                              gpu::AddressSpace::Workgroup);
  // Rank 3, so that gsa-outline-kernels aligns it to 1024 bytes as it does
  // the rows rings (the swizzle atoms).
  f.ring = launch.addWorkgroupAttribution(
      MemRefType::get({warps / 4, kRowsPerWarp * 4, D}, elem,
                      MemRefLayoutAttrInterface(), workgroup),
      loc);
  f.swizzled = true;
  int64_t perPiece = 16 / elemBytes;
  f.stage = e.mul(arith::DivUIOp::create(b, loc, warp, e.index(4)),
                  e.index(4 * kRowsPerWarp * D));
  Value warpRow = e.mul(arith::RemUIOp::create(b, loc, warp, e.index(4)),
                        e.index(kRowsPerWarp));
  // f.values per k-step: (row g, k 0-7), (g + 8, 0-7), (g, 8-15),
  // (g + 8, 8-15), each a pair at column `col` of its 8.
  for (int64_t ks = 0; ks < D / 16; ++ks)
    for (int64_t i = 0; i < 4; ++i) {
      Value row = e.add(warpRow, e.add(g, e.index(8 * (i % 2))));
      Value piece = e.index(2 * ks + i / 2);
      Value offset = e.add(
          f.stage,
          e.add(swizzledPieceOffset(e, row, piece, 4 * kRowsPerWarp, perPiece),
                col));
      inlinePtx(b, loc, "st.shared.b32 [$0], $1;",
                {sharedAddress(e, f.ring, offset), f.values[ks * 4 + i]});
    }
  // The stores (generic proxy) before wgmma's reads (async proxy), for
  // every warp of the group.
  asyncProxyFence(b, loc);
  gpu::BarrierOp::create(b, loc);
}

bool LaunchMapper::useWarpgroupMma(TileDotOp op) {
  if (!wgmma || warps % 4 != 0)
    return false;
  auto it = fragments.find(op.getRhs());
  if (it == fragments.end() || !it->second.swizzled)
    return false;
  auto rhsType = op.getRhs().getType();
  int64_t N = op.getResult().getType().getDimSize(1);
  return rhsType.getElementTypeBitWidth() == 16 &&
         rhsType.getDimSize(0) % 8 == 0 && N % 8 == 0 && N <= 256;
}

SmallVector<Value> LaunchMapper::warpgroupDot(OpBuilder &b, Location loc,
                                              StringRef kind, Fragment &lhs,
                                              Type elem, Value slotAddress,
                                              int64_t rhsRows, int64_t N,
                                              int64_t K, bool transposed,
                                              ArrayRef<Value> acc) {
  Emitter e(b, loc);
  usedWgmma = true;
  // The 4 warps' 16-row slices of the m64 operand are the warps' rows of
  // the tile, and a warp's A registers and accumulators have the mma.sync
  // m16n8k16 layouts: the fragments stay as they are. B comes from the
  // swizzled slot through descriptors (1024-byte atoms of 8 rows x 128
  // bytes; 128-byte column blocks `rhsRows` x 128 bytes apart):
  //   scores (Q K^T): K rows are the N keys, d_k contiguous ("K-major"):
  //     k-step ks starts (ks % 4) x 32 bytes into column block ks / 4; the
  //     8-key groups are 1024 bytes apart (stride offset);
  //   P V: V rows are the K keys, d_k (N) contiguous ("MN-major", B
  //     transposed): k-step kk starts at row 16 kk; the 64-column blocks of
  //     N are rhsRows x 128 bytes apart (leading offset), the 8-key groups
  //     1024 bytes (stride offset).
  // With the query block in shared memory (stageQueries), A is read
  // through descriptors too: the warpgroup's 64 rows K-major in the same
  // swizzle layout as a K slot (k-step ks at (ks % 4) x 32 bytes into
  // column block ks / 4, blocks 64 x 128 bytes apart).
  bool aShared = lhs.kind == Fragment::QueryBlock && lhs.ring;
  int64_t blockBytes = rhsRows * 128;
  int64_t steps = K / 16, accN = N / 2;
  int64_t perStep = aShared ? 2 : 5;
  SmallVector<Value> operands;
  std::string code = "{\n.reg .pred p;\nsetp.ne.b32 p, $" +
                     std::to_string(accN + steps * perStep) +
                     ", 0;\nwgmma.fence.sync.aligned;\n";
  Value aFirst =
      aShared ? matrixDescriptor(e, sharedAddress(e, lhs.ring, lhs.stage), 16,
                                 1024)
              : Value();
  // The k-steps' descriptors: the first one's plus each offset
  // (offsetDescriptor).
  Value firstDesc =
      transposed ? matrixDescriptor(e, slotAddress, 16, 1024)
                 : matrixDescriptor(e, slotAddress, blockBytes, 1024);
  for (int64_t ks = 0; ks < steps; ++ks) {
    int64_t offset = transposed ? (ks / 4) * blockBytes + (ks % 4) * 32
                                : ks * 16 * 128;
    Value desc = offsetDescriptor(e, firstDesc, offset);
    int64_t first = accN + ks * perStep;
    if (aShared) {
      operands.push_back(offsetDescriptor(
          e, aFirst, (ks / 4) * 4 * kRowsPerWarp * 128 + (ks % 4) * 32));
      operands.push_back(desc);
      code += wgmmaSharedLine(N, kind, accN, first, first + 1, "p",
                              transposed ? 0 : 1);
      continue;
    }
    llvm::append_range(operands, aOperand(b, lhs, elem, ks));
    operands.push_back(desc);
    code += wgmmaLine(N, kind, accN, first, "p", transposed ? 0 : 1);
  }
  code += "wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned "
          "0;\n}";
  operands.push_back(e.i32(1)); // scale-d: accumulate
  return warpgroupProductBlock(b, loc, code, operands, accN, steps,
                               /*extraI32=*/1, acc, aShared);
}

LogicalResult LaunchMapper::dot(TileDotOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  auto lhsIt = fragments.find(op.getLhs());
  if (lhsIt == fragments.end() || (lhsIt->second.kind != Fragment::QueryBlock &&
                                   lhsIt->second.kind != Fragment::Tile))
    return op.emitOpError("gsa-map-tensor-cores: lhs must be the query block "
                          "or a register tile");
  Fragment &lhs = lhsIt->second;
  FailureOr<Fragment *> rhs = fragmentOf(op, op.getRhs(), Fragment::Shared, "rhs");
  if (failed(rhs))
    return failure();
  auto rhsType = op.getRhs().getType();
  Type elem = rhsType.getElementType();
  StringRef kind = elem.isBF16() ? "bf16" : "f16";
  auto result = op.getResult().getType();
  int64_t M = result.getDimSize(0), N = result.getDimSize(1);
  int64_t K = op.getLhs().getType().getDimSize(1);
  int64_t rowLen = rhsType.getDimSize(1); // elements per staged row
  int64_t perPiece = 128 / rhsType.getElementTypeBitWidth();
  // Transposed (scores): k-steps in pairs per ldmatrix.x4 over the rows;
  // otherwise (P V) n-tiles in pairs.
  bool transposed = op.getTransposeRhs();
  bool fits = transposed ? (N % 8 == 0 && K % 32 == 0)
                         : (N % 16 == 0 && K % 16 == 0);
  if (M != warps * kRowsPerWarp || !fits || rowLen % perPiece != 0)
    return op.emitOpError(fmt::format(
        "gsa-map-tensor-cores: needs {} rows (16 per warp), {}, but the "
        "product is {}x{}x{}",
        warps * kRowsPerWarp,
        transposed ? "N a multiple of 8 and K of 32"
                   : "N and K multiples of 16",
        M, N, K));
  if (lhs.kind == Fragment::Tile &&
      op.getLhs().getType().getElementType() != elem)
    return op.emitOpError("gsa-map-tensor-cores: lhs and rhs differ in type");

  SmallVector<Value> acc;
  if (op.getAcc()) {
    FailureOr<Fragment *> a = fragmentOf(op, op.getAcc(), Fragment::Tile, "acc");
    if (failed(a))
      return failure();
    acc = (*a)->values;
  } else {
    acc.assign(N / 8 * 4, zeroF);
  }
  int64_t rhsRows = rhsType.getDimSize(0);
  Value stageBase = e.mul((*rhs)->stage, e.index(rhsType.getNumElements()));
  auto address = [&](Value row, Value piece) {
    Value offset = (*rhs)->swizzled
                       ? swizzledPieceOffset(e, row, piece, rhsRows, perPiece)
                       : e.add(e.mul(row, e.index(rowLen)),
                               e.mul(piece, e.index(perPiece)));
    return sharedAddress(e, (*rhs)->ring, e.add(stageBase, offset));
  };
  if (useWarpgroupMma(op)) {
    acc = warpgroupDot(b, loc, kind, lhs, elem, sharedAddress(e, (*rhs)->ring, stageBase),
                       rhsRows, N, K, transposed, acc);
  } else if (op.getTransposeRhs()) {
    // rhs rows are the N output columns: n-tile nt reads rows nt * 8 ..,
    // two k-steps per ldmatrix.x4.
    for (int64_t nt = 0; nt < N / 8; ++nt) {
      SmallVector<Value> c(ArrayRef<Value>(acc).slice(nt * 4, 4));
      Value row = e.add(e.index(nt * 8), laneRow);
      for (int64_t ks = 0; ks < K / 16; ks += 2) {
        Value piece = e.add(e.index(ks * 2), laneMatrix);
        SmallVector<Value> m =
            loadMatrices(b, loc, address(row, piece), false);
        c = mmaSync(b, loc, kind, aOperand(b, lhs, elem, ks), {m[0], m[1]}, c);
        c = mmaSync(b, loc, kind, aOperand(b, lhs, elem, ks + 1), {m[2], m[3]},
                    c);
      }
      std::copy(c.begin(), c.end(), acc.begin() + nt * 4);
    }
  } else {
    // rhs rows are the K reduction steps: k-step kk reads rows kk * 16 ..
    // transposed, two n-tiles per ldmatrix.x4.
    Value rowInStep = e.add(
        laneRow, e.mul(arith::AndIOp::create(b, loc, laneMatrix, e.index(1)),
                       e.index(8)));
    Value half = arith::ShRUIOp::create(b, loc, laneMatrix, e.index(1));
    for (int64_t kk = 0; kk < K / 16; ++kk) {
      SmallVector<Value> a = aOperand(b, lhs, elem, kk);
      Value row = e.add(e.index(kk * 16), rowInStep);
      for (int64_t nt = 0; nt < N / 8; nt += 2) {
        Value piece = e.add(e.index(nt), half);
        SmallVector<Value> m =
            loadMatrices(b, loc, address(row, piece), true);
        for (int64_t h = 0; h < 2; ++h) {
          SmallVector<Value> c(ArrayRef<Value>(acc).slice((nt + h) * 4, 4));
          c = mmaSync(b, loc, kind, a, {m[2 * h], m[2 * h + 1]}, c);
          std::copy(c.begin(), c.end(), acc.begin() + (nt + h) * 4);
        }
      }
    }
  }
  Fragment f;
  f.values = std::move(acc);
  fragments[op.getResult()] = std::move(f);
  return success();
}

LogicalResult LaunchMapper::scores(TileScoresOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  FailureOr<Fragment *> acc = fragmentOf(op, op.getAcc(), Fragment::Tile, "acc");
  // Per-key words: staged (Shared) or read from their list (GlobalWords).
  auto wordsOf = [&](Value v, StringRef what) -> FailureOr<Fragment *> {
    auto it = fragments.find(v);
    if (it != fragments.end() && it->second.kind == Fragment::GlobalWords)
      return &it->second;
    return fragmentOf(op, v, Fragment::Shared, what);
  };
  FailureOr<Fragment *> members = wordsOf(op.getMembers(), "members");
  if (failed(acc) || failed(members))
    return failure();
  Fragment *positions = nullptr;
  if (op.getPositions()) {
    FailureOr<Fragment *> p = wordsOf(op.getPositions(), "positions");
    if (failed(p))
      return failure();
    positions = *p;
  }
  auto wordAt = [&](Fragment *f, Value key) -> Value {
    if (f->kind == Fragment::Shared)
      return e.load(f->ring, {f->stage, key});
    Value inRange = e.cmpi(arith::CmpIPredicate::slt, key, f->count);
    Value word = e.load(f->ring, {e.add(f->stage, e.select(inRange, key,
                                                            e.index(0)))});
    return e.select(inRange, word, e.i32(0));
  };
  if (failed(checkGroup(op, op.getGroup())))
    return failure();
  int64_t N = op.getAcc().getType().getDimSize(1);
  // (Rows past the sequence get their unclamped query: they are dropped.)
  auto rows = rowsOf(b, loc, op.getBatch(), op.getFirstQuery(), op.getKvHead(),
                     op.getGroup(), std::numeric_limits<int32_t>::max());
  Value negInf = e.f32(-kInf);
  float scale = op.getScale().convertToFloat();
  Fragment f;
  // Without a score_mod the scale stays out of the values: the softmax
  // folds it into its fma (a positive scale keeps the row maxima).
  if (!positions && scale > 0.0f)
    f.scale = scale;
  f.values.assign(N / 8 * 4, Value());
  for (int64_t nt = 0; nt < N / 8; ++nt)
    for (int64_t x = 0; x < 2; ++x) {
      Value key = e.add(e.index(nt * 8 + x), col);
      Value mask = wordAt(*members, key);
      Value pos = positions ? e.i32ToIndex(wordAt(positions, key)) : Value();
      for (int64_t r = 0; r < 2; ++r) {
        Value sc = (*acc)->values[nt * 4 + 2 * r + x];
        if (f.scale == 1.0f)
          sc = e.mul(sc, e.f32(scale));
        if (positions)
          sc = e.inlineRegion(op.getScoreMod(), {sc, op.getBatch(),
                                                 rows[r].head, rows[r].query,
                                                 pos});
        Value member = e.cmpi(arith::CmpIPredicate::ne,
                              e.andi(mask, rows[r].queryBit), e.i32(0));
        f.values[nt * 4 + 2 * r + x] = e.select(member, sc, negInf);
      }
    }
  fragments[op.getResult()] = std::move(f);
  return success();
}

LogicalResult LaunchMapper::softmax(TileOnlineSoftmaxOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  FailureOr<Fragment *> scores =
      fragmentOf(op, op.getScores(), Fragment::Tile, "scores");
  FailureOr<Fragment *> max = fragmentOf(op, op.getMax(), Fragment::Rows, "max");
  FailureOr<Fragment *> sum = fragmentOf(op, op.getSum(), Fragment::Rows, "sum");
  if (failed(scores) || failed(max) || failed(sum))
    return failure();
  int64_t NT = op.getScores().getType().getDimSize(1) / 8;
  Value negInf = e.f32(-kInf), log2e = e.f32(kLog2E);
  SmallVector<Value> m = fullRows(b, loc, **max);
  SmallVector<Value> l = partialRows(b, loc, **sum);
  Fragment probs, newMax, newSum, alphas;
  probs.values.assign(NT * 4, Value());
  for (Fragment *f : {&newMax, &newSum, &alphas})
    f->kind = Fragment::Rows;
  newSum.partial = true;
  // The tile holds the scores over `scale` (1 unless scores left it to
  // us). The maxima stay in score units (the lse and the rescale use them);
  // each probability is one fma and one exp2:
  //   p = 2^(x scale log2e - m log2e),
  // with m log2e taken as 0 for a row without a member so far (m = -inf),
  // where every x is -inf and p = 2^-inf = 0; a masked x is -inf, so p = 0
  // with no select.
  float scale = (*scores)->scale;
  Value scaleLog2e = e.f32(float(scale * kLog2E));
  for (int64_t r = 0; r < 2; ++r) {
    auto at = [&](int64_t nt, int64_t x) -> Value & {
      return (*scores)->values[nt * 4 + 2 * r + x];
    };
    // A chain, not a tree: the tree's extra live values cost a register
    // (169, so 2 CTAs per SM instead of 3 at d_k 128) and the chain was no
    // slower (perf-log, 2026-12-06 third session).
    Value mx = at(0, 0);
    for (int64_t nt = 0; nt < NT; ++nt)
      for (int64_t x = 0; x < 2; ++x)
        if (nt || x)
          mx = arith::MaximumFOp::create(b, loc, mx, at(nt, x));
    for (int32_t off : {1, 2})
      mx = arith::MaximumFOp::create(b, loc, mx, shuffleXor(b, loc, mx, off));
    if (scale != 1.0f)
      mx = e.mul(mx, e.f32(scale));
    Value mNew = arith::MaximumFOp::create(b, loc, m[r], mx);
    Value empty = e.cmpf(arith::CmpFPredicate::OEQ, mNew, negInf);
    Value alpha = e.select(empty, e.f32(1.0),
                           exp2Approx(b, loc, e.mul(e.sub(m[r], mNew), log2e)));
    Value negMaxLog2e =
        e.select(empty, e.f32(0.0), e.mul(mNew, e.f32(-kLog2E)));
    Value lNew = e.mul(l[r], alpha);
    for (int64_t nt = 0; nt < NT; ++nt)
      for (int64_t x = 0; x < 2; ++x) {
        Value p = exp2Approx(
            b, loc, fusedMulAdd(e, at(nt, x), scaleLog2e, negMaxLog2e));
        probs.values[nt * 4 + 2 * r + x] = p;
        lNew = e.add(lNew, p);
      }
    newMax.values.push_back(mNew);
    newSum.values.push_back(lNew);
    alphas.values.push_back(alpha);
  }
  fragments[op.getProbs()] = std::move(probs);
  fragments[op.getNewMax()] = std::move(newMax);
  fragments[op.getNewSum()] = std::move(newSum);
  fragments[op.getRescale()] = std::move(alphas);
  return success();
}

LogicalResult LaunchMapper::rescale(TileRescaleOp op) {
  OpBuilder b(op);
  Emitter e(b, op.getLoc());
  FailureOr<Fragment *> acc = fragmentOf(op, op.getAcc(), Fragment::Tile, "acc");
  FailureOr<Fragment *> factor =
      fragmentOf(op, op.getFactor(), Fragment::Rows, "factor");
  if (failed(acc) || failed(factor))
    return failure();
  SmallVector<Value> rowFactor = fullRows(b, op.getLoc(), **factor);
  Fragment f;
  for (auto [i, x] : llvm::enumerate((*acc)->values))
    f.values.push_back(e.mul(x, rowFactor[(i % 4) / 2]));
  fragments[op.getResult()] = std::move(f);
  return success();
}

LogicalResult LaunchMapper::storeOutput(TileStoreOutputOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  FailureOr<Fragment *> acc = fragmentOf(op, op.getAcc(), Fragment::Tile, "acc");
  FailureOr<Fragment *> max = fragmentOf(op, op.getMax(), Fragment::Rows, "max");
  FailureOr<Fragment *> sum = fragmentOf(op, op.getSum(), Fragment::Rows, "sum");
  if (failed(acc) || failed(max) || failed(sum))
    return failure();
  if (failed(checkGroup(op, op.getGroup())))
    return failure();
  auto outType = op.getOut().getType();
  int64_t L = outType.getDimSize(1), NH = outType.getDimSize(2),
          D = outType.getDimSize(3);
  Value out = collapse(b, loc, op.getOut());
  Value lse = collapse(b, loc, op.getLse());
  Value gate = op.getGate() ? collapse(b, loc, op.getGate()) : Value();
  auto rows = rowsOf(b, loc, op.getBatch(), op.getFirstQuery(), op.getKvHead(),
                     op.getGroup(), L);
  SmallVector<Value> m = fullRows(b, loc, **max);
  SmallVector<Value> l = fullRows(b, loc, **sum);
  Value first = e.cmpi(arith::CmpIPredicate::eq,
                       arith::AndIOp::create(b, loc, lane, e.index(3)),
                       e.index(0));
  for (int64_t r = 0; r < 2; ++r) {
    Value empty = e.cmpf(arith::CmpFPredicate::OEQ, l[r], e.f32(0.0));
    Value invL = e.select(empty, e.f32(0.0), e.div(e.f32(1.0), l[r]));
    Value rowAt = e.add(e.mul(e.add(e.mul(op.getBatch(), e.index(L)),
                                    rows[r].clamped),
                              e.index(NH)),
                        rows[r].head);
    Value base = e.mul(rowAt, e.index(D));
    e.ifThen(rows[r].valid, [&]() {
      for (int64_t dt = 0; dt < D / 8; ++dt) {
        Value at = e.add(base, e.add(col, e.index(dt * 8)));
        SmallVector<Value> values = {
            e.mul((*acc)->values[dt * 4 + 2 * r], invL),
            e.mul((*acc)->values[dt * 4 + 2 * r + 1], invL)};
        if (gate) {
          SmallVector<Value> gates = loadLaneRow(b, loc, gate, at, 2);
          for (int64_t x = 0; x < 2; ++x)
            values[x] = e.mul(values[x], e.sigmoid(gates[x]));
        }
        storeLaneRow(b, loc, values, out, at);
      }
      e.ifThen(first, [&]() {
        Value log2L = ptxUnary(b, loc, "lg2.approx.ftz.f32", l[r]);
        Value logSum = e.add(m[r], e.mul(log2L, e.f32(kLn2)));
        e.store(e.select(empty, e.f32(-kInf), logSum), lse, {rowAt});
      });
    });
  }
  return success();
}

LogicalResult LaunchMapper::indexerHeads(TileIndexerHeadsOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  int64_t heads = op.getHeads();
  if (op.getWeight().getType().getDimSize(0) != warps * kRowsPerWarp)
    return op.emitOpError(fmt::format(
        "gsa-map-tensor-cores: a tile of {} warps has {} rows, but this one "
        "has {}",
        warps, warps * kRowsPerWarp, op.getWeight().getType().getDimSize(0)));
  if (failed(checkGroup(op, heads)))
    return failure();
  Value weights = op.getWeights() ? collapse(b, loc, op.getWeights()) : Value();
  int64_t L = op.getWeights()
                  ? cast<MemRefType>(op.getWeights().getType()).getDimSize(1)
                  : std::numeric_limits<int32_t>::max();
  auto rows = rowsOf(b, loc, op.getBatch(), op.getFirstQuery(), e.index(0),
                     heads, L);
  Fragment weight, bias;
  weight.kind = bias.kind = Fragment::Rows;
  for (int64_t r = 0; r < 2; ++r) {
    Value w = e.f32(1.0);
    if (weights) {
      Value at = e.add(
          e.mul(e.add(e.mul(op.getBatch(), e.index(L)), rows[r].clamped),
                e.index(heads)),
          rows[r].head);
      w = e.inlineRegion(op.getWeighting(), {e.loadF32(weights, {at}),
                                             rows[r].head});
    }
    weight.values.push_back(w);
    bias.values.push_back(op.getBiasList()
                              ? e.loadF32(op.getBiasList(), {rows[r].head})
                              : e.f32(0.0));
  }
  fragments[op.getWeight()] = std::move(weight);
  fragments[op.getBias()] = std::move(bias);
  return success();
}

LogicalResult LaunchMapper::indexerScores(TileIndexerScoresOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  FailureOr<Fragment *> acc = fragmentOf(op, op.getAcc(), Fragment::Tile, "acc");
  FailureOr<Fragment *> weight =
      fragmentOf(op, op.getWeight(), Fragment::Rows, "weights");
  FailureOr<Fragment *> bias = fragmentOf(op, op.getBias(), Fragment::Rows, "bias");
  if (failed(acc) || failed(weight) || failed(bias))
    return failure();
  int64_t heads = op.getHeads();
  if (failed(checkGroup(op, heads)))
    return failure();
  int64_t N = op.getAcc().getType().getDimSize(1);
  // (Rows past the sequence get their unclamped query: nothing stores them.)
  auto rows = rowsOf(b, loc, e.index(0), op.getFirstQuery(), e.index(0), heads,
                     std::numeric_limits<int32_t>::max());
  SmallVector<Value> w = fullRows(b, loc, **weight);
  SmallVector<Value> bs = fullRows(b, loc, **bias);
  Value scale = e.f32(op.getScale().convertToFloat());
  Value negInf = e.f32(-kInf);
  Fragment f;
  f.kind = Fragment::QueryTile;
  f.heads = heads;
  f.values.assign(N / 8 * 4, Value());
  for (int64_t nt = 0; nt < N / 8; ++nt)
    for (int64_t x = 0; x < 2; ++x) {
      Value key = e.add(op.getFirstKey(), e.add(e.index(nt * 8 + x), col));
      Value sums[2];
      for (int64_t r = 0; r < 2; ++r) {
        Value product = (*acc)->values[nt * 4 + 2 * r + x];
        Value activated =
            e.inlineRegion(op.getActivation(),
                           {fusedMulAdd(e, product, scale, bs[r]), rows[r].head});
        Value sum = e.mul(w[r], activated);
        // A query's heads are the rows g = 4 q' .. of one lane column (row
        // g is lane 4 g + column): xor 4, 8 and 16 walk heads 1, 2 and 4
        // apart; 16 heads are also the lane's two rows (g and g + 8).
        for (int64_t apart = 1; apart < std::min<int64_t>(heads, 8); apart *= 2)
          sum = e.add(sum, shuffleXor(b, loc, sum, int32_t(apart * 4)));
        sums[r] = sum;
      }
      if (heads == 16)
        sums[0] = sums[1] = e.add(sums[0], sums[1]);
      for (int64_t r = 0; r < 2; ++r) {
        Value visible = e.cmpi(arith::CmpIPredicate::ule, key, rows[r].query);
        f.values[nt * 4 + 2 * r + x] = e.select(visible, sums[r], negInf);
      }
    }
  fragments[op.getResult()] = std::move(f);
  return success();
}

LogicalResult LaunchMapper::storeScores(TileStoreScoresOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Emitter e(b, loc);
  FailureOr<Fragment *> tile =
      fragmentOf(op, op.getTile(), Fragment::QueryTile, "tile");
  if (failed(tile))
    return failure();
  int64_t heads = (*tile)->heads;
  int64_t N = op.getTile().getType().getDimSize(1);
  int64_t L = op.getScores().getType().getDimSize(1);
  if (op.getTile().getType().getDimSize(0) * heads != warps * kRowsPerWarp)
    return op.emitOpError(fmt::format(
        "gsa-map-tensor-cores: a tile of {} warps holds {} queries of {} "
        "heads, but this one has {}",
        warps, warps * kRowsPerWarp / heads, heads,
        op.getTile().getType().getDimSize(0)));
  Value scores = collapse(b, loc, op.getScores());
  auto rows = rowsOf(b, loc, op.getBatch(), op.getFirstQuery(), e.index(0),
                     heads, L);
  Value cL = e.index(L);
  // Every lane of a query's heads holds the query's sums of all n-tiles,
  // so its `slots` head lanes share the stores: the lane of head h stores
  // n-tiles h, h + slots, ... (picked from its values by selects), and a
  // warp's store writes whole 128-byte lines (H_I 4: a query's 16 lanes,
  // 8 bytes each, one line per two queries of the warp's 8 rows) rather
  // than one lane in H_I writing 32 bytes per query. H_I 16 spreads a
  // query over both row halves: the lanes of heads 8-15 only add.
  int64_t tiles = N / 8, slots = std::min(heads, tiles);
  for (int64_t r = 0; r < 2; ++r) {
    int64_t lowestHead = heads > 8 ? (8 * r) % heads : 0;
    if (lowestHead >= slots)
      continue;
    Value slot = rows[r].head;
    Value storing = e.andi(
        rows[r].valid,
        e.cmpi(arith::CmpIPredicate::ult, slot, e.index(slots)));
    e.ifThen(storing, [&]() {
      Value rowBase = e.mul(
          e.add(e.mul(op.getBatch(), cL), rows[r].query), cL);
      for (int64_t first = 0; first < tiles; first += slots) {
        // This lane's n-tile first + slot (none past the chunk's last).
        int64_t here = std::min(slots, tiles - first);
        auto pick = [&](int64_t x) {
          Value v = (*tile)->values[first * 4 + 2 * r + x];
          for (int64_t s = 1; s < here; ++s)
            v = e.select(e.cmpi(arith::CmpIPredicate::eq, slot, e.index(s)),
                         (*tile)->values[(first + s) * 4 + 2 * r + x], v);
          return v;
        };
        Value pair[2] = {pick(0), pick(1)};
        Value nt = e.add(e.index(first), slot);
        Value key =
            e.add(op.getFirstKey(), e.add(e.mul(nt, e.index(8)), col));
        Value inChunk =
            here == slots
                ? Value()
                : e.cmpi(arith::CmpIPredicate::ult, slot, e.index(here));
        auto guarded = [&](Value k) {
          Value inRow = e.cmpi(arith::CmpIPredicate::ult, k, cL);
          return inChunk ? e.andi(inChunk, inRow) : inRow;
        };
        Value at = e.add(rowBase, key);
        if (L % 2 == 0) {
          // key is even, so are the row starts: one 8-byte store, both
          // keys inside the row or both past it.
          e.ifThen(guarded(key),
                   [&]() { storeLaneRow(b, loc, pair, scores, at); });
          continue;
        }
        for (int64_t x = 0; x < 2; ++x) {
          Value k = e.add(key, e.index(x));
          e.ifThen(guarded(k), [&]() {
            e.store(pair[x], scores, {e.add(at, e.index(x))});
          });
        }
      }
    });
  }
  return success();
}

LogicalResult LaunchMapper::mapLoop(scf::ForOp loop) {
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  mapped.push_back(loop);
  // Which carried row values are partial sums: those the body yields from
  // an online softmax's new sum.
  auto yield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
  carryingYields.insert(yield);
  SmallVector<bool> partial;
  for (Value v : yield.getOperands()) {
    auto softmax = v.getDefiningOp<TileOnlineSoftmaxOp>();
    partial.push_back(softmax && v == softmax.getNewSum());
  }
  // The carried values, flattened.
  SmallVector<Value> inits;
  SmallVector<std::pair<Fragment::Kind, int64_t>> layout;
  for (auto [i, init] : llvm::enumerate(loop.getInitArgs())) {
    if (!isa<RankedTensorType>(init.getType())) {
      inits.push_back(init);
      layout.push_back({Fragment::Tile, -1});
      continue;
    }
    auto it = fragments.find(init);
    if (it == fragments.end() ||
        (it->second.kind != Fragment::Tile && it->second.kind != Fragment::Rows))
      return loop.emitOpError(fmt::format(
          "gsa-map-tensor-cores: carried tile #{} is not a register tile "
          "or row value",
          i));
    // A scores tile holds its values over its scale, which the flattened
    // loop would not carry.
    if (it->second.scale != 1.0f)
      return refuseScoresTile(loop, fmt::format("carried tile #{}", i));
    SmallVector<Value> values =
        it->second.kind == Fragment::Rows
            ? (partial[i] ? partialRows(b, loc, it->second)
                          : fullRows(b, loc, it->second))
            : it->second.values;
    layout.push_back({it->second.kind, int64_t(values.size())});
    llvm::append_range(inits, values);
  }
  auto newLoop = scf::ForOp::create(b, loc, loop.getLowerBound(),
                                    loop.getUpperBound(), loop.getStep(), inits);
  Block *body = newLoop.getBody();
  if (!body->empty())
    body->getTerminator()->erase();
  body->getOperations().splice(body->end(), loop.getBody()->getOperations());
  loop.getInductionVar().replaceAllUsesWith(newLoop.getInductionVar());
  auto unflatten = [&](ValueRange flat, auto &&onScalar, auto &&onTile) {
    int64_t at = 0;
    for (auto [i, entry] : llvm::enumerate(layout)) {
      auto [kind, n] = entry;
      if (n < 0) {
        onScalar(i, flat[at++]);
        continue;
      }
      Fragment f;
      f.kind = kind;
      f.partial = kind == Fragment::Rows && partial[i];
      f.values.assign(flat.begin() + at, flat.begin() + at + n);
      at += n;
      onTile(i, std::move(f));
    }
  };
  unflatten(
      newLoop.getRegionIterArgs(),
      [&](size_t i, Value v) {
        loop.getRegionIterArg(i).replaceAllUsesWith(v);
      },
      [&](size_t i, Fragment f) {
        fragments[loop.getRegionIterArg(i)] = std::move(f);
      });

  if (failed(mapBlock(*body)))
    return failure();

  // The yield, flattened like the inits.
  b.setInsertionPoint(yield);
  SmallVector<Value> yielded;
  for (auto [i, v] : llvm::enumerate(yield.getOperands())) {
    if (layout[i].second < 0) {
      yielded.push_back(v);
      continue;
    }
    auto it = fragments.find(v);
    if (it == fragments.end() || it->second.kind != layout[i].first)
      return yield.emitOpError(fmt::format(
          "gsa-map-tensor-cores: yielded tile #{} is not held like the "
          "carried one",
          i));
    if (it->second.scale != 1.0f)
      return refuseScoresTile(yield, fmt::format("yielded tile #{}", i));
    SmallVector<Value> values =
        it->second.kind == Fragment::Rows
            ? (partial[i] ? partialRows(b, loc, it->second)
                          : fullRows(b, loc, it->second))
            : it->second.values;
    llvm::append_range(yielded, values);
  }
  scf::YieldOp::create(b, yield.getLoc(), yielded);
  carryingYields.erase(yield);
  yield.erase();

  unflatten(
      newLoop.getResults(),
      [&](size_t i, Value v) { loop.getResult(i).replaceAllUsesWith(v); },
      [&](size_t i, Fragment f) { fragments[loop.getResult(i)] = std::move(f); });
  return success();
}

LogicalResult LaunchMapper::mapOp(Operation *op) {
  if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
    auto type = dyn_cast<RankedTensorType>(constant.getType());
    if (!type)
      return success();
    auto splat = dyn_cast<SplatElementsAttr>(constant.getValue());
    if (!splat || !type.getElementType().isF32() || type.getRank() < 1 ||
        type.getRank() > 2)
      return op->emitOpError("gsa-map-tensor-cores: a tile constant must be "
                             "an f32 splat of rank 1 (rows) or 2 (a tile)");
    OpBuilder b(op);
    Emitter e(b, op->getLoc());
    double x = splat.getSplatValue<APFloat>().convertToDouble();
    Fragment f;
    f.zero = x == 0.0;
    if (type.getRank() == 1) {
      f.kind = Fragment::Rows;
      f.values.assign(2, e.f32(x));
    } else {
      f.values.assign(type.getDimSize(1) / 8 * 4, e.f32(x));
    }
    fragments[constant.getResult()] = std::move(f);
    mapped.push_back(op);
    return success();
  }
  if (auto loop = dyn_cast<scf::ForOp>(op)) {
    if (llvm::any_of(loop.getInitArgs().getTypes(),
                     [](Type t) { return isa<RankedTensorType>(t); }))
      return mapLoop(loop);
    return mapBlock(*loop.getBody());
  }
  if (auto shared = dyn_cast<TileSharedTileOp>(op)) {
    Fragment f;
    f.kind = Fragment::Shared;
    f.ring = shared.getRing();
    f.stage = shared.getStage();
    f.swizzled = shared.getSwizzled();
    fragments[shared.getTile()] = std::move(f);
    mapped.push_back(op);
    return success();
  }
  LogicalResult result = success();
  bool isTileOp = true;
  if (auto o = dyn_cast<TileLoadQueriesOp>(op))
    result = loadQueries(o);
  else if (auto o = dyn_cast<TileDotOp>(op))
    result = dot(o);
  else if (auto o = dyn_cast<TileScoresOp>(op))
    result = scores(o);
  else if (auto o = dyn_cast<TileOnlineSoftmaxOp>(op))
    result = softmax(o);
  else if (auto o = dyn_cast<TileRescaleOp>(op))
    result = rescale(o);
  else if (auto o = dyn_cast<TileStoreOutputOp>(op))
    result = storeOutput(o);
  else if (auto o = dyn_cast<TileIndexerHeadsOp>(op))
    result = indexerHeads(o);
  else if (auto o = dyn_cast<TileIndexerScoresOp>(op))
    result = indexerScores(o);
  else if (auto o = dyn_cast<TileStoreScoresOp>(op))
    result = storeScores(o);
  else if (auto words = dyn_cast<TileGatherWordsOp>(op)) {
    // Unstaged per-key words: read where used.
    Fragment f;
    f.kind = Fragment::GlobalWords;
    f.ring = words.getSource();
    f.stage = words.getOffset();
    f.count = words.getCount();
    fragments[words.getTile()] = std::move(f);
  } else if (isa<TileGatherRowsOp>(op))
    return op->emitOpError("gsa-map-tensor-cores: row gathers must be staged "
                           "in shared memory first (run gsa-stage-shared)");
  else
    isTileOp = false;
  if (isTileOp) {
    mapped.push_back(op);
    return result;
  }
  // A carrying loop's yield is rewritten by mapLoop; anything else that
  // takes or returns a tile (scf.if, scf.while, a yield of either, ...)
  // has no mapping.
  if (carryingYields.contains(op))
    return success();
  for (Value operand : op->getOperands())
    if (fragments.count(operand))
      return op->emitOpError(
          "gsa-map-tensor-cores: cannot map this op on a tile value");
  if (llvm::any_of(op->getResultTypes(),
                   [](Type t) { return isa<RankedTensorType>(t); }))
    return op->emitOpError(
        "gsa-map-tensor-cores: tiles flow only through gsa.tile ops and "
        "scf.for; this op returns a tile it cannot map");
  for (Region &region : op->getRegions())
    for (Block &block : region)
      if (failed(mapBlock(block)))
        return failure();
  return success();
}

LogicalResult LaunchMapper::mapBlock(Block &block) {
  for (Operation &op : llvm::make_early_inc_range(block))
    if (failed(mapOp(&op)))
      return failure();
  return success();
}

LogicalResult LaunchMapper::run() {
  Block &body = launch.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&body);
  Location loc = launch.getLoc();
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  warp = arith::DivUIOp::create(b, loc, tid, e.index(kWarpSize));
  lane = arith::RemUIOp::create(b, loc, tid, e.index(kWarpSize));
  g = arith::ShRUIOp::create(b, loc, lane, e.index(2));
  col = e.mul(arith::AndIOp::create(b, loc, lane, e.index(3)), e.index(2));
  laneRow = arith::AndIOp::create(b, loc, lane, e.index(7));
  laneMatrix = arith::ShRUIOp::create(b, loc, lane, e.index(3));
  zeroF = arith::BitcastOp::create(b, loc, b.getF32Type(),
                                   opaqueZeroI32(b, loc, lane));
  if (failed(mapBlock(body)))
    return failure();
  if (usedWgmma) {
    // cp.async writes through the generic proxy, wgmma reads through the
    // async proxy: each thread orders its landed copies before the
    // barrier that publishes them.
    launch.walk([&](NVVM::CpAsyncWaitGroupOp wait) {
      OpBuilder after(wait->getContext());
      after.setInsertionPointAfter(wait);
      asyncProxyFence(after, wait.getLoc());
    });
    // f32 division as div.full.f32 (at most 2 ulp), not IEEE div.rn.f32:
    // ptxas (CUDA 13.0) turns div.rn's slow path into a subroutine call
    // that, in these kernels, gave wrong outputs (a score_mod dividing by a
    // constant; the subroutine's scratch registers are ones the kernel's
    // wgmma also uses; bench/device/score_mod_check.py, docs/gpu-path.md).
    SmallVector<arith::DivFOp> divisions;
    launch.walk([&](arith::DivFOp div) {
      if (div.getType().isF32())
        divisions.push_back(div);
    });
    for (arith::DivFOp div : divisions) {
      OpBuilder at(div);
      auto full = LLVM::InlineAsmOp::create(
          at, div.getLoc(), at.getF32Type(),
          ValueRange{div.getLhs(), div.getRhs()}, "div.full.f32 $0, $1, $2;",
          "=f,f,f", /*has_side_effects=*/false, /*is_align_stack=*/false,
          LLVM::tailcallkind::TailCallKind::None,
          LLVM::AsmDialectAttr::get(at.getContext(), LLVM::AsmDialect::AD_ATT),
          ArrayAttr());
      div.replaceAllUsesWith(full.getResult(0));
      div.erase();
    }
  }
  for (Operation *op : llvm::reverse(mapped)) {
    op->dropAllUses();
    op->erase();
  }
  return success();
}

/// Whether the launch divides integers by a value that is not a constant
/// (a score_mod's `t // (h + 1)`): ptxas makes such a division a
/// subroutine call, and in kernels on wgmma it gave wrong outputs - the
/// same failure as div.rn.f32's slow path (score_mod_check.py's "index
/// division", d_k 64: o off by 0.68; right on mma.sync). Unlike f32
/// division it has no call-free PTX form, so such a launch stays on
/// mma.sync.
bool dividesIntegersByAVariable(gpu::LaunchOp launch) {
  bool found = false;
  launch.walk([&](Operation *op) {
    if (!isa<arith::DivSIOp, arith::DivUIOp, arith::RemSIOp, arith::RemUIOp,
             arith::FloorDivSIOp, arith::CeilDivSIOp, arith::CeilDivUIOp>(op))
      return WalkResult::advance();
    if (matchPattern(op->getOperand(1), m_Constant()))
      return WalkResult::advance();
    found = true;
    return WalkResult::interrupt();
  });
  return found;
}

struct GSAMapTensorCoresPass
    : gsa::impl::GSAMapTensorCoresBase<GSAMapTensorCoresPass> {
  using GSAMapTensorCoresBase::GSAMapTensorCoresBase;
  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp launch) {
      bool hasTiles = false;
      launch.walk([&](Operation *op) {
        if (op->getName().getStringRef().starts_with("gsa.tile."))
          hasTiles = true;
      });
      if (hasTiles)
        launches.push_back(launch);
    });
    for (gpu::LaunchOp launch : launches) {
      auto x = launch.getBlockSizeX().getDefiningOp<arith::ConstantIndexOp>();
      if (!x || x.value() % kWarpSize != 0) {
        launch.emitOpError("gsa-map-tensor-cores needs a constant block of "
                           "whole warps");
        return signalPassFailure();
      }
      bool useWgmma = wgmma && !dividesIntegersByAVariable(launch);
      if (failed(LaunchMapper(launch, x.value() / kWarpSize, useWgmma,
                              sharedQueries)
                     .run()))
        return signalPassFailure();
    }
  }
};

} // namespace
