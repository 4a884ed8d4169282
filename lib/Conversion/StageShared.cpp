//===- StageShared.cpp - gsa-stage-shared: chunk gathers via shared rings -===//
//
// The second stage of the GPU lowering (GSAPasses.td has the contract).
// A tile loop's gathers become a software pipeline: while chunk i is being
// computed from shared memory, the copies of chunks i+1 .. i+stages-1 are
// in flight (cp.async), so the loop waits on memory only when the chunk's
// compute is shorter than its copy. The K / V rows are copied in 16-byte
// pieces with the piece index XOR-swizzled by row: the eight row addresses
// of one ldmatrix phase then hit eight different 16-byte bank groups, and
// each 128-byte column block of a slot is wgmma's 128-byte swizzle layout
// (swizzledPieceOffset).
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "GPUEmitter.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSASTAGESHARED
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

/// Gathers that read the same rows (same positions, offset, count, batch,
/// KV head) from different sources share their position loads; so do the
/// words gathers of one offset and count. Consecutive rows (no positions)
/// have no position loads: row j of a chunk is key offset + j.
struct RowsGroup {
  SmallVector<TileGatherRowsOp> gathers;
  SmallVector<Value> rings;
  /// With tma (consecutive rows only): each gather's tensor map (built on
  /// the host before the launch) and the group's per-slot mbarriers.
  SmallVector<Value> maps;
  Value barriers;
  bool byTma() { return barriers != nullptr; }
  /// With async-positions: the group's positions, `stages` chunks ahead of
  /// its rows (positionSlots x rows i32).
  Value positionRing;
  /// Rows per chunk (every gather of the group has the same tile).
  int64_t rows() {
    return gathers.front().getTile().getType().getDimSize(0);
  }
  bool consecutive() { return !gathers.front().getPositions(); }
};
struct WordsGroup {
  SmallVector<TileGatherWordsOp> gathers;
  SmallVector<Value> rings;
};

class LoopStager {
public:
  LoopStager(scf::ForOp loop, gpu::LaunchOp launch, int64_t threads,
             int64_t stages, bool dynamicShared, bool asyncPositions,
             bool tma)
      : loop(loop), launch(launch), threads(threads), stages(stages),
        dynamicShared(dynamicShared), asyncPositions(asyncPositions),
        tma(tma) {}

  LogicalResult run();

private:
  /// `v` as it would be in the iteration `map` maps the induction variable
  /// to: the pure ops between the induction variable and `v` are cloned at
  /// the builder's point. Fails (silently) when `v` depends on a
  /// loop-carried value or on an op that is not pure.
  FailureOr<Value> at(OpBuilder &b, Value v, IRMapping &map);
  /// The located error for a gather whose operands `at` cannot move.
  LogicalResult notMovable(Operation *gather);
  /// The copies of chunk `iv` into ring slot `slot`; the rows' positions
  /// come from the position rings when `positionsFromRing`, else from
  /// global memory.
  LogicalResult issue(OpBuilder &b, Value iv, Value slot,
                      bool positionsFromRing);
  /// With async-positions: the copies of chunk `iv`'s positions into the
  /// position rings, when `iv` is below the loop's upper bound.
  LogicalResult issuePositions(OpBuilder &b, Value iv);
  /// The slot of chunk `iv` in the position rings.
  Value positionSlot(Emitter &e, Value iv);
  /// body(j, inRange, from) for the entries j < n of a chunk, spread over
  /// the threads; inRange = j < count, and from = offset + j, or offset
  /// (the chunk's first entry, always readable) past the count.
  void forEachEntry(Emitter &e, Value tid, int64_t n, Value count,
                    Value offset,
                    function_ref<void(Value, Value, Value)> body);

  scf::ForOp loop;
  gpu::LaunchOp launch;
  int64_t threads, stages;
  bool dynamicShared, asyncPositions, tma;
  /// Whether the rows' positions go through rings (async-positions, and
  /// some gather reads its rows from a list).
  bool positionRings = false;
  /// Slots of the position rings: the chunk whose rows are being issued and
  /// the `stages` chunks whose positions may be in flight, rounded up to a
  /// power of two.
  int64_t positionSlots = 0;
  SmallVector<RowsGroup> rowsGroups;
  SmallVector<WordsGroup> wordsGroups;
};

