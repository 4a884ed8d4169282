//===- GPUSelection.cpp - indexer and adaptive top-k as GPU kernels --------===//
//
// The selection never materialises the L x L score matrix: every pass over
// a row recomputes its scores from qi and ki (SPEC 1), which costs FLOPs but
// no memory beyond O(L) per row.
//
// Geometry: a CTA of 256 threads owns a tile of 8 consecutive query rows of
// one batch entry (grid = (ceil(L / 8), B)). The tile's indexer queries
// (pre-scaled), head weights and bias sit in shared memory; the CTA sweeps
// the keys 0..t0+7 in chunks of 256, thread i holding key s0 + i and its ki
// row in registers, and computes the 8 rows' scores of that key. The CTA's
// threads therefore read each ki row once per tile and pass.
//
// Kernels (one launch each):
//   stats  - per row: mean and population variance (f64 sums), and the
//            smallest and largest order key (see orderKey);
//   vbar   - training only: V_bar = mean over the batch of var_t, and the
//            running-variance update (one CTA);
//   topk   - per row: k_t from the policy, then an exact radix select of the
//            k_t-th largest key, 8 bits per pass starting below the bits all
//            of the row's keys share (so typically 3 passes, at most 4),
//            with a 256-bin shared-memory histogram per row; a last pass
//            writes the selected positions in ascending order: keys above
//            the threshold, and of the keys equal to it the largest
//            positions (ties go to the more recent position), ranked by
//            warp ballots and a block-wide prefix count.
// The standalone indexer kernel (used only when a program reads the scores
// themselves) has the same geometry and writes the scores.
//===----------------------------------------------------------------------===//

#include "GPUKernels.h"
#include "GPUEmitter.h"

#include <array>
#include <fmt/format.h>

using namespace mlir;
using namespace gsa;

namespace gsa::detail {
namespace {

constexpr int64_t kThreads = 256;
constexpr int64_t kWarps = kThreads / kWarpSize;
constexpr int64_t kRadixBits = 8;
constexpr int64_t kBins = int64_t(1) << kRadixBits;
constexpr int64_t kMaxIndexerDim = 128; // ki row in registers

/// x * y + z in one rounding (LLVM's intrinsic: fma.rn on the GPU).
Value fusedMulAdd(Emitter &e, Value x, Value y, Value z) {
  return LLVM::FMAOp::create(e.builder(), e.location(), x, y, z);
}

/// Positions of a score source's buffers among a kernel's parameters.
struct SourceArgs {
  int qi = -1, ki = -1, wi = -1, bi = -1, scores = -1;
};

/// Adds the buffers the scores are computed from to a kernel's parameters:
/// qi/ki/wi/bi of the fused indexer, or the materialised score matrix.
SourceArgs addSourceArgs(Emitter &host, KernelArgs &args, IndexerOp fused,
                         Value scores) {
  SourceArgs pos;
  if (fused) {
    pos.qi = args.add(flatBuffer(host, fused.getQi()));
    pos.ki = args.add(flatBuffer(host, fused.getKi()));
    if (fused.getWi())
      pos.wi = args.add(flatBuffer(host, fused.getWi()));
    if (fused.getBi())
      pos.bi = args.add(flatBuffer(host, fused.getBi()));
  } else {
    pos.scores = args.add(flatBuffer(host, scores));
  }
  return pos;
}

/// Inside a kernel: the scores of the tile's rows t0..t0+7 for one key.
class TileScores {
public:
  TileScores(IndexerOp fused, SourceArgs pos, gpu::GPUFuncOp kernel,
             Emitter &e, int64_t L, int64_t rows, Value batch, Value t0,
             Value tid)
      : fused(fused), e(e), L(L), rows(rows), batch(batch), t0(t0), tid(tid) {
    Block &entry = kernel.getBody().front();
    auto arg = [&](int i) { return i < 0 ? Value() : entry.getArgument(i); };
    qi = arg(pos.qi);
    ki = arg(pos.ki);
    wi = arg(pos.wi);
    bi = arg(pos.bi);
    scores = arg(pos.scores);
    if (fused) {
      auto qiType = fused.getQi().getType();
      H = qiType.getDimSize(2);
      DI = qiType.getDimSize(3);
      Type f32 = e.builder().getF32Type();
      qiShared = sharedBuffer(kernel, f32, rows * H * DI);
      weightShared = sharedBuffer(kernel, f32, rows * H);
      biasShared = sharedBuffer(kernel, f32, H);
    }
  }

