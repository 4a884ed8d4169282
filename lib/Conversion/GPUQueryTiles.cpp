//===- GPUQueryTiles.cpp - the union of a query tile's selections ---------===//
//
// The first kernel of sparse attention over query tiles (attention v7,
// issue 6's first lead; `gsa-tile` launches it ahead of the tile attention
// that docs/design.md describes): per tile of T consecutive queries the
// sorted union of their selected positions, and per union entry a T-bit
// mask of the queries that selected it. Built window by window in shared
// memory: a bitmap of the window's selected keys and a mask per key
// (shared atomics), a block-wide prefix count over the bitmap words, then
// every set bit written out in position order. Invisible entries (past the
// row's count, negative, or after the query) are skipped, so the masks
// carry the causal limit. Output per tile: at most T x k_max entries
// (scratch of L x k_max x 8 bytes in all: O(L k_max), never O(L^2)).
//
// Every key row a tile's queries share is then read from memory once per
// tile and KV head instead of once per query: the structured selections of
// a trained model (local windows, sinks, topics shared by nearby queries)
// need a fraction of the bytes. Independent (random) selections compute
// the union, T x more scores than selected (masked).
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace gsa::detail {

/// The union of each query tile's selections and the per-entry query masks
/// (see the file comment). The masks are packed: keysPerWord =
/// 32 / pow2ceil(T) keys share a 32-bit word of the shared mask buffer
/// (8192 words), so a window covers 8192 x keysPerWord keys (16384 for
/// T = 16) and each thread owns keysPerWord bitmap words.
void buildTileUnion(OpBuilder &b, Location loc, const SharedAllocator &shared,
                    const TileUnionShape &s, Value indices, Value counts,
                    Value keysOut, Value masksOut, Value sizesOut,
                    TileSplit split, bool stream) {
  int64_t maskBits = int64_t(llvm::PowerOf2Ceil(uint64_t(s.T)));
  int64_t keysPerWord = 32 / maskBits;
  int64_t wordsPerThread = keysPerWord;
  int64_t window = kUnionThreads * 32 * wordsPerThread;
  Type i32 = b.getI32Type();
  Value bitmap = shared(i32, window / 32);
  Value members = shared(i32, kUnionMaskWords);
  Value warpTotals = shared(i32, kUnionThreads / kWarpSize);
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value bi = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value lane = arith::RemUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value warp = arith::DivUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value zero = e.index(0), zeroI = e.i32(0), oneI = e.i32(1);
  Value cK = e.index(s.K), cL = e.index(s.L), nt = e.index(kUnionThreads);
  Value t0 = e.mul(tile, e.index(s.T));
  Value hi = e.minui(e.add(t0, e.index(s.T)), cL);
  Value tileIndex = e.add(e.mul(bi, e.index(s.numTiles)), tile);
  Value outBase = e.mul(tileIndex, e.index(s.T * s.K));
  Value maskOf = e.i32(maskBits == 32 ? -1 : (int64_t(1) << maskBits) - 1);

  // Marks one visible selected key of query q in the window at w0.
  auto markKey = [&](Value w0, Value q, Value sel) {
    Value local = e.sub(sel, w0);
    Value word = arith::DivUIOp::create(b, loc, local, e.index(32));
    Value bit = e.indexToI32(arith::RemUIOp::create(b, loc, local, e.index(32)));
    memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::ori,
                                arith::ShLIOp::create(b, loc, oneI, bit),
                                bitmap, ValueRange{word});
    Value slot = arith::RemUIOp::create(b, loc, local, e.index(keysPerWord));
    Value memberBit = e.indexToI32(e.add(e.mul(slot, e.index(maskBits)), q));
    memref::AtomicRMWOp::create(
        b, loc, arith::AtomicRMWKind::ori,
        arith::ShLIOp::create(b, loc, oneI, memberBit), members,
        ValueRange{arith::DivUIOp::create(b, loc, local, e.index(keysPerWord))});
  };
  // Position t, row and live entry count of query q of the tile (count 0
  // past L; negative counts give no entries).
  auto queryRow = [&](Value q) -> std::tuple<Value, Value, Value> {
    Value t = e.add(t0, q);
    Value inRows = e.cmpi(arith::CmpIPredicate::ult, t, cL);
    Value row = e.add(e.mul(bi, cL), e.minui(t, e.index(s.L - 1)));
    Value count = arith::MinSIOp::create(
        b, loc, e.i32ToIndex(e.load(counts, {row})), cK);
    return {t, row, e.select(inRows, count, zero)};
  };
  auto clearWindow = [&]() {
    e.loopStep(tid, e.index(window / 32), nt,
               [&](Value i) { e.store(zeroI, bitmap, {i}); });
    e.loopStep(tid, e.index(kUnionMaskWords), nt,
               [&](Value i) { e.store(zeroI, members, {i}); });
    gpu::BarrierOp::create(b, loc);
  };
  // Writes the window's marked keys from union entry `base` on, in
  // position order; returns the next entry.
  auto writeWindow = [&](Value w0, Value base) -> Value {
    // Block-wide exclusive prefix of the popcounts of each thread's words.
    Value firstWord = e.mul(tid, e.index(wordsPerThread));
    Value own = zeroI;
    for (int64_t i = 0; i < wordsPerThread; ++i)
      own = e.add(own, LLVM::CtPopOp::create(
                           b, loc, i32,
                           e.load(bitmap, {e.add(firstWord, e.index(i))})));
    auto [exclusive, all] = blockExclusiveSum(
        b, loc, own, lane, warp, warpTotals, kUnionThreads / kWarpSize);
    Value at = e.add(base, e.i32ToIndex(exclusive));
    // This thread's keys, in position order.
    for (int64_t i = 0; i < wordsPerThread; ++i) {
      Value wordIndex = e.add(firstWord, e.index(i));
      Value bits = e.load(bitmap, {wordIndex});
      at = e.loopCarry(
          zero, e.i32ToIndex(LLVM::CtPopOp::create(b, loc, i32, bits)),
          ValueRange{bits, at},
          [&](Value, ValueRange rest) -> SmallVector<Value> {
            Value x = rest[0];
            Value bit = LLVM::CountTrailingZerosOp::create(
                b, loc, i32, x, b.getBoolAttr(false));
            Value local = e.add(e.mul(wordIndex, e.index(32)), e.i32ToIndex(bit));
            Value packed = e.load(members, {arith::DivUIOp::create(
                                               b, loc, local, e.index(keysPerWord))});
            Value shift = e.indexToI32(e.mul(
                arith::RemUIOp::create(b, loc, local, e.index(keysPerWord)),
                e.index(maskBits)));
            Value mask = e.andi(arith::ShRUIOp::create(b, loc, packed, shift), maskOf);
            Value out = e.add(outBase, rest[1]);
            e.store(e.indexToI32(e.add(w0, local)), keysOut, {out});
            e.store(mask, masksOut, {out});
            return {e.andi(x, e.sub(x, oneI)), e.add(rest[1], e.index(1))};
          })[1];
    }
    // Everyone has read the window before the next one clears it.
    gpu::BarrierOp::create(b, loc);
    return e.add(base, e.i32ToIndex(all));
  };

  // The union's size and the split decision, by thread 0.
  auto finish = [&](Value total) {
    e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, zero), [&]() {
      e.store(e.indexToI32(total), sizesOut, {tileIndex});
      if (!split.flags)
        return;
      // The tile's selected entries (each query's count, at most k_max)
      // against its union: few shared rows -> split.
      Value selected = e.sum(t0, hi, zero, [&](Value t) {
        // (Clamped like the marking loop's counts: negative counts are 0.)
        Value count = e.i32ToIndex(e.load(counts, {e.add(e.mul(bi, cL), t)}));
        return arith::MaxSIOp::create(b, loc, e.minsi(count, cK), zero);
      });
      Value halves = e.cmpi(arith::CmpIPredicate::ugt,
                            e.mul(total, e.index(split.share)), selected);
      e.store(arith::ExtUIOp::create(b, loc, i32, halves), split.flags,
              {tileIndex});
    });
  };
  // The per-window rescan: every window marks its keys from all T x k
  // entries.
  auto rescan = [&]() -> SmallVector<Value> {
    return e.loopStepCarry(
        zero, hi, e.index(window), ValueRange{zero},
        [&](Value w0, ValueRange carried) -> SmallVector<Value> {
          clearWindow();
          // Mark the window's visible selected keys, query by query
          // (each query's live entries only). (A loop, not unrolled:
          // T copies of this body were a fifth of the program's PTX and
          // of its cold compile.)
          e.loop(zero, e.index(s.T), [&](Value qq) {
            auto [t, qRow, qCount] = queryRow(qq);
            e.loopStep(tid, qCount, nt, [&](Value jj) {
              Value sel = e.i32ToIndex(
                  e.load(indices, {e.add(e.mul(qRow, cK), jj)}));
              Value inWindow = e.andi(
                  e.andi(e.cmpi(arith::CmpIPredicate::sge, sel, w0),
                         e.cmpi(arith::CmpIPredicate::slt, sel,
                                e.add(w0, e.index(window)))),
                  e.cmpi(arith::CmpIPredicate::sle, sel, t));
              e.ifThen(inWindow, [&]() { markKey(w0, qq, sel); });
            });
          });
          gpu::BarrierOp::create(b, loc);
          return {writeWindow(w0, carried[0])};
        });
  };
  if (!stream) {
    Value total = rescan()[0];
    finish(total);
    return;
  }
  // The selections as the selection kernels write them are ascending
  // lists, so each query's entries of one window are the next run of its
  // list: a group of G lanes per query streams its list once over all
  // windows (a cursor carried from window to window), where marking every
  // window from all T x k entries read them once per window (at 128K with
  // 16-query tiles, 8 windows for the last tiles). Every live entry is read
  // once, also past the last window, and checked against its predecessor;
  // a tile with a list out of order (a caller's own selection) is built
  // again by the full scan per window.
  const int64_t G = std::min<int64_t>(
      kWarpSize, int64_t(llvm::bit_floor(uint64_t(kUnionThreads / s.T))));
  Value unordered = shared(i32, 1);
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, zero),
           [&]() { e.store(zeroI, unordered, {zero}); });
  Value q = arith::DivUIOp::create(b, loc, tid, e.index(G));
  Value l = arith::RemUIOp::create(b, loc, tid, e.index(G));
  Value groupLane0 = e.indexToI32(e.sub(lane, l));
  auto [t, row, count] = queryRow(e.minui(q, e.index(s.T - 1)));
  count = e.select(e.cmpi(arith::CmpIPredicate::ult, q, e.index(s.T)), count,
                   zero);
  // (Lanes past the tile's T queries read query T - 1's row but have no
  // entries, so they never use its position.)
  Value tQuery = e.indexToI32(t);
  Value groupBits = e.i32(G == 32 ? -1 : (int64_t(1) << G) - 1);
  Value lI32 = e.indexToI32(l);
  // Consumes the entries below wEnd (i32; without wEnd, all that are left:
  // an entry of INT32_MAX too) of each group's query from `cursor` on,
  // marking those in [w0, wEnd) visible to it when `mark`; returns the
  // cursor and the last consumed entry. The loop runs while a lane of the
  // warp is still consuming (its shuffles and ballots are warp-wide).
  auto consume = [&](Value w0, Value wEnd, bool mark, Value cursor,
                    Value last) -> std::pair<Value, Value> {
    Type idx = b.getIndexType(), i1 = b.getI1Type();
    Value trueV = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
    auto loop = scf::WhileOp::create(
        b, loc, TypeRange{idx, i32, i1}, ValueRange{cursor, last, trueV});
    {
      Block *before = b.createBlock(&loop.getBefore(), {}, {idx, i32, i1},
                                    {loc, loc, loc});
      b.setInsertionPointToStart(before);
      Value going = e.andi(before->getArgument(2),
                           e.cmpi(arith::CmpIPredicate::slt,
                                  before->getArgument(0), count));
      Value any = e.cmpi(arith::CmpIPredicate::ne, warpBallot(b, loc, going),
                         zeroI);
      // The body gets this lane's `going` (still consuming) itself.
      scf::ConditionOp::create(
          b, loc, any,
          ValueRange{before->getArgument(0), before->getArgument(1), going});
    }
    {
      Block *after = b.createBlock(&loop.getAfter(), {}, {idx, i32, i1},
                                   {loc, loc, loc});
      b.setInsertionPointToStart(after);
      Value cur = after->getArgument(0), prevLast = after->getArgument(1),
            going = after->getArgument(2);
      Value j = e.add(cur, l);
      Value live = e.andi(going, e.cmpi(arith::CmpIPredicate::slt, j, count));
      Value sel = e.ifElse(
          live,
          [&]() -> SmallVector<Value> {
            return {e.load(indices, {e.add(e.mul(row, cK), j)})};
          },
          [&]() -> SmallVector<Value> { return {e.i32(INT32_MAX)}; })[0];
      Value stop = e.cmpi(arith::CmpIPredicate::eq, live,
                          arith::ConstantOp::create(b, loc,
                                                    b.getBoolAttr(false)));
      if (wEnd)
        stop = e.ori(stop, e.cmpi(arith::CmpIPredicate::sge, sel, wEnd));
      Value bits = e.andi(
          arith::ShRUIOp::create(b, loc, warpBallot(b, loc, stop), groupLane0),
          groupBits);
      Value first = e.select(e.cmpi(arith::CmpIPredicate::eq, bits, zeroI),
                             e.i32(G),
                             LLVM::CountTrailingZerosOp::create(
                                 b, loc, i32, bits, b.getBoolAttr(false)));
      // (The lanes before the first stop are live: a dead lane stops.)
      Value consumed = e.cmpi(arith::CmpIPredicate::slt, lI32, first);
      Value up = gpu::ShuffleOp::create(b, loc, sel, 1, kWarpSize,
                                        gpu::ShuffleMode::UP)
                     .getShuffleResult();
      Value before = e.select(e.cmpi(arith::CmpIPredicate::eq, l, zero),
                              prevLast, up);
      e.ifThen(e.andi(consumed,
                      e.cmpi(arith::CmpIPredicate::slt, sel, before)),
               [&]() { e.store(oneI, unordered, {zero}); });
      if (mark)
        e.ifThen(e.andi(consumed,
                        e.andi(e.cmpi(arith::CmpIPredicate::sge, sel,
                                      e.indexToI32(w0)),
                               e.cmpi(arith::CmpIPredicate::sle, sel, tQuery))),
                 [&]() { markKey(w0, q, e.i32ToIndex(sel)); });
      // The group's last consumed entry (lane first - 1), if any.
      Value from = e.add(groupLane0, e.sub(first, oneI));
      Value lastSel =
          gpu::ShuffleOp::create(b, loc, sel, from, e.i32(kWarpSize),
                                 gpu::ShuffleMode::IDX)
              .getShuffleResult();
      Value any = e.cmpi(arith::CmpIPredicate::sgt, first, zeroI);
      Value nextLast = e.select(e.andi(going, any), lastSel, prevLast);
      Value nextCur = e.select(going, e.add(cur, e.i32ToIndex(first)), cur);
      Value nextGoing =
          e.andi(going, e.cmpi(arith::CmpIPredicate::eq, first, e.i32(G)));
      scf::YieldOp::create(b, loc, ValueRange{nextCur, nextLast, nextGoing});
    }
    b.setInsertionPointAfter(loop);
    return {loop.getResult(0), loop.getResult(1)};
  };

  SmallVector<Value> streamed = e.loopStepCarry(
      zero, hi, e.index(window), ValueRange{zero, zero, e.i32(INT32_MIN)},
      [&](Value w0, ValueRange carried) -> SmallVector<Value> {
        clearWindow();
        auto [cursor, last] =
            consume(w0, e.indexToI32(e.add(w0, e.index(window))),
                   /*mark=*/true, carried[1], carried[2]);
        gpu::BarrierOp::create(b, loc);
        return {writeWindow(w0, carried[0]), cursor, last};
      });
  // The entries past the last window (none in a causal selection) are
  // checked for their order too.
  consume(hi, Value(), /*mark=*/false, streamed[1], streamed[2]);
  gpu::BarrierOp::create(b, loc);
  Value outOfOrder =
      e.cmpi(arith::CmpIPredicate::ne, e.load(unordered, {zero}), zeroI);
  SmallVector<Value> total =
      e.ifElse(outOfOrder, rescan,
               [&]() -> SmallVector<Value> { return {streamed[0]}; });
  finish(total[0]);
}

} // namespace gsa::detail