FailureOr<Value> LoopStager::at(OpBuilder &b, Value v, IRMapping &map) {
  if (Value known = map.lookupOrNull(v))
    return known;
  if (!loop.getRegion().isAncestor(v.getParentRegion()))
    return v;
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumRegions() != 0 || !isPure(def))
    return failure();
  for (Value operand : def->getOperands())
    if (failed(at(b, operand, map)))
      return failure();
  Operation *clone = b.clone(*def, map);
  return clone->getResult(cast<OpResult>(v).getResultNumber());
}

LogicalResult LoopStager::notMovable(Operation *gather) {
  return gather->emitOpError(
      "gsa-stage-shared: the rows this gather reads are not a pure function "
      "of the loop's induction variable (they depend on a loop-carried value "
      "or on an op with side effects), so the copies of a later chunk "
      "cannot be issued ahead");
}

void LoopStager::forEachEntry(Emitter &e, Value tid, int64_t n, Value count,
                              Value offset,
                              function_ref<void(Value, Value, Value)> body) {
  for (int64_t r = 0; r * threads < n; ++r) {
    int64_t here = std::min(threads, n - r * threads);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, tid, e.index(here)), [&]() {
      Value j = e.add(tid, e.index(r * threads));
      Value inRange = e.cmpi(arith::CmpIPredicate::slt, j, count);
      body(j, inRange, e.add(offset, e.select(inRange, j, e.index(0))));
    });
  }
}

Value LoopStager::positionSlot(Emitter &e, Value iv) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Value ordinal = arith::DivUIOp::create(
      b, loc, e.sub(iv, loop.getLowerBound()), loop.getStep());
  return arith::RemUIOp::create(b, loc, ordinal, e.index(positionSlots));
}

LogicalResult LoopStager::issuePositions(OpBuilder &b, Value iv) {
  Location loc = loop.getLoc();
  Emitter e(b, loc);
  LogicalResult ok = success();
  e.ifThen(e.cmpi(arith::CmpIPredicate::slt, iv, loop.getUpperBound()), [&]() {
    IRMapping map;
    map.map(loop.getInductionVar(), iv);
    Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value slot = positionSlot(e, iv);
    for (RowsGroup &group : rowsGroups) {
      if (group.consecutive())
        continue;
      TileGatherRowsOp first = group.gathers.front();
      FailureOr<Value> offset = at(b, first.getOffset(), map);
      FailureOr<Value> count = at(b, first.getCount(), map);
      if (failed(offset) || failed(count)) {
        ok = notMovable(first);
        return;
      }
      int64_t rows = group.rows();
      // Rows past the count copy the chunk's first position; the reader
      // masks them by the count.
      forEachEntry(e, tid, rows, *count, *offset,
                   [&](Value j, Value, Value from) {
                     copyAsync4(b, loc,
                                sharedAddress(e, group.positionRing,
                                              e.add(e.mul(slot, e.index(rows)), j)),
                                globalAddress(e, first.getPositions(), from),
                                e.i32(4));
                   });
    }
  });
  return ok;
}