  /// Stages the tile's pre-scaled queries, head weights and bias in shared
  /// memory (the caller places the barrier). Rows past L read row L-1 and
  /// are never visible.
  void stage() {
    if (!fused)
      return;
    Value cL = e.index(L), cH = e.index(H), cDI = e.index(DI),
          nt = e.index(kThreads), lastRow = e.index(L - 1);
    float scale = fused.getScaleOrDefault();
    Value rowOf = e.mul(batch, cL);
    e.loopStep(tid, e.index(rows * H * DI), nt, [&](Value i) {
      Value r = e.div(i, e.mul(cH, cDI));
      Value rest = arith::RemUIOp::create(e.builder(), e.location(), i,
                                          e.mul(cH, cDI));
      Value t = e.minui(e.add(t0, r), lastRow);
      Value x = e.loadF32(qi, {e.add(e.mul(e.add(rowOf, t), e.mul(cH, cDI)),
                                     rest)});
      e.store(e.mul(x, e.f32(scale)), qiShared, {i});
    });
    e.loopStep(tid, e.index(rows * H), nt, [&](Value i) {
      Value r = e.div(i, cH);
      Value j = arith::RemUIOp::create(e.builder(), e.location(), i, cH);
      Value w = e.f32(1.0);
      if (wi) {
        Value t = e.minui(e.add(t0, r), lastRow);
        Value raw = e.loadF32(wi, {e.add(e.mul(e.add(rowOf, t), cH), j)});
        w = e.inlineRegion(fused.getWeighting(), {raw, j});
      }
      e.store(w, weightShared, {i});
    });
    e.loopStep(tid, cH, nt, [&](Value j) {
      e.store(bi ? e.loadF32(bi, {j}) : e.f32(0.0), biasShared, {j});
    });
  }

  /// The scores I[t0 + r, s] for r = 0..7 (garbage where s > t or t >= L;
  /// the caller masks those).
  SmallVector<Value> rowScores(Value s) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value sLoad = e.minui(s, e.index(L - 1));
    SmallVector<Value> out;
    if (!fused) {
      for (int64_t r = 0; r < rows; ++r) {
        Value t = e.minui(e.add(t0, e.index(r)), e.index(L - 1));
        Value row = e.add(e.mul(batch, e.index(L)), t);
        out.push_back(
            e.loadF32(scores, {e.add(e.mul(row, e.index(L)), sLoad)}));
      }
      return out;
    }
    // The key's indexer row in registers (16-byte vector loads).
    Type elem = cast<MemRefType>(ki.getType()).getElementType();
    int64_t width = 16 / (elem.getIntOrFloatBitWidth() / 8);
    if (DI % width != 0)
      width = 1;
    Value kiBase = e.mul(e.add(e.mul(batch, e.index(L)), sLoad), e.index(DI));
    SmallVector<Value> kiRow;
    for (int64_t d = 0; d < DI; d += width)
      for (Value x : loadLaneRow(b, loc, ki, e.add(kiBase, e.index(d)), width))
        kiRow.push_back(x);
    for (int64_t r = 0; r < rows; ++r) {
      Value score = e.f32(0.0);
      for (int64_t j = 0; j < H; ++j) {
        int64_t base = (r * H + j) * DI;
        Value dot = e.f32(0.0);
        for (int64_t d = 0; d < DI; ++d) {
          Value q = e.load(qiShared, {e.index(base + d)});
          dot = fusedMulAdd(e, q, kiRow[d], dot);
        }
        Value x = e.add(dot, e.load(biasShared, {e.index(j)}));
        Value act = e.inlineRegion(fused.getActivation(), {x, e.index(j)});
        Value w = e.load(weightShared, {e.index(r * H + j)});
        score = fusedMulAdd(e, w, act, score);
      }
      out.push_back(score);
    }
    return out;
  }

private:
  IndexerOp fused;
  Emitter &e;
  int64_t L, rows, H = 0, DI = 0;
  Value batch, t0, tid;
  Value qi, ki, wi, bi, scores;
  Value qiShared, weightShared, biasShared;
};

/// The ids every tile kernel starts from.
struct TileIds {
  Value tid, warp, lane, t0, batch, keyEnd;
};

TileIds tileIds(Emitter &e, int64_t L, int64_t rows) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  TileIds ids;
  ids.tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  ids.batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  ids.warp = e.div(ids.tid, e.index(kWarpSize));
  ids.lane = arith::RemUIOp::create(b, loc, ids.tid, e.index(kWarpSize));
  ids.t0 = e.mul(tile, e.index(rows));
  // The tile's rows see keys 0..t0+7 (and nothing at or past L).
  ids.keyEnd = e.minui(e.add(ids.t0, e.index(rows)), e.index(L));
  return ids;
}

Value u64(Emitter &e, Value i32) {
  return arith::ExtUIOp::create(e.builder(), e.location(),
                                e.builder().getI64Type(), i32);
}
Value i32Of(Emitter &e, Value i64) {
  return arith::TruncIOp::create(e.builder(), e.location(),
                                 e.builder().getI32Type(), i64);
}

/// Sum over the warps of a block of 256 threads, per row: `values[r]` of
/// every thread in, the row totals of `combine` in thread r's smem slot.
/// Lane 0 of each warp writes its warp's value; the caller reads after a
/// barrier.
void publishWarpValue(Emitter &e, const TileIds &ids, Value shared, int64_t r,
                      Value value) {
  Value lane0 = e.cmpi(arith::CmpIPredicate::eq, ids.lane, e.index(0));
  e.ifThen(lane0, [&]() {
    e.store(value, shared, {e.add(e.index(r * kWarps), ids.warp)});
  });
}

/// The four per-row statistics buffers (mean, variance, smallest and
/// largest key), consecutive kernel parameters from `first`.
std::array<Value, 4> rowStatsArgs(Block &entry, int first) {
  return {entry.getArgument(first), entry.getArgument(first + 1),
          entry.getArgument(first + 2), entry.getArgument(first + 3)};
}