LogicalResult LoopStager::issue(OpBuilder &b, Value iv, Value slot,
                                bool positionsFromRing) {
  Location loc = loop.getLoc();
  Emitter e(b, loc);
  IRMapping map;
  map.map(loop.getInductionVar(), iv);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value zero = e.index(0);
  for (RowsGroup &group : rowsGroups) {
    TileGatherRowsOp first = group.gathers.front();
    auto positions = first.getPositions();
    FailureOr<Value> offset = at(b, first.getOffset(), map);
    FailureOr<Value> count = at(b, first.getCount(), map);
    FailureOr<Value> batch = at(b, first.getBatch(), map);
    FailureOr<Value> kvHead = at(b, first.getKvHead(), map);
    if (failed(offset) || failed(count) || failed(batch) || failed(kvHead))
      return notMovable(first);
    auto tile = first.getTile().getType();
    int64_t rows = tile.getDimSize(0), D = tile.getDimSize(1);
    if (group.byTma()) {
      // Thread 0 arms the slot's barrier with the chunk's bytes and issues
      // one box per 128-byte column block of each gather; only for a chunk
      // below the loop's bound (every such chunk is waited for, so no copy
      // is in flight when the block exits).
      int64_t chunkBytes = rows * D * tile.getElementTypeBitWidth() / 8;
      Value issuing = e.andi(
          e.cmpi(arith::CmpIPredicate::eq, tid, zero),
          e.cmpi(arith::CmpIPredicate::slt, iv, loop.getUpperBound()));
      e.ifThen(issuing, [&]() {
        Value bar = sharedAddress(e, group.barriers, slot);
        mbarrierArriveExpectTx(b, loc, bar,
                               chunkBytes * int64_t(group.gathers.size()));
        Value slotElems = e.mul(slot, e.index(rows * D));
        for (auto [ring, map] : llvm::zip(group.rings, group.maps))
          tmaLoadRowChunk(e, ring, slotElems, rows, D, map,
                          e.indexToI32(*offset), e.indexToI32(*batch), bar);
      });
      continue;
    }
    auto source = first.getSource().getType();
    int64_t perPiece = 128 / tile.getElementTypeBitWidth(); // 16 bytes
    int64_t pieces = D / perPiece;
    // ([B, L, D] sources have one head.)
    int64_t L = source.getDimSize(1),
            NKV = source.getRank() == 4 ? source.getDimSize(2) : 1;
    int64_t total = rows * pieces;
    Value slotElems = e.mul(slot, e.index(rows * D));
    bool fromRing = positionsFromRing && !group.consecutive();
    Value positionBase;
    if (fromRing)
      positionBase = e.mul(positionSlot(e, iv), e.index(rows));
    // Where every source of the group has fewer than 2^31 bytes, a copy's
    // addresses are 32-bit offsets from its buffers: the key's row offset
    // is one 32-bit multiply-add and the slot offset one add (index
    // arithmetic is 64-bit, two instructions per add on the GPU, and
    // this is the loop's issue path: 8 keys x 2 rings per thread and chunk
    // at d_k 128).
    int64_t elemBytes = tile.getElementTypeBitWidth() / 8;
    bool narrow = llvm::all_of(group.gathers, [&](TileGatherRowsOp g) {
      return g.getSource().getType().getNumElements() * elemBytes <
             (int64_t(1) << 31);
    });
    auto i32 = [&](Value index) {
      return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), index);
    };
    for (int64_t r = 0; r * threads < total; ++r) {
      auto body = [&]() {
        Value p = e.add(tid, e.index(r * threads));
        Value j = arith::DivUIOp::create(b, loc, p, e.index(pieces));
        Value piece = arith::RemUIOp::create(b, loc, p, e.index(pieces));
        Value inRange = e.cmpi(arith::CmpIPredicate::slt, j, *count);
        // Entry j of the chunk, or its first past the count: consecutive
        // rows are that key itself, listed rows read it from their list.
        auto entry = [&]() { return e.add(*offset, e.select(inRange, j, zero)); };
        Value key32;
        if (group.consecutive()) {
          key32 = e.indexToI32(entry());
        } else {
          key32 = fromRing
                      ? e.load(group.positionRing, {e.add(positionBase, j)})
                      : e.load(positions, {entry()});
          key32 = e.select(inRange, key32, e.i32(0));
        }
        Value swizzled = swizzledPieceOffset(e, j, piece, rows, perPiece);
        if (narrow) {
          // (batch L + key) NKV + kvHead) D + piece: the key's part times
          // the row stride plus the rest, in bytes.
          Value rest = e.mul(
              e.add(e.mul(e.add(e.mul(*batch, e.index(L * NKV)), *kvHead),
                          e.index(D)),
                    e.mul(piece, e.index(perPiece))),
              e.index(elemBytes));
          Value srcBytes = arith::AddIOp::create(
              b, loc,
              arith::MulIOp::create(b, loc, key32,
                                    e.i32(int32_t(NKV * D * elemBytes))),
              i32(rest));
          Value dstBytes = arith::AddIOp::create(
              b, loc,
              arith::MulIOp::create(b, loc, i32(slot),
                                    e.i32(int32_t(rows * D * elemBytes))),
              i32(e.mul(swizzled, e.index(elemBytes))));
          for (auto [gather, ring] : llvm::zip(group.gathers, group.rings)) {
            Value ringBase = i32(
                memref::ExtractAlignedPointerAsIndexOp::create(b, loc, ring));
            Value sourceBase = memref::ExtractAlignedPointerAsIndexOp::create(
                b, loc, gather.getSource());
            Value source = arith::AddIOp::create(
                b, loc,
                arith::IndexCastUIOp::create(b, loc, b.getI64Type(),
                                             sourceBase),
                arith::ExtUIOp::create(b, loc, b.getI64Type(), srcBytes));
            copyAsync16(b, loc,
                        arith::AddIOp::create(b, loc, ringBase, dstBytes),
                        source);
          }
          return;
        }
        Value key = e.i32ToIndex(key32);
        Value src = e.add(
            e.mul(e.add(e.mul(e.add(e.mul(*batch, e.index(L)), key),
                              e.index(NKV)),
                        *kvHead),
                  e.index(D)),
            e.mul(piece, e.index(perPiece)));
        Value dst = e.add(slotElems, swizzled);
        for (auto [gather, ring] : llvm::zip(group.gathers, group.rings))
          copyAsync16(b, loc, sharedAddress(e, ring, dst),
                      globalAddress(e, gather.getSource(), src));
      };
      if ((r + 1) * threads <= total)
        body();
      else
        e.ifThen(e.cmpi(arith::CmpIPredicate::ult, tid,
                        e.index(total - r * threads)),
                 body);
    }
  }
  for (WordsGroup &group : wordsGroups) {
    TileGatherWordsOp first = group.gathers.front();
    FailureOr<Value> offset = at(b, first.getOffset(), map);
    FailureOr<Value> count = at(b, first.getCount(), map);
    if (failed(offset) || failed(count))
      return notMovable(first);
    int64_t n = first.getTile().getType().getDimSize(0);
    forEachEntry(e, tid, n, *count, *offset,
                 [&](Value j, Value inRange, Value at) {
      for (auto [gather, ring] : llvm::zip(group.gathers, group.rings)) {
        if (asyncPositions) {
          // A zero-filling copy (source size 0 past the count): the
          // issuing thread never waits on the load.
          copyAsync4(b, loc,
                     sharedAddress(e, ring, e.add(e.mul(slot, e.index(n)), j)),
                     globalAddress(e, gather.getSource(), at),
                     e.select(inRange, e.i32(4), e.i32(0)));
          continue;
        }
        Value word = e.load(gather.getSource(), {at});
        e.store(e.select(inRange, word, e.i32(0)), ring, {slot, j});
      }
    });
  }
  return success();
}