//===----------------------------------------------------------------------===//
// stats: mean, variance and key range of every row
//===----------------------------------------------------------------------===//

void buildStatsKernel(gpu::GPUFuncOp kernel, IndexerOp fused, SourceArgs src,
                      int64_t L, int64_t rows, int firstOut) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  auto [meanOut, varOut, minOut, maxOut] = rowStatsArgs(entry, firstOut);
  Type f64 = Float64Type::get(kernel.getContext());
  Type i32 = IntegerType::get(kernel.getContext(), 32);
  Value sumShared = sharedBuffer(kernel, f64, rows * kWarps);
  Value sqShared = sharedBuffer(kernel, f64, rows * kWarps);
  Value minShared = sharedBuffer(kernel, i32, rows * kWarps);
  Value maxShared = sharedBuffer(kernel, i32, rows * kWarps);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  TileIds ids = tileIds(e, L, rows);
  TileScores source(fused, src, kernel, e, L, rows, ids.batch, ids.t0, ids.tid);
  source.stage();
  gpu::BarrierOp::create(b, loc);

  // Per thread and row: f64 sum and sum of squares (exact enough for
  // E[x^2] - E[x]^2 at any L), smallest and largest key.
  SmallVector<Value> init;
  for (int64_t r = 0; r < rows; ++r) {
    init.push_back(e.f64(0.0));
    init.push_back(e.f64(0.0));
    init.push_back(e.i32(-1)); // the largest unsigned key
    init.push_back(e.i32(0));
  }
  SmallVector<Value> acc = e.loopStepCarry(
      e.index(0), ids.keyEnd, e.index(kThreads), init,
      [&](Value s0, ValueRange carried) -> SmallVector<Value> {
        Value s = e.add(s0, ids.tid);
        SmallVector<Value> scores = source.rowScores(s);
        SmallVector<Value> next;
        for (int64_t r = 0; r < rows; ++r) {
          Value t = e.add(ids.t0, e.index(r));
          Value visible = e.andi(e.cmpi(arith::CmpIPredicate::ule, s, t),
                                 e.cmpi(arith::CmpIPredicate::ult, t,
                                        e.index(L)));
          Value x = e.f32ToF64(scores[r]);
          Value x0 = e.select(visible, x, e.f64(0.0));
          Value key = orderKey(e, scores[r]);
          next.push_back(e.add(carried[4 * r], x0));
          next.push_back(fusedMulAdd(e, x0, x0, carried[4 * r + 1]));
          next.push_back(e.select(visible, e.minui(carried[4 * r + 2], key),
                                  carried[4 * r + 2]));
          next.push_back(e.select(visible, e.maxui(carried[4 * r + 3], key),
                                  carried[4 * r + 3]));
        }
        return next;
      });

  for (int64_t r = 0; r < rows; ++r) {
    Value sum = acc[4 * r], sq = acc[4 * r + 1], mn = acc[4 * r + 2],
          mx = acc[4 * r + 3];
    for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2) {
      sum = e.add(sum, shuffleXor64(b, loc, sum, offset));
      sq = e.add(sq, shuffleXor64(b, loc, sq, offset));
      auto shuffle = [&](Value v) {
        return gpu::ShuffleOp::create(b, loc, v, offset, kWarpSize,
                                      gpu::ShuffleMode::XOR)
            .getShuffleResult();
      };
      mn = e.minui(mn, shuffle(mn));
      mx = e.maxui(mx, shuffle(mx));
    }
    publishWarpValue(e, ids, sumShared, r, sum);
    publishWarpValue(e, ids, sqShared, r, sq);
    publishWarpValue(e, ids, minShared, r, mn);
    publishWarpValue(e, ids, maxShared, r, mx);
  }
  gpu::BarrierOp::create(b, loc);

  // Thread r finishes row t0 + r.
  Value t = e.add(ids.t0, ids.tid);
  Value owner = e.andi(
      e.cmpi(arith::CmpIPredicate::ult, ids.tid, e.index(rows)),
      e.cmpi(arith::CmpIPredicate::ult, t, e.index(L)));
  e.ifThen(owner, [&]() {
    Value sum = e.f64(0.0), sq = e.f64(0.0), mn = e.i32(-1), mx = e.i32(0);
    for (int64_t w = 0; w < kWarps; ++w) {
      Value slot = e.add(e.mul(ids.tid, e.index(kWarps)), e.index(w));
      sum = e.add(sum, e.load(sumShared, {slot}));
      sq = e.add(sq, e.load(sqShared, {slot}));
      mn = e.minui(mn, e.load(minShared, {slot}));
      mx = e.maxui(mx, e.load(maxShared, {slot}));
    }
    Value n = e.indexToF64(e.add(t, e.index(1)));
    Value mean = e.div(sum, n);
    Value var = e.sub(e.div(sq, n), e.mul(mean, mean));
    var = arith::MaximumFOp::create(b, loc, var, e.f64(0.0));
    Value row = e.add(e.mul(ids.batch, e.index(L)), t);
    e.store(mean, meanOut, {row});
    e.store(var, varOut, {row});
    e.store(mn, minOut, {row});
    e.store(mx, maxOut, {row});
  });
  gpu::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// vbar: the batch's reference variance and the running-variance update
//===----------------------------------------------------------------------===//

void buildReferenceVarianceKernel(gpu::GPUFuncOp kernel, AdaptiveTopKOp op,
                                  int64_t rows) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  Value vars = entry.getArgument(0), vbarOut = entry.getArgument(1);
  Value running = op.getNewRunningVar() ? entry.getArgument(2) : Value();
  Value newRunning = op.getNewRunningVar() ? entry.getArgument(3) : Value();
  Type f64 = Float64Type::get(kernel.getContext());
  Value partial = sharedBuffer(kernel, f64, kWarps);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value warp = e.div(tid, e.index(kWarpSize));
  Value lane = arith::RemUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value sum = e.loopStepCarry(tid, e.index(rows), e.index(kThreads),
                              ValueRange{e.f64(0.0)},
                              [&](Value i, ValueRange acc) -> SmallVector<Value> {
                                return {e.add(acc[0], e.load(vars, {i}))};
                              })[0];
  for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2)
    sum = e.add(sum, shuffleXor64(b, loc, sum, offset));
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, lane, e.index(0)),
           [&]() { e.store(sum, partial, {warp}); });
  gpu::BarrierOp::create(b, loc);
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, e.index(0)), [&]() {
    Value total = e.f64(0.0);
    for (int64_t w = 0; w < kWarps; ++w)
      total = e.add(total, e.load(partial, {e.index(w)}));
    Value vBar = e.div(total, e.f64(double(rows)));
    e.store(vBar, vbarOut, {e.index(0)});
    if (newRunning) {
      // V_run <- m V_run + (1 - m) V_bar; the first update (V_run == 0) sets it.
      double m = op.getMomentumOrDefault();
      Value old = e.f32ToF64(e.load(running, {}));
      Value blended = e.add(e.mul(e.f64(m), old), e.mul(e.f64(1.0 - m), vBar));
      Value first = e.cmpf(arith::CmpFPredicate::OEQ, old, e.f64(0.0));
      Value updated = e.select(first, vBar, blended);
      e.store(arith::TruncFOp::create(b, loc, b.getF32Type(), updated),
              newRunning, {});
    }
  });
  gpu::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// topk: budgets, radix select, ordered write-out
//===----------------------------------------------------------------------===//

/// Where the topk kernel finds V_bar.
enum class ReferenceSource { None, Scratch, RunningVar };