LogicalResult LoopStager::run() {
  Location loc = loop.getLoc();
  MLIRContext *ctx = loop.getContext();
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto ringOf = [&](RankedTensorType tile) -> Value {
    SmallVector<int64_t> shape = {stages};
    llvm::append_range(shape, tile.getShape());
    auto type = MemRefType::get(shape, tile.getElementType(),
                                MemRefLayoutAttrInterface(), workgroup);
    return launch.addWorkgroupAttribution(type, loc);
  };

  // The buffers a gather reads are used ahead of the loop body (prologue).
  for (Operation &op : loop.getBody()->without_terminator())
    for (Value buffer : op.getOperands())
      if (isa<TileGatherRowsOp, TileGatherWordsOp>(op) &&
          isa<MemRefType>(buffer.getType()) &&
          !loop.isDefinedOutsideOfLoop(buffer))
        return op.emitOpError(
            "gsa-stage-shared: the buffers a gather reads must be defined "
            "outside its loop (their chunks are copied before the loop "
            "body runs)");
  // Group the gathers (see RowsGroup), one ring each.
  for (Operation &op : loop.getBody()->without_terminator()) {
    if (auto rows = dyn_cast<TileGatherRowsOp>(op)) {
      auto same = [&](const RowsGroup &g) {
        TileGatherRowsOp f = g.gathers.front();
        return f.getPositions() == rows.getPositions() &&
               f.getOffset() == rows.getOffset() &&
               f.getCount() == rows.getCount() &&
               f.getBatch() == rows.getBatch() &&
               f.getKvHead() == rows.getKvHead() &&
               f.getTile().getType() == rows.getTile().getType() &&
               f.getSource().getType().getShape() ==
                   rows.getSource().getType().getShape();
      };
      auto it = llvm::find_if(rowsGroups, same);
      if (it == rowsGroups.end()) {
        rowsGroups.push_back({});
        it = std::prev(rowsGroups.end());
      }
      it->gathers.push_back(rows);
    } else if (auto words = dyn_cast<TileGatherWordsOp>(op)) {
      auto same = [&](const WordsGroup &g) {
        TileGatherWordsOp f = g.gathers.front();
        return f.getOffset() == words.getOffset() &&
               f.getCount() == words.getCount() &&
               f.getTile().getType() == words.getTile().getType();
      };
      auto it = llvm::find_if(wordsGroups, same);
      if (it == wordsGroups.end()) {
        wordsGroups.push_back({});
        it = std::prev(wordsGroups.end());
      }
      it->gathers.push_back(words);
    }
  }
  for (RowsGroup &group : rowsGroups) {
    auto tile = group.gathers.front().getTile().getType();
    int64_t rowBytes = tile.getDimSize(1) * tile.getElementTypeBitWidth() / 8;
    if (rowBytes % 128 != 0 || tile.getDimSize(0) % 8 != 0)
      return group.gathers.front().emitOpError(fmt::format(
          "gsa-stage-shared: swizzled staging needs rows of a multiple of "
          "128 bytes and a multiple of 8 rows, but the tile is {} rows of {} "
          "bytes",
          tile.getDimSize(0), rowBytes));
  }
  // TMA groups: consecutive rows of a [B, L, D] source defined outside the
  // launch (its tensor map is built on the host), bf16 / f16 elements, whole
  // 64-element column blocks and at most 256 rows (a box dimension's
  // limit). The barriers are workgroup memory too (counted below).
  if (tma)
    for (RowsGroup &group : rowsGroups) {
      TileGatherRowsOp first = group.gathers.front();
      auto tile = first.getTile().getType();
      auto source = first.getSource().getType();
      // (bf16 / f16: the element types the runtime encodes a map for; an
      // identity layout: the map's strides are the shape's.)
      bool fits = group.consecutive() && source.getRank() == 3 &&
                  source.getLayout().isIdentity() &&
                  (tile.getElementType().isBF16() ||
                   tile.getElementType().isF16()) &&
                  tile.getDimSize(1) % 64 == 0 && tile.getDimSize(0) <= 256;
      for (TileGatherRowsOp gather : group.gathers)
        fits = fits && !launch.getBody().isAncestor(
                           gather.getSource().getParentRegion());
      if (!fits)
        continue;
      OpBuilder host(launch);
      for (TileGatherRowsOp gather : group.gathers) {
        auto type = gather.getSource().getType();
        group.maps.push_back(rowChunkTensorMap(host, gather.getLoc(),
                                               gather.getSource(),
                                               type.getShape(),
                                               tile.getDimSize(0)));
      }
      group.barriers = launch.addWorkgroupAttribution(
          MemRefType::get({stages}, IntegerType::get(ctx, 64),
                          MemRefLayoutAttrInterface(), workgroup),
          loc);
    }
  // The rings' bytes. Everything fits the 48 KiB of static shared memory,
  // or, with dynamic-shared, the rows' rings move to dynamic shared memory
  // (up to 227 KiB per block with the static part); otherwise the short
  // per-key words (masks, positions) stay gathers that
  // gsa-map-tensor-cores reads from global memory where used (a few bytes
  // per key, L1-cached), which is what lets d_k 128 with 32-key chunks run
  // three stages in 48 KiB of static memory.
  auto ringBytes = [&](RankedTensorType tile) {
    return stages * tile.getNumElements() * tile.getElementTypeBitWidth() / 8;
  };
  int64_t staticBytes = 0;
  for (BlockArgument buffer : launch.getWorkgroupAttributions())
    staticBytes += bytesOf(cast<MemRefType>(buffer.getType()));
  int64_t rowBytes = 0;
  for (RowsGroup &group : rowsGroups)
    rowBytes += group.gathers.size() *
                ringBytes(group.gathers.front().getTile().getType());
  int64_t positionBytes = 0;
  positionRings =
      asyncPositions && llvm::any_of(rowsGroups, [](RowsGroup &group) {
        return !group.consecutive();
      });
  if (positionRings) {
    positionSlots = llvm::PowerOf2Ceil(stages + 1);
    for (RowsGroup &group : rowsGroups)
      if (!group.consecutive())
        positionBytes += positionSlots * group.rows() * 4;
  }
  int64_t wordBytes = 0;
  for (WordsGroup &group : wordsGroups)
    wordBytes += group.gathers.size() *
                 ringBytes(group.gathers.front().getTile().getType());
  bool dynamicRows = false;
  if (staticBytes + rowBytes + wordBytes <= kStaticSharedBytes) {
    staticBytes += rowBytes + wordBytes;
  } else if (dynamicShared) {
    dynamicRows = true;
    staticBytes += wordBytes;
    if (staticBytes > kStaticSharedBytes ||
        staticBytes + rowBytes > kBlockSharedBytes)
      return loop.emitOpError(fmt::format(
          "gsa-stage-shared: {} stages of this loop's chunks need {} bytes "
          "of dynamic and {} of static shared memory, more than the {} a "
          "block may use (use fewer stages or a smaller key chunk)",
          stages, rowBytes, staticBytes, kBlockSharedBytes));
  } else {
    wordsGroups.clear();
    staticBytes += rowBytes;
  }
  if (staticBytes > kStaticSharedBytes)
    return loop.emitOpError(fmt::format(
        "gsa-stage-shared: {} stages of this loop's chunks need {} bytes of "
        "shared memory, more than the {} of static shared memory (use fewer "
        "stages or a smaller key chunk, or dynamic-shared)",
        stages, staticBytes, kStaticSharedBytes));
  // The position rings only where they still fit (they save latency, the
  // rows' rings are what the loop needs); without them the positions are
  // loaded where the rows are issued.
  if (positionRings && staticBytes + positionBytes > kStaticSharedBytes)
    positionRings = asyncPositions = false;
  staticBytes += positionRings ? positionBytes : 0;
  // Dynamic rings: views of the launch's dynamic shared memory, one after
  // the other (each a whole number of KiB: 1024-byte aligned, as wgmma's
  // swizzle atoms need, given the 1024-byte aligned base).
  Value dynamicBase;
  int64_t dynamicBytes = 0;
  auto dynamicRingOf = [&](RankedTensorType tile) -> Value {
    Block &body = launch.getBody().front();
    OpBuilder at = OpBuilder::atBlockBegin(&body);
    if (!dynamicBase)
      dynamicBase = gpu::DynamicSharedMemoryOp::create(
          at, loc,
          MemRefType::get({ShapedType::kDynamic}, at.getI8Type(),
                          MemRefLayoutAttrInterface(), workgroup));
    at.setInsertionPointAfterValue(dynamicBase);
    SmallVector<int64_t> shape = {stages};
    llvm::append_range(shape, tile.getShape());
    auto type = MemRefType::get(shape, tile.getElementType(),
                                MemRefLayoutAttrInterface(), workgroup);
    Value shift = arith::ConstantIndexOp::create(at, loc, dynamicBytes);
    dynamicBytes += ringBytes(tile);
    return memref::ViewOp::create(at, loc, type, dynamicBase, shift,
                                  ValueRange{});
  };
  for (RowsGroup &group : rowsGroups)
    for (TileGatherRowsOp gather : group.gathers)
      group.rings.push_back(dynamicRows
                                ? dynamicRingOf(gather.getTile().getType())
                                : ringOf(gather.getTile().getType()));
  for (WordsGroup &group : wordsGroups)
    for (TileGatherWordsOp gather : group.gathers)
      group.rings.push_back(ringOf(gather.getTile().getType()));
  if (positionRings)
    for (RowsGroup &group : rowsGroups) {
      if (group.consecutive())
        continue;
      group.positionRing = launch.addWorkgroupAttribution(
          MemRefType::get({positionSlots * group.rows()},
                          IntegerType::get(ctx, 32),
                          MemRefLayoutAttrInterface(), workgroup),
          loc);
    }
  if (dynamicRows) {
    // Another staged loop of the launch may have sized it already: its
    // rings start at offset 0 too (the loops run one after the other, each
    // draining its copies), so the launch needs the larger of the two.
    if (Value size = launch.getDynamicSharedMemorySize())
      if (auto c = size.getDefiningOp<arith::ConstantIntOp>())
        dynamicBytes = std::max(dynamicBytes, c.value());
    OpBuilder before(launch);
    launch.getDynamicSharedMemorySizeMutable().assign(
        arith::ConstantIntOp::create(before, loc, before.getI32Type(),
                                     dynamicBytes));
  }

  // Prologue: chunks lb .. lb + (stages - 2) * step into slots 0 ..
  // stages - 2, one commit group each (also when empty, so that the
  // loop's wait_group counts line up). With async-positions the group that
  // issues chunk c's rows also copies chunk c + stages' positions (the
  // first group chunk stages - 1's as well): the loop reads chunk i +
  // stages - 1's positions from the group of chunk i - 1, which the wait of
  // iteration i - 1 completed; the prologue waits for its first group.
  OpBuilder b(loop);
  Emitter e(b, loc);
  Value lb = loop.getLowerBound(), ub = loop.getUpperBound(),
        step = loop.getStep();
  // TMA groups: thread 0 initialises each slot's barrier (one arrival per
  // phase, its own, plus the chunk's bytes); the block's barrier publishes
  // them before any chunk is issued.
  if (llvm::any_of(rowsGroups, [](RowsGroup &g) { return g.byTma(); })) {
    Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, e.index(0)), [&]() {
      for (RowsGroup &group : rowsGroups)
        if (group.byTma())
          for (int64_t slot = 0; slot < stages; ++slot)
            mbarrierInit(b, loc,
                         sharedAddress(e, group.barriers, e.index(slot)), 1);
      mbarrierInitFence(b, loc);
    });
    gpu::BarrierOp::create(b, loc);
  }
  auto chunkAt = [&](Value from, int64_t n) {
    return e.add(from, e.mul(step, e.index(n)));
  };
  for (int64_t i = 0; i + 1 < stages; ++i) {
    Value chunk = chunkAt(lb, i);
    if (i == 0) {
      // Always safe: out-of-range rows read position 0.
      if (failed(issue(b, chunk, e.index(0), /*positionsFromRing=*/false)))
        return failure();
      if (positionRings &&
          failed(issuePositions(b, chunkAt(lb, stages - 1))))
        return failure();
    } else {
      LogicalResult ok = success();
      e.ifThen(e.cmpi(arith::CmpIPredicate::slt, chunk, ub), [&]() {
        ok = issue(b, chunk, e.index(i), /*positionsFromRing=*/false);
      });
      if (failed(ok))
        return failure();
    }
    if (positionRings && failed(issuePositions(b, chunkAt(lb, i + stages))))
      return failure();
    NVVM::CpAsyncCommitGroupOp::create(b, loc);
  }
  if (positionRings) {
    NVVM::CpAsyncWaitGroupOp::create(b, loc, stages - 2);
    gpu::BarrierOp::create(b, loc);
  }

  // The loop: issue chunk i + stages - 1 into the slot chunk i - 1 used,
  // wait for chunk i, barrier; the body reads slot i % stages.
  b.setInsertionPointToStart(loop.getBody());
  Value iv = loop.getInductionVar();
  Value ordinal = arith::DivUIOp::create(b, loc, e.sub(iv, lb), step);
  Value slot = arith::RemUIOp::create(b, loc, ordinal, e.index(stages));
  Value ahead = e.add(iv, e.mul(step, e.index(stages - 1)));
  Value aheadSlot = arith::RemUIOp::create(
      b, loc, e.add(slot, e.index(stages - 1)), e.index(stages));
  LogicalResult ok = success();
  e.ifThen(e.cmpi(arith::CmpIPredicate::slt, ahead, ub), [&]() {
    ok = issue(b, ahead, aheadSlot, /*positionsFromRing=*/positionRings);
  });
  if (failed(ok))
    return failure();
  if (positionRings && failed(issuePositions(b, chunkAt(ahead, stages))))
    return failure();
  NVVM::CpAsyncCommitGroupOp::create(b, loc);
  NVVM::CpAsyncWaitGroupOp::create(b, loc, stages - 1);
  // TMA groups: chunk i has landed when its slot's barrier completes the
  // phase of its fill (ordinal / stages, mod 2).
  for (RowsGroup &group : rowsGroups)
    if (group.byTma()) {
      mbarrierWait(b, loc, sharedAddress(e, group.barriers, slot),
                   slotFillParity(e, ordinal, stages));
    }
  gpu::BarrierOp::create(b, loc);

  for (RowsGroup &group : rowsGroups)
    for (auto [gather, ring] : llvm::zip(group.gathers, group.rings)) {
      b.setInsertionPoint(gather);
      Value tile = TileSharedTileOp::create(b, gather.getLoc(),
                                            gather.getTile().getType(), ring,
                                            slot, b.getUnitAttr());
      gather.getTile().replaceAllUsesWith(tile);
      gather.erase();
    }
  for (WordsGroup &group : wordsGroups)
    for (auto [gather, ring] : llvm::zip(group.gathers, group.rings)) {
      b.setInsertionPoint(gather);
      Value tile = TileSharedTileOp::create(b, gather.getLoc(),
                                            gather.getTile().getType(), ring,
                                            slot, UnitAttr());
      gather.getTile().replaceAllUsesWith(tile);
      gather.erase();
    }

  // Every warp is done with the slot before a later iteration refills it.
  b.setInsertionPoint(loop.getBody()->getTerminator());
  gpu::BarrierOp::create(b, loc);
  b.setInsertionPointAfter(loop);
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
  return success();
}

struct GSAStageSharedPass
    : gsa::impl::GSAStageSharedBase<GSAStageSharedPass> {
  using GSAStageSharedBase::GSAStageSharedBase;

  void runOnOperation() override {
    if (stages < 2 || stages > 4) {
      getOperation()->emitError(fmt::format(
          "gsa-stage-shared: stages must be 2 to 4, but is {}",
          int64_t(stages)));
      return signalPassFailure();
    }
    SmallVector<scf::ForOp> loops;
    bool stray = false;
    getOperation()->walk([&](Operation *op) {
      if (!isa<TileGatherRowsOp, TileGatherWordsOp>(op))
        return;
      auto loop = dyn_cast<scf::ForOp>(op->getParentOp());
      if (!loop || !op->getParentOfType<gpu::LaunchOp>()) {
        op->emitOpError("gsa-stage-shared stages gathers in an scf.for "
                        "inside a gpu.launch only");
        stray = true;
        return;
      }
      if (!llvm::is_contained(loops, loop))
        loops.push_back(loop);
    });
    if (stray)
      return signalPassFailure();
    for (scf::ForOp loop : loops) {
      auto launch = loop->getParentOfType<gpu::LaunchOp>();
      gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
      auto x = block.x.getDefiningOp<arith::ConstantIndexOp>();
      auto y = block.y.getDefiningOp<arith::ConstantIndexOp>();
      auto z = block.z.getDefiningOp<arith::ConstantIndexOp>();
      if (!x || !y || !z || y.value() != 1 || z.value() != 1) {
        launch.emitOpError("gsa-stage-shared needs a constant 1-D block");
        return signalPassFailure();
      }
      if (failed(LoopStager(loop, launch, x.value(), stages, dynamicShared,
                            asyncPositions, tma)
                     .run()))
        return signalPassFailure();
    }
  }
};

} // namespace