void buildTopKKernel(gpu::GPUFuncOp kernel, AdaptiveTopKOp op, IndexerOp fused,
                     SourceArgs src, int64_t L, int64_t rows, int firstStats,
                     ReferenceSource refSource, int refArg, int indicesArg,
                     int countsArg) {
  MLIRContext *ctx = kernel.getContext();
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  auto [means, vars, minKeys, maxKeys] = rowStatsArgs(entry, firstStats);
  Value reference = refArg >= 0 ? entry.getArgument(refArg) : Value();
  Value indices = entry.getArgument(indicesArg);
  Value counts = entry.getArgument(countsArg);
  int64_t K = op.getKMax();
  Type i32 = IntegerType::get(ctx, 32);

  // Per-row selection state; mode 0 = radix select, 1 = take every visible
  // position (k_t = n_t), 2 = no such row (t >= L).
  Value modeShared = sharedBuffer(kernel, i32, rows);
  Value prefixShared = sharedBuffer(kernel, i32, rows);
  Value shiftShared = sharedBuffer(kernel, i32, rows);
  Value remainShared = sharedBuffer(kernel, i32, rows);
  Value equalShared = sharedBuffer(kernel, i32, rows);
  Value hist = sharedBuffer(kernel, i32, rows * kBins);
  // Per chunk parity, kind (ties, selected), row and warp: ballot counts.
  Value warpCounts = sharedBuffer(kernel, i32, 2 * 2 * rows * kWarps);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  TileIds ids = tileIds(e, L, rows);
  TileScores source(fused, src, kernel, e, L, rows, ids.batch, ids.t0, ids.tid);
  source.stage();
  Value cL = e.index(L);
  Value zero = e.index(0), one = e.index(1);

  // Thread r sets up row t0 + r.
  e.ifThen(e.cmpi(arith::CmpIPredicate::ult, ids.tid, e.index(rows)),
           [&]() {
    Value r = ids.tid;
    Value t = e.add(ids.t0, r);
    Value valid = e.cmpi(arith::CmpIPredicate::ult, t, cL);
    SmallVector<Value> state = e.ifElse(
        valid,
        [&]() -> SmallVector<Value> {
          Value row = e.add(e.mul(ids.batch, cL), t);
          Value mean = e.load(means, {row}), var = e.load(vars, {row});
          Value vBar = e.f64(0.0);
          if (refSource == ReferenceSource::Scratch)
            vBar = e.load(reference, {zero});
          else if (refSource == ReferenceSource::RunningVar)
            vBar = e.f32ToF64(e.load(reference, {}));
          Value n = e.add(t, one);
          Value k = e.minui(rowBudget(e, op, mean, var, vBar, t), n);
          e.store(e.indexToI32(k), counts, {row});
          Value mn = e.load(minKeys, {row}), mx = e.load(maxKeys, {row});
          // The bits every key of the row shares need no pass.
          Value diff = arith::XOrIOp::create(b, loc, mn, mx);
          Value shift =
              e.sub(e.i32(32), countLeadingZeros(b, loc, diff));
          Value shift64 = u64(e, shift);
          Value top = arith::ShRUIOp::create(b, loc, u64(e, mn), shift64);
          Value prefix = i32Of(e, arith::ShLIOp::create(b, loc, top, shift64));
          Value all = e.cmpi(arith::CmpIPredicate::eq, k, n);
          Value mode = e.select(all, e.i32(1), e.i32(0));
          return {mode, prefix, shift, e.indexToI32(k), e.indexToI32(n)};
        },
        [&]() -> SmallVector<Value> {
          return {e.i32(2), e.i32(0), e.i32(0), e.i32(0), e.i32(0)};
        });
    e.store(state[0], modeShared, {r});
    e.store(state[1], prefixShared, {r});
    e.store(state[2], shiftShared, {r});
    e.store(state[3], remainShared, {r});
    e.store(state[4], equalShared, {r});
  });
  gpu::BarrierOp::create(b, loc);

  // Radix passes: at most ceil(32 / 8); rows finish independently.
  e.loop(zero, e.index((32 + kRadixBits - 1) / kRadixBits), [&](Value) {
    e.loopStep(ids.tid, e.index(rows * kBins), e.index(kThreads),
               [&](Value i) { e.store(e.i32(0), hist, {i}); });
    SmallVector<Value> active, shifts, prefixes;
    Value any = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
    for (int64_t r = 0; r < rows; ++r) {
      Value mode = e.load(modeShared, {e.index(r)});
      Value shift = e.load(shiftShared, {e.index(r)});
      Value a = e.andi(e.cmpi(arith::CmpIPredicate::eq, mode, e.i32(0)),
                       e.cmpi(arith::CmpIPredicate::ugt, shift, e.i32(0)));
      active.push_back(a);
      shifts.push_back(shift);
      prefixes.push_back(e.load(prefixShared, {e.index(r)}));
      any = e.ori(any, a);
    }
    gpu::BarrierOp::create(b, loc);
    e.ifThen(any, [&]() {
      e.loopStep(zero, ids.keyEnd, e.index(kThreads), [&](Value s0) {
        Value s = e.add(s0, ids.tid);
        SmallVector<Value> scores = source.rowScores(s);
        for (int64_t r = 0; r < rows; ++r) {
          Value t = e.add(ids.t0, e.index(r));
          Value visible = e.cmpi(arith::CmpIPredicate::ule, s, t);
          Value key = orderKey(e, scores[r]);
          Value shift64 = u64(e, shifts[r]);
          Value match = e.cmpi(
              arith::CmpIPredicate::eq,
              arith::ShRUIOp::create(b, loc, u64(e, key), shift64),
              arith::ShRUIOp::create(b, loc, u64(e, prefixes[r]), shift64));
          Value bits = e.minui(shifts[r], e.i32(kRadixBits));
          Value low = e.sub(shifts[r], bits);
          Value mask = e.sub(arith::ShLIOp::create(b, loc, e.i32(1), bits),
                             e.i32(1));
          Value digit = arith::AndIOp::create(
              b, loc, arith::ShRUIOp::create(b, loc, key, low), mask);
          Value counted = e.andi(active[r], e.andi(visible, match));
          e.ifThen(counted, [&]() {
            Value slot = e.add(e.index(r * kBins),
                               arith::IndexCastUIOp::create(
                                   b, loc, b.getIndexType(), digit));
            memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addi,
                                        e.i32(1), hist, ValueRange{slot});
          });
        }
      });
    });
    gpu::BarrierOp::create(b, loc);
    // Thread r narrows row r to the bin holding its k-th largest key.
    Value r = ids.tid;
    Value owner =
        e.cmpi(arith::CmpIPredicate::ult, ids.tid, e.index(rows));
    e.ifThen(owner, [&]() {
      Value mode = e.load(modeShared, {r});
      Value shift = e.load(shiftShared, {r});
      Value live = e.andi(e.cmpi(arith::CmpIPredicate::eq, mode, e.i32(0)),
                          e.cmpi(arith::CmpIPredicate::ugt, shift, e.i32(0)));
      e.ifThen(live, [&]() {
        Value remain = e.load(remainShared, {r});
        Value falseV = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
        // From the top bin down: the first bin where the running count
        // reaches `remain` holds the k-th key.
        SmallVector<Value> scan = e.loopCarry(
            zero, e.index(kBins),
            ValueRange{e.i32(0), falseV, e.i32(0), e.i32(0), e.i32(0)},
            [&](Value i, ValueRange c) -> SmallVector<Value> {
              Value d = e.sub(e.index(kBins - 1), i);
              Value h = e.load(hist, {e.add(e.mul(r, e.index(kBins)), d)});
              Value cum = e.add(c[0], h);
              Value hit = e.andi(
                  arith::XOrIOp::create(b, loc, c[1],
                                        arith::ConstantOp::create(
                                            b, loc, b.getBoolAttr(true))),
                  e.cmpi(arith::CmpIPredicate::uge, cum, remain));
              return {cum, e.ori(c[1], hit), e.select(hit, e.indexToI32(d), c[2]),
                      e.select(hit, c[0], c[3]), e.select(hit, h, c[4])};
            });
        Value digit = scan[2], above = scan[3], equal = scan[4];
        Value bits = e.minui(shift, e.i32(kRadixBits));
        Value low = e.sub(shift, bits);
        Value prefix = e.load(prefixShared, {r});
        prefix = e.ori(prefix, arith::ShLIOp::create(b, loc, digit, low));
        e.store(prefix, prefixShared, {r});
        e.store(low, shiftShared, {r});
        e.store(e.sub(remain, above), remainShared, {r});
        e.store(equal, equalShared, {r});
      });
    });
    gpu::BarrierOp::create(b, loc);
  });

  // Write-out: keys above the threshold T, and the ties at T of rank (in
  // position order) >= (#ties - need), i.e. the `need` largest positions.
  SmallVector<Value> modes, thresholds, cuts;
  for (int64_t r = 0; r < rows; ++r) {
    Value idx = e.index(r);
    modes.push_back(e.load(modeShared, {idx}));
    thresholds.push_back(e.load(prefixShared, {idx}));
    cuts.push_back(e.i32ToIndex(
        e.sub(e.load(equalShared, {idx}), e.load(remainShared, {idx}))));
  }
  Value laneMaskLt = NVVM::LaneMaskLtOp::create(b, loc, i32);
  auto countSlot = [&](Value parity, int64_t kind, int64_t r, Value w) {
    Value base = e.mul(e.add(e.mul(parity, e.index(2)), e.index(kind)),
                       e.index(rows));
    return e.add(e.mul(e.add(base, e.index(r)), e.index(kWarps)), w);
  };
  // Sum of the warps' counts before this warp, and over all warps.
  auto prefixAndTotal = [&](Value parity, int64_t kind, int64_t r) {
    Value before = zero, total = zero;
    for (int64_t w = 0; w < kWarps; ++w) {
      Value c = e.i32ToIndex(e.load(warpCounts, {countSlot(parity, kind, r,
                                                           e.index(w))}));
      Value earlier = e.cmpi(arith::CmpIPredicate::ult, e.index(w), ids.warp);
      before = e.add(before, e.select(earlier, c, zero));
      total = e.add(total, c);
    }
    return std::make_pair(before, total);
  };
  Value lane0 = e.cmpi(arith::CmpIPredicate::eq, ids.lane, zero);
  SmallVector<Value> init(2 * rows, zero); // written, ties seen
  SmallVector<Value> written = e.loopStepCarry(
      zero, ids.keyEnd, e.index(kThreads), init,
      [&](Value s0, ValueRange carried) -> SmallVector<Value> {
        Value parity = arith::RemUIOp::create(
            b, loc, e.div(s0, e.index(kThreads)), e.index(2));
        Value s = e.add(s0, ids.tid);
        SmallVector<Value> scores = source.rowScores(s);
        SmallVector<Value> visible, above, tie, tieBallot;
        for (int64_t r = 0; r < rows; ++r) {
          Value t = e.add(ids.t0, e.index(r));
          Value inRow = e.cmpi(arith::CmpIPredicate::ne, modes[r], e.i32(2));
          Value vis = e.andi(inRow, e.cmpi(arith::CmpIPredicate::ule, s, t));
          Value key = orderKey(e, scores[r]);
          visible.push_back(vis);
          above.push_back(e.andi(
              vis, e.cmpi(arith::CmpIPredicate::ugt, key, thresholds[r])));
          tie.push_back(e.andi(
              vis, e.cmpi(arith::CmpIPredicate::eq, key, thresholds[r])));
          tieBallot.push_back(warpBallot(b, loc, tie.back()));
          Value count = e.indexToI32(popCount(b, loc, tieBallot.back()));
          e.ifThen(lane0, [&]() {
            e.store(count, warpCounts, {countSlot(parity, 0, r, ids.warp)});
          });
        }
        gpu::BarrierOp::create(b, loc);
        SmallVector<Value> selected, selBallot, tieTotals;
        for (int64_t r = 0; r < rows; ++r) {
          auto [before, total] = prefixAndTotal(parity, 0, r);
          tieTotals.push_back(total);
          Value inWarp = popCount(
              b, loc, arith::AndIOp::create(b, loc, tieBallot[r], laneMaskLt));
          Value rank = e.add(e.add(carried[2 * r + 1], before), inWarp);
          Value tieTaken =
              e.andi(tie[r], e.cmpi(arith::CmpIPredicate::uge, rank, cuts[r]));
          Value radixTaken = e.andi(
              e.cmpi(arith::CmpIPredicate::eq, modes[r], e.i32(0)),
              e.ori(above[r], tieTaken));
          Value allTaken = e.andi(
              e.cmpi(arith::CmpIPredicate::eq, modes[r], e.i32(1)), visible[r]);
          Value sel = e.ori(radixTaken, allTaken);
          selected.push_back(sel);
          selBallot.push_back(warpBallot(b, loc, sel));
          Value count = e.indexToI32(popCount(b, loc, selBallot.back()));
          e.ifThen(lane0, [&]() {
            e.store(count, warpCounts, {countSlot(parity, 1, r, ids.warp)});
          });
        }
        gpu::BarrierOp::create(b, loc);
        SmallVector<Value> next;
        for (int64_t r = 0; r < rows; ++r) {
          auto [before, total] = prefixAndTotal(parity, 1, r);
          Value inWarp = popCount(
              b, loc, arith::AndIOp::create(b, loc, selBallot[r], laneMaskLt));
          Value pos = e.add(e.add(carried[2 * r], before), inWarp);
          e.ifThen(selected[r], [&]() {
            Value t = e.add(ids.t0, e.index(r));
            Value row = e.add(e.mul(ids.batch, cL), t);
            e.store(e.indexToI32(s), indices,
                    {e.add(e.mul(row, e.index(K)), pos)});
          });
          next.push_back(e.add(carried[2 * r], total));
          next.push_back(e.add(carried[2 * r + 1], tieTotals[r]));
        }
        return next;
      });

  // Pad every real row with -1 after its selected positions.
  for (int64_t r = 0; r < rows; ++r) {
    Value t = e.add(ids.t0, e.index(r));
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, t, cL), [&]() {
      Value row = e.add(e.mul(ids.batch, cL), t);
      e.loopStep(e.add(written[2 * r], ids.tid), e.index(K), e.index(kThreads),
                 [&](Value j) {
                   e.store(e.i32(-1), indices,
                           {e.add(e.mul(row, e.index(K)), j)});
                 });
    });
  }
  gpu::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// indexer: the score matrix itself
//===----------------------------------------------------------------------===//

void buildIndexerKernel(gpu::GPUFuncOp kernel, IndexerOp op, SourceArgs src,
                        int64_t L, int64_t rows, int outArg) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  Value out = entry.getArgument(outArg);
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  TileIds ids = tileIds(e, L, rows);
  TileScores source(op, src, kernel, e, L, rows, ids.batch, ids.t0, ids.tid);
  source.stage();
  gpu::BarrierOp::create(b, loc);
  Value cL = e.index(L);
  e.loopStep(e.index(0), cL, e.index(kThreads), [&](Value s0) {
    Value s = e.add(s0, ids.tid);
    // Chunks past the tile's last row are all masked: no scores needed.
    Value needed = e.cmpi(arith::CmpIPredicate::ult, s0, ids.keyEnd);
    SmallVector<Value> scores = e.ifElse(
        needed, [&]() { return source.rowScores(s); },
        [&]() {
          return SmallVector<Value>(rows, e.f32(-kInf));
        });
    for (int64_t r = 0; r < rows; ++r) {
      Value t = e.add(ids.t0, e.index(r));
      Value inside = e.andi(e.cmpi(arith::CmpIPredicate::ult, t, cL),
                            e.cmpi(arith::CmpIPredicate::ult, s, cL));
      e.ifThen(inside, [&]() {
        Value causal = e.cmpi(arith::CmpIPredicate::ule, s, t);
        Value value = e.select(causal, scores[r], e.f32(-kInf));
        Value row = e.add(e.mul(ids.batch, cL), t);
        e.store(value, out, {e.add(e.mul(row, cL), s)});
      });
    }
  });
  gpu::ReturnOp::create(b, loc);
}

Value launch(Emitter &host, gpu::GPUFuncOp kernel, const KernelArgs &args,
             int64_t gridX, int64_t gridY, int64_t threads) {
  OpBuilder &b = host.builder();
  gpu::KernelDim3 grid{host.index(gridX), host.index(gridY), host.index(1)};
  gpu::KernelDim3 block{host.index(threads), host.index(1), host.index(1)};
  gpu::LaunchFuncOp::create(b, host.location(), kernel, grid, block,
                            /*dynamicSharedMemorySize=*/Value(),
                            args.operands());
  return Value();
}

Value scratch(Emitter &host, Type elem, int64_t n) {
  return memref::AllocOp::create(host.builder(), host.location(),
                                 MemRefType::get({n}, elem));
}

LogicalResult checkStaticOperands(Operation *op) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op->emitOpError(
          "needs static shapes on the GPU path (the runtime specialises the "
          "program per shape before lowering)");
  return success();
}

} // namespace

LogicalResult checkSelectionTiling(Operation *op, int64_t rows) {
  if (rows < 1 || rows > 16)
    return op->emitOpError(fmt::format(
        "the selection tile takes 1 to 16 query rows, but rows-per-tile = {}",
        rows));
  return success();
}

LogicalResult checkIndexerForGPU(IndexerOp op, int64_t rows) {
  if (failed(checkSelectionTiling(op, rows)))
    return failure();
  if (failed(checkStaticOperands(op)))
    return failure();
  int64_t DI = op.getQi().getType().getDimSize(3);
  int64_t H = op.getQi().getType().getDimSize(2);
  if (DI > kMaxIndexerDim)
    return op.emitOpError(fmt::format(
        "GPU indexer keeps a key's indexer row in registers and supports "
        "d_I <= {}, but d_I = {}",
        kMaxIndexerDim, DI));
  if (H * DI * rows * 4 > 24 * 1024)
    return op.emitOpError(fmt::format(
        "GPU indexer stages {} rows of H_I x d_I = {} x {} f32 queries in at "
        "most 24 KiB of shared memory: too large (use fewer rows per tile)",
        rows, H, DI));
  return success();
}

LogicalResult checkSelectionForGPU(AdaptiveTopKOp op, int64_t rows) {
  if (failed(checkSelectionTiling(op, rows)))
    return failure();
  return checkStaticOperands(op);
}

void lowerSelectionToGPU(AdaptiveTopKOp op, IndexerOp fused,
                         gpu::GPUModuleOp kernels, IRRewriter &rewriter,
                         StringRef prefix, int64_t rows) {
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  auto scoresType = op.getScores().getType();
  int64_t B = scoresType.getDimSize(0), L = scoresType.getDimSize(1);
  int64_t tiles = (L + rows - 1) / rows;
  Type f64 = Float64Type::get(ctx), i32 = IntegerType::get(ctx, 32);

  rewriter.setInsertionPoint(op);
  Emitter host(rewriter, loc);
  Value means = scratch(host, f64, B * L), vars = scratch(host, f64, B * L),
        minKeys = scratch(host, i32, B * L),
        maxKeys = scratch(host, i32, B * L);
  Value indices = host.alloc(op.getIndices().getType(), {});
  Value counts = host.alloc(op.getCounts().getType(), {});

  // stats
  {
    KernelArgs args;
    SourceArgs src = addSourceArgs(host, args, fused, op.getScores());
    int first = args.add(means);
    args.add(vars);
    args.add(minKeys);
    args.add(maxKeys);
    auto kernel = createKernel(kernels, loc, (prefix + "_select_stats").str(),
                               args, kThreads);
    buildStatsKernel(kernel, fused, src, L, rows, first);
    launch(host, kernel, args, tiles, B, kThreads);
  }

  // vbar (training)
  ReferenceSource refSource = ReferenceSource::None;
  Value reference;
  Value newRunning;
  if (op.getTraining()) {
    reference = scratch(host, f64, 1);
    refSource = ReferenceSource::Scratch;
    KernelArgs args;
    args.add(vars);
    args.add(reference);
    if (op.getNewRunningVar()) {
      args.add(flatBuffer(host, op.getRunningVar()));
      newRunning = memref::AllocOp::create(rewriter, loc,
                                           MemRefType::get({}, rewriter.getF32Type()));
      args.add(newRunning);
    }
    auto kernel = createKernel(kernels, loc, (prefix + "_select_vbar").str(),
                               args, kThreads);
    buildReferenceVarianceKernel(kernel, op, B * L);
    launch(host, kernel, args, 1, 1, kThreads);
  } else if (op.getRunningVar()) {
    reference = flatBuffer(host, op.getRunningVar());
    refSource = ReferenceSource::RunningVar;
  }

  // topk
  {
    KernelArgs args;
    SourceArgs src = addSourceArgs(host, args, fused, op.getScores());
    int first = args.add(means);
    args.add(vars);
    args.add(minKeys);
    args.add(maxKeys);
    int refArg = reference ? int(args.add(reference)) : -1;
    int indicesArg = args.add(collapse(rewriter, loc, indices));
    int countsArg = args.add(collapse(rewriter, loc, counts));
    auto kernel = createKernel(kernels, loc, (prefix + "_select_topk").str(),
                               args, kThreads);
    buildTopKKernel(kernel, op, fused, src, L, rows, first, refSource, refArg,
                    indicesArg, countsArg);
    launch(host, kernel, args, tiles, B, kThreads);
  }

  SmallVector<Value> results = {
      host.toTensor(indices, op.getIndices().getType()),
      host.toTensor(counts, op.getCounts().getType())};
  if (op.getNewRunningVar())
    results.push_back(host.toTensor(newRunning, op.getNewRunningVar().getType()));
  rewriter.replaceOp(op, results);
  if (fused && fused->use_empty())
    rewriter.eraseOp(fused);
}

void lowerIndexerToGPU(IndexerOp op, gpu::GPUModuleOp kernels,
                       IRRewriter &rewriter, StringRef prefix, int64_t rows) {
  Location loc = op.getLoc();
  auto qiType = op.getQi().getType();
  int64_t B = qiType.getDimSize(0), L = qiType.getDimSize(1);
  rewriter.setInsertionPoint(op);
  Emitter host(rewriter, loc);
  Value out = host.alloc(op.getScores().getType(), {});
  KernelArgs args;
  SourceArgs src = addSourceArgs(host, args, op, Value());
  int outArg = args.add(collapse(rewriter, loc, out));
  auto kernel =
      createKernel(kernels, loc, (prefix + "_indexer").str(), args, kThreads);
  buildIndexerKernel(kernel, op, src, L, rows, outArg);
  launch(host, kernel, args, (L + rows - 1) / rows, B,
         kThreads);
  rewriter.replaceOp(op, host.toTensor(out, op.getScores().getType()));
}

} // namespace gsa::detail
