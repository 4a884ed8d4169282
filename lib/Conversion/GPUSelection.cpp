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
// On sm_90a the stats kernel instead runs 32 rows per CTA on wgmma with its
// key chunks staged in shared memory (TileScores' warpgroup form). Sample
// and stats start their longest tiles first.
//
// Kernels (one launch each):
//   stats  - per row: mean and population variance (f64 sums), and the
//            smallest and largest order key (see orderKey; collecting
//            candidates, the largest only and the smallest 0);
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

#include <algorithm>
#include <array>
#include <cmath>
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
/// Indexer heads the tensor-core forms take (4 head groups of 4).
constexpr int64_t kMaxTensorCoreHeads = 16;
/// Keys per chunk of the warpgroup (wgmma) sweep: the N of its products.
constexpr int64_t kWarpgroupKeys = 64;
/// The wgmma statistics kernel's register cap: 3 CTAs per SM with 16
/// queries per warpgroup, 2 with 32 (the head-pairs form).
constexpr int32_t kWarpgroupStatsRegisters = 80;
constexpr int32_t kWarpgroupPairStatsRegisters = 128;
/// The sample kernel's: two CTAs of 256 threads per SM (as many as its
/// 12-row histograms allow). Uncapped, ptxas gave the sweep with its key
/// fragments loaded a round ahead 150 (one CTA); at 128 it spills nothing.
constexpr int32_t kSampleRegisters = 128;
/// k_max up to which the sampled selection's finish kernel sorts a row's
/// selection in shared memory (32 KiB).
constexpr int64_t kMaxSampledBudget = 8192;

/// Positions of a score source's buffers among a kernel's parameters.
struct SourceArgs {
  int qi = -1, ki = -1, wi = -1, bi = -1, scores = -1;
  /// ki's TMA tensor map (the wgmma stats sweep by TMA), if any.
  int keyMap = -1;
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

/// The ids every tile kernel starts from.
struct TileIds {
  Value tid, warp, lane, t0, batch, keyEnd;
};

TileIds tileIds(Emitter &e, int64_t L, int64_t rows, bool longestFirst = false) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  TileIds ids;
  ids.tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  // `longestFirst`: the last tiles first. A tile's sweep is as long as its
  // first row, and blocks start in index order, so the longest ones would
  // otherwise form the grid's last wave and leave most SMs idle while they
  // finish (128K: stats 16.3 -> 15.1 ms, docs/perf-log.md 2026-12-04).
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  if (longestFirst)
    tile = e.sub(
        e.sub(gpu::GridDimOp::create(b, loc, gpu::Dimension::x), e.index(1)),
        tile);
  ids.batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  ids.warp = e.div(ids.tid, e.index(kWarpSize));
  ids.lane = arith::RemUIOp::create(b, loc, ids.tid, e.index(kWarpSize));
  ids.t0 = e.mul(tile, e.index(rows));
  // The tile's rows see keys 0..t0+rows-1 (and nothing at or past L).
  ids.keyEnd = e.minui(e.add(ids.t0, e.index(rows)), e.index(L));
  return ids;
}

/// Whether an activation region is exactly `gsa.sigmoid` of its input.
bool isSigmoid(Region &region) {
  Block &block = region.front();
  if (block.getOperations().size() != 2)
    return false;
  auto sigmoid = dyn_cast<SigmoidOp>(block.front());
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  return sigmoid && yield && sigmoid.getX() == block.getArgument(0) &&
         yield.getValues().front() == sigmoid.getResult();
}

/// One score a thread holds in an iteration of a sweep over the keys: tile
/// row `row` (index, 0..rows-1), key position `s`.
struct Visit {
  Value row, s, score;
  /// The visit slot whose statistics it updates (-1: its position in the
  /// iteration's list, one visit per slot).
  int64_t slot = -1;
};

/// Inside a kernel: the scores of the tile's rows for the keys of one
/// iteration, and how the threads of a warp share them.
///
/// CUDA cores (any shape): an iteration covers 256 keys, thread i key s0+i
/// with its ki row in registers, and every row of the tile (queries staged,
/// pre-scaled, in shared memory): `rows` visits per thread; all lanes of a
/// warp hold the same rows.
///
/// Tensor cores (bf16/f16, H_I 1 to 16, d_I % 16 == 0, rows % 4 == 0): the
/// products qi . ki are m16n8k16 mma tiles, M = 4 queries x 4 heads (row
/// 4j + q), N = 8 keys, K = 16 of d_I, fp32 accumulators. An iteration
/// covers 64 keys, 8 per warp. Lane (g = lane/4, c = lane%4) holds heads
/// j = g/4 and g/4 + 2 of query g%4 for keys 2c and 2c+1 of its warp's 8;
/// one xor-16 shuffle adds the other two heads, after which lanes < 16 take
/// key 2c and lanes >= 16 key 2c+1: rows/4 visits per thread (rows 4m +
/// g%4), each (row, key) held by exactly one lane. The A fragments (the
/// tile's queries) stay in registers for the whole kernel. Other head
/// counts than 4 go in groups of 4 heads in this layout (the last padded
/// with heads of weight 0): one mma chain per group, the groups' sums
/// added in the lane before the shuffle (addHeadPairs, finishVisit).
///
/// Warpgroup form (the stats kernel on sm_90a, 32 rows per tile): each
/// warpgroup's 16 queries x 4 heads are the M = 64 of wgmma m64n64k16,
/// warp w's 16 rows its queries 4w..4w+3 in the same 4j + q order; the CTA
/// stages each 64-key chunk of ki in a shared ring (cp.async, 128-byte
/// swizzle) that both warpgroups read through descriptors. The accumulators
/// of an 8-key n-tile have the m16n8 layout, so the epilogue is the one
/// above: one visit slot per thread, 8 visits per chunk.
class TileScores {
public:
  TileScores(IndexerOp fused, SourceArgs pos, gpu::GPUFuncOp kernel,
             Emitter &e, int64_t L, int64_t rows, const TileIds &ids,
             bool tensorCores, int64_t warpgroupStages = 0,
             int64_t tmaMode = 0)
      : fused(fused), e(e), L(L), rows(rows), ids(ids) {
    Block &entry = kernel.getBody().front();
    auto arg = [&](int i) { return i < 0 ? Value() : entry.getArgument(i); };
    qi = arg(pos.qi);
    ki = arg(pos.ki);
    wi = arg(pos.wi);
    bi = arg(pos.bi);
    scores = arg(pos.scores);
    if (!fused)
      return;
    auto qiType = fused.getQi().getType();
    H = qiType.getDimSize(2);
    DI = qiType.getDimSize(3);
    elem = qiType.getElementType();
    mma = tensorCores && usable(fused, rows);
    // The tensor-core forms take the heads in groups of 4 (the M = 16 of an
    // mma tile is 4 queries x 4 heads); a last group of fewer heads is
    // padded with heads of weight 0, bias 0 and zero queries.
    groups = mma ? (H + 3) / 4 : 1;
    stagedHeads = mma ? 4 * groups : H;
    if (warpgroupStages > 0 && warpgroupUsable(fused, rows)) {
      warpgroup = true;
      headPairs = rows == 8 * kWarps;
      stages = warpgroupStages;
      // 1024-byte aligned: each slot is whole 128-byte swizzle atoms.
      ring = sharedBuffer(kernel, elem, stages * kWarpgroupKeys * DI,
                          /*alignment=*/1024);
      if (tmaMode > 0 && pos.keyMap >= 0) {
        this->tmaMode = tmaMode;
        keyMap = arg(pos.keyMap);
        Type i64 = e.builder().getI64Type();
        fullBars = sharedBuffer(kernel, i64, stages, /*alignment=*/8);
        if (tmaMode == 2)
          emptyBars = sharedBuffer(kernel, i64, stages, /*alignment=*/8);
      }
      if (foldsAffine(fused)) {
        affineInProducts = true;
        // Only the first 16 columns are read, but the 128-byte swizzle
        // makes the block 128-byte rows. Without a bias there is no step
        // to add it.
        if (bi)
          ones = sharedBuffer(kernel, elem, kWarpgroupKeys * 64,
                              /*alignment=*/1024);
      }
    }
    Type f32 = e.builder().getF32Type();
    if (!mma)
      qiShared = sharedBuffer(kernel, f32, rows * H * DI);
    weightShared = sharedBuffer(kernel, f32, rows * stagedHeads);
    biasShared = sharedBuffer(kernel, f32, stagedHeads);
  }

  /// Whether the tensor-core form applies to this indexer and tile: 16-bit
  /// inputs, H_I up to kMaxTensorCoreHeads (in groups of 4 heads, see
  /// groups), d_I whole k-steps, whole 4-query mma tiles.
  static bool usable(IndexerOp op, int64_t rows) {
    auto qiType = op.getQi().getType();
    Type elem = qiType.getElementType();
    int64_t H = qiType.getDimSize(2);
    return (elem.isBF16() || elem.isF16()) &&
           op.getKi().getType().getElementType() == elem && H >= 1 &&
           H <= kMaxTensorCoreHeads && qiType.getDimSize(3) % 16 == 0 &&
           rows % 4 == 0;
  }

  /// Head groups of the tensor-core forms (4 heads each, the last padded).
  static int64_t headGroups(IndexerOp op) {
    return (op.getQi().getType().getDimSize(2) + 3) / 4;
  }

  /// Whether the warpgroup form applies: the tensor-core form's shapes,
  /// d_I whole 128-byte rows (64 16-bit elements) for the swizzled slots,
  /// and 4 queries per warp (one product per head group and key chunk),
  /// or 8 with exactly 4 heads (the head-pairs form).
  static bool warpgroupUsable(IndexerOp op, int64_t rows) {
    int64_t H = op.getQi().getType().getDimSize(2);
    return usable(op, rows) && op.getQi().getType().getDimSize(3) % 64 == 0 &&
           (rows == 4 * kWarps || (rows == 8 * kWarps && H == 4));
  }

  /// Whether scale and bias can move into the products exactly: the
  /// sigmoid activation (x / 2 is what tanh takes), bf16 inputs (f32's
  /// exponent range: a power-of-two scaling neither overflows nor turns
  /// subnormal, as it can in f16), scale / 2 a power of two (the queries
  /// scaled by it stay exact) and a bf16 bias or none (bias / 2 exact).
  static bool foldsAffine(IndexerOp op) {
    if (!isSigmoid(op.getActivation()) ||
        !op.getQi().getType().getElementType().isBF16())
      return false;
    int exponent = 0;
    float half = 0.5f * op.getScaleOrDefault();
    if (!(half > 0) || std::frexp(half, &exponent) != 0.5f)
      return false;
    Value bias = op.getBi();
    return !bias ||
           cast<ShapedType>(bias.getType()).getElementType().isBF16();
  }

  /// Whether the products run on tensor cores (8-key n-tiles per warp).
  bool tensorCores() const { return mma; }
  /// Whether they run on wgmma over keys staged in shared memory.
  bool warpgroupProducts() const { return warpgroup; }
  /// Warpgroup form: the parts of a chunk whose visits come one after the
  /// other (warpgroupVisits).
  int64_t chunkParts() const { return headPairs ? 2 : 1; }

  /// Keys per iteration of a sweep.
  int64_t chunk() const {
    return warpgroup ? kWarpgroupKeys : mma ? kWarps * 8 : kThreads;
  }
  /// Visit slots per thread (rows it holds).
  int64_t slots() const { return warpgroup ? 1 : mma ? rows / 4 : rows; }

  /// The tile row of a thread's visit slot m (the same in every iteration).
  Value slotRow(int64_t m) {
    if (!mma)
      return e.index(m);
    if (headPairs)
      return e.add(e.mul(ids.warp, e.index(8)),
                   arith::ShRUIOp::create(e.builder(), e.location(), ids.lane,
                                          e.index(2)));
    if (warpgroup)
      return e.add(e.mul(ids.warp, e.index(4)), queryInGroup());
    return e.add(e.index(4 * m), queryInGroup());
  }

  /// Xor offsets that reach every lane of the warp holding the same rows.
  SmallVector<int32_t> rowXors() const {
    if (!mma)
      return {16, 8, 4, 2, 1};
    if (headPairs)
      return {2, 1};
    return {16, 2, 1};
  }

  /// The lane that speaks for its rows in its warp.
  Value isRowLeader() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    if (!mma)
      return e.cmpi(arith::CmpIPredicate::eq, ids.lane, e.index(0));
    Value bits = arith::AndIOp::create(b, loc, ids.lane,
                                       e.index(headPairs ? 0x3 : 0x13));
    return e.cmpi(arith::CmpIPredicate::eq, bits, e.index(0));
  }

  /// Ballot masks: the lanes holding this lane's rows, and of those the
  /// ones whose key comes before this lane's.
  Value rowLanes() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    if (!mma)
      return e.i32(-1);
    Value base = e.indexToI32(e.mul(queryInGroup(), e.index(4)));
    Value nibbles = e.i32(0x000F000F);
    return arith::ShLIOp::create(b, loc, nibbles, base);
  }
  Value lowerLanes() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    if (!mma)
      return NVVM::LaneMaskLtOp::create(b, loc, b.getI32Type());
    // Key offset 2c + hi: lanes with a smaller c (either half), and for
    // the upper half the lane of the lower half with the same c.
    Value c = e.indexToI32(arith::AndIOp::create(b, loc, ids.lane, e.index(3)));
    Value hi = e.indexToI32(arith::ShRUIOp::create(b, loc, ids.lane, e.index(4)));
    Value base = e.indexToI32(e.mul(queryInGroup(), e.index(4)));
    Value below = e.sub(arith::ShLIOp::create(b, loc, e.i32(1), c), e.i32(1));
    Value pairs = e.ori(below, arith::ShLIOp::create(b, loc, below, e.i32(16)));
    Value sameC = arith::ShLIOp::create(b, loc, hi, c); // bit c if hi
    return arith::ShLIOp::create(b, loc, e.ori(pairs, sameC), base);
  }

  /// A staged head index (index) as one of the indexer's: a padding head
  /// of the tensor-core head groups (>= H_I) reads head H_I - 1.
  Value realHead(Value head) {
    return stagedHeads == H ? head : e.minui(head, e.index(H - 1));
  }
  /// Whether a staged head index is one of the indexer's heads (i1).
  Value isRealHead(Value head) {
    return e.cmpi(arith::CmpIPredicate::ult, head, e.index(H));
  }

  /// Stages the head weights and bias (and for CUDA cores the pre-scaled
  /// queries) in shared memory; the caller places the barrier. Rows past L
  /// read row L-1 and are never visible.
  void stage() {
    if (!fused)
      return;
    Value cL = e.index(L), cH = e.index(H), cDI = e.index(DI),
          nt = e.index(kThreads), lastRow = e.index(L - 1);
    float scale = fused.getScaleOrDefault();
    Value rowOf = e.mul(ids.batch, cL);
    if (!mma)
      e.loopStep(ids.tid, e.index(rows * H * DI), nt, [&](Value i) {
        Value r = e.div(i, e.mul(cH, cDI));
        Value rest = arith::RemUIOp::create(e.builder(), e.location(), i,
                                            e.mul(cH, cDI));
        Value t = e.minui(e.add(ids.t0, r), lastRow);
        Value x = e.loadF32(
            qi, {e.add(e.mul(e.add(rowOf, t), e.mul(cH, cDI)), rest)});
        e.store(e.mul(x, e.f32(scale)), qiShared, {i});
      });
    // Padding heads (j >= H, tensor-core head groups) weigh 0 and have
    // bias 0; their loads read head H - 1.
    Value cStaged = e.index(stagedHeads);
    auto padded = [&](Value j, Value x) {
      if (stagedHeads == H)
        return x;
      return e.select(isRealHead(j), x, e.f32(0.0));
    };
    e.loopStep(ids.tid, e.index(rows * stagedHeads), nt, [&](Value i) {
      Value r = e.div(i, cStaged);
      Value j = arith::RemUIOp::create(e.builder(), e.location(), i, cStaged);
      Value w = e.f32(1.0);
      if (wi) {
        Value t = e.minui(e.add(ids.t0, r), lastRow);
        Value raw =
            e.loadF32(wi, {e.add(e.mul(e.add(rowOf, t), cH), realHead(j))});
        w = e.inlineRegion(fused.getWeighting(), {raw, realHead(j)});
      }
      e.store(padded(j, w), weightShared, {i});
    });
    e.loopStep(ids.tid, cStaged, nt, [&](Value j) {
      e.store(padded(j, bi ? e.loadF32(bi, {realHead(j)}) : e.f32(0.0)),
              biasShared, {j});
    });
    if (ones) {
      // Key row r of the block: d = 0 (its first 16-byte piece, stored at
      // piece r % 8 by the swizzle) is 1, every other element 0.
      OpBuilder &b = e.builder();
      Location loc = e.location();
      Value one = arith::ConstantOp::create(b, loc, b.getFloatAttr(elem, 1.0));
      Value zero = arith::ConstantOp::create(b, loc, b.getFloatAttr(elem, 0.0));
      e.loopStep(ids.tid, e.index(kWarpgroupKeys * 64), nt, [&](Value i) {
        Value r = e.div(i, e.index(64));
        Value first = swizzledPieceOffset(e, r, e.index(0), kWarpgroupKeys, 8);
        e.store(e.select(e.cmpi(arith::CmpIPredicate::eq, i, first), one, zero),
                ones, {i});
      });
    }
  }

  /// After the staging barrier: the tensor-core form's per-thread
  /// registers (A fragments, head weights and biases of its heads).
  void prepare() {
    if (!mma)
      return;
    if (headPairs)
      return prepareHeadPairs();
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value g = arith::ShRUIOp::create(b, loc, ids.lane, e.index(2));
    Value c = arith::AndIOp::create(b, loc, ids.lane, e.index(3));
    Value j0 = arith::ShRUIOp::create(b, loc, g, e.index(2));
    Value j2 = e.add(j0, e.index(2));
    // Per head group: the lane's two heads (4 group + j0, 4 group + j2),
    // their biases and, per slot, their weights, flattened [group][2].
    // The accumulators start at a 0.0 that is not a constant op.
    zeroAccumulator = arith::BitcastOp::create(
        b, loc, b.getF32Type(), opaqueZeroI32(b, loc, ids.lane));
    sigmoidActivation = isSigmoid(fused.getActivation());
    for (int64_t group = 0; group < groups; ++group)
      for (Value j : {j0, j2}) {
        heads.push_back(group == 0 ? j : e.add(e.index(4 * group), j));
        bias.push_back(e.load(biasShared, {heads.back()}));
      }
    if (sigmoidActivation)
      for (Value &x : bias)
        x = e.mul(x, e.f32(0.5));
    Value slice = e.mul(c, e.index(DI / 4));
    Value pairColumn = e.mul(c, e.index(2));
    Value zeroReg = opaqueZeroI32(b, loc, ids.lane);
    Value cStaged = e.index(stagedHeads);
    for (int64_t m = 0; m < slots(); ++m) {
      Value r = slotRow(m);
      Value t = e.minui(e.add(ids.t0, r), e.index(L - 1));
      Value row = e.add(e.mul(ids.batch, e.index(L)), t);
      SmallVector<Value> w;
      for (Value head : heads)
        w.push_back(e.load(weightShared, {e.add(e.mul(r, cStaged), head)}));
      weights.push_back(w);
      if (sigmoidActivation) {
        // sum_h w_h sigmoid(x_h) = sum_h (w_h/2) tanh(x_h/2) + sum_h w_h/2:
        // per head one fma, one tanh, one fma instead of five operations.
        Value half = e.f32(0.5);
        Value constant = e.f32(0.0);
        for (int64_t j = 0; j < H; ++j)
          constant = e.add(constant, e.load(weightShared,
                                            {e.add(e.mul(r, cStaged), e.index(j))}));
        // Half of it to each of the two lanes whose head pairs make up a
        // score (finishVisit): the first group's chain of fmas starts from
        // it (addHeadPairs).
        rowConstant.push_back(e.mul(constant, e.f32(0.25)));
        for (Value &x : weights.back())
          x = e.mul(x, half);
      }
      // The d_I dimension in the lane-contiguous order of keyFragments:
      // k-step ks's pairs at ks * 4 and ks * 4 + 2 of lane c's slice.
      // Per head group, then k-step (a padding head's registers are 0).
      SmallVector<SmallVector<Value>> frags;
      for (int64_t group = 0; group < groups; ++group)
        for (int64_t ks = 0; ks < DI / 16; ++ks) {
          auto at = [&](Value head, int64_t extra) {
            Value base = e.mul(e.add(e.mul(row, e.index(H)), realHead(head)),
                               e.index(DI));
            // wgmma reads the keys from shared memory in d order: the A
            // fragments' k is d (columns 2c, 2c+1 and 2c+8, 2c+9 of k-step
            // ks); the mma.sync form permutes d (see keyFragments).
            Value reg =
                warpgroup
                    ? loadPair(b, loc, qi,
                               e.add(base, e.add(pairColumn,
                                                 e.index(ks * 16 + 4 * extra))))
                    : loadPair(b, loc, qi,
                               e.add(base, e.add(slice, e.index(ks * 4 + extra))));
            if (stagedHeads == H)
              return reg;
            return e.select(isRealHead(head), reg, zeroReg);
          };
          Value h0 = heads[2 * group], h2 = heads[2 * group + 1];
          frags.push_back({at(h0, 0), at(h2, 0), at(h0, 2), at(h2, 2)});
        }
      aFrags.push_back(frags);
    }
    if (affineInProducts) {
      // The queries times scale / 2 (a power of two: exact), and per head
      // group the bias step's A: row g (head j0) and row g + 8 (head j2)
      // hold bias / 2 at k = 0, i.e. in the low half of registers 0 and 1
      // of lanes c = 0.
      float half = 0.5f * fused.getScaleOrDefault();
      for (auto &frags : aFrags)
        for (auto &regs : frags)
          for (Value &reg : regs)
            reg = scaledPair(reg, half);
      if (ones) {
        Value first = e.cmpi(arith::CmpIPredicate::eq, c, e.index(0));
        auto biasReg = [&](Value x) {
          return e.select(first, packPair(b, loc, elem, x, e.f32(0.0)),
                          zeroReg);
        };
        for (int64_t group = 0; group < groups; ++group)
          biasFrags.push_back({biasReg(bias[2 * group]),
                               biasReg(bias[2 * group + 1]), zeroReg,
                               zeroReg});
      }
    }
  }

  /// Head-pairs form: the lane's query is tile row slotRow(0) (8 per warp,
  /// one per g = lane / 4); product 0 holds its heads 0 and 1 (rows g and
  /// g + 8 of the warp's 16), product 1 its heads 2 and 3, so that every
  /// accumulator of a key the lane holds belongs to the lane's own query.
  void prepareHeadPairs() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value c = arith::AndIOp::create(b, loc, ids.lane, e.index(3));
    sigmoidActivation = isSigmoid(fused.getActivation());
    Value r = slotRow(0);
    Value t = e.minui(e.add(ids.t0, r), e.index(L - 1));
    Value row = e.add(e.mul(ids.batch, e.index(L)), t);
    SmallVector<Value> w;
    Value constant = e.f32(0.0);
    for (int64_t j = 0; j < H; ++j) {
      heads.push_back(e.index(j));
      Value x = e.load(biasShared, {e.index(j)});
      bias.push_back(sigmoidActivation ? e.mul(x, e.f32(0.5)) : x);
      Value wj = e.load(weightShared, {e.add(e.mul(r, e.index(H)), e.index(j))});
      constant = e.add(constant, wj);
      w.push_back(sigmoidActivation ? e.mul(wj, e.f32(0.5)) : wj);
    }
    weights.push_back(w);
    // sum_h w_h sigmoid(x_h) = sum_h (w_h/2) tanh(x_h/2) + sum_h w_h/2.
    rowConstant.push_back(e.mul(constant, e.f32(0.5)));
    Value pairColumn = e.mul(c, e.index(2));
    float half = 0.5f * fused.getScaleOrDefault();
    Value zeroReg = opaqueZeroI32(b, loc, ids.lane);
    Value first = e.cmpi(arith::CmpIPredicate::eq, c, e.index(0));
    for (int64_t p = 0; p < 2; ++p) {
      SmallVector<SmallVector<Value>> frags;
      for (int64_t ks = 0; ks < DI / 16; ++ks) {
        auto at = [&](int64_t j, int64_t extra) {
          Value base = e.mul(e.add(e.mul(row, e.index(H)), e.index(j)),
                             e.index(DI));
          Value reg = loadPair(
              b, loc, qi,
              e.add(base, e.add(pairColumn, e.index(ks * 16 + 4 * extra))));
          return affineInProducts ? scaledPair(reg, half) : reg;
        };
        frags.push_back({at(2 * p, 0), at(2 * p + 1, 0), at(2 * p, 2),
                         at(2 * p + 1, 2)});
      }
      if (affineInProducts && ones) {
        // The bias step's A: rows g and g + 8 hold the heads' bias / 2 at
        // k = 0 (the low half of registers 0 and 1 of lanes c = 0).
        auto biasReg = [&](Value x) {
          return e.select(first, packPair(b, loc, elem, x, e.f32(0.0)),
                          zeroReg);
        };
        frags.push_back({biasReg(bias[2 * p]), biasReg(bias[2 * p + 1]),
                         zeroReg, zeroReg});
      }
      pairFrags.push_back(frags);
    }
  }

  /// Head-pairs form: the score of the lane's query from its four heads'
  /// products.
  Value fourHeadScore(ArrayRef<Value> dots) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    float scale = fused.getScaleOrDefault();
    if (!sigmoidActivation) {
      Value score = e.f32(0.0);
      for (int64_t h = 0; h < H; ++h) {
        Value x = fusedMulAdd(e, dots[h], e.f32(scale), bias[h]);
        Value act = e.inlineRegion(fused.getActivation(), {x, heads[h]});
        score = fusedMulAdd(e, weights[0][h], act, score);
      }
      return score;
    }
    Value score = rowConstant[0];
    for (int64_t h = 0; h < H; ++h) {
      Value x = dots[h];
      if (!affineInProducts)
        x = fusedMulAdd(e, x, e.f32(0.5f * scale), bias[h]);
      score = fusedMulAdd(e, weights[0][h],
                          ptxUnary(b, loc, "tanh.approx.f32", x), score);
    }
    return score;
  }

  /// Head-pairs form: the visits of half `h` (32 keys) of chunk `index`
  /// from its landed slot: both products (m64n32k16 chains, 16 accumulators
  /// each), then per 8-key n-tile the lane's keys 2c and 2c + 1: 8 visits
  /// per thread and half, all of its one query.
  SmallVector<Visit> headPairVisits(Value index, int64_t h) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value slotAddress = sharedAddress(e, ring, slotOffset(index));
    int64_t steps = DI / 16, halfKeys = kWarpgroupKeys / 2;
    int64_t accN = halfKeys / 2, blockBytes = kWarpgroupKeys * 128;
    int64_t products = steps + (ones ? 1 : 0);
    StringRef kind = elem.isBF16() ? "bf16" : "f16";
    Value firstDescriptor = matrixDescriptor(e, slotAddress, 16, 1024);
    Value onesDescriptor =
        ones ? matrixDescriptor(e, sharedAddress(e, ones, e.index(0)), 16, 1024)
             : Value();
    Value c = arith::AndIOp::create(b, loc, ids.lane, e.index(3));
    Value s0 = e.mul(index, e.index(kWarpgroupKeys));
    Value row = slotRow(0);
    // Operands: 2 x accN accumulators, per product and k-step 4 A
    // registers, per k-step one B descriptor (both products read the same
    // keys), the predicate's i32.
    SmallVector<Value> operands;
    std::string constraints;
    for (int64_t i = 0; i < 2 * accN; ++i)
      constraints += "=f,";
    for (int64_t p = 0; p < 2; ++p)
      for (int64_t ks = 0; ks < products; ++ks) {
        llvm::append_range(operands, pairFrags[p][ks]);
        constraints += "r,r,r,r,";
      }
    int64_t firstDesc = 2 * accN + 8 * products;
    for (int64_t ks = 0; ks < products; ++ks) {
      int64_t offset = (ks / 4) * blockBytes + (ks % 4) * 32 +
                       h * (halfKeys / 8) * 1024;
      operands.push_back(ks == steps
                             ? onesDescriptor
                             : offsetDescriptor(e, firstDescriptor, offset));
      constraints += "l,";
    }
    int64_t flag = firstDesc + products;
    operands.push_back(e.i32(0));
    constraints += "r";
    std::string code = fmt::format(
        "{{\n.reg .pred p, q;\nsetp.ne.b32 p, ${0}, 0;\nsetp.eq.b32 q, "
        "${0}, 0;\nwgmma.fence.sync.aligned;\n",
        flag);
    for (int64_t p = 0; p < 2; ++p)
      for (int64_t ks = 0; ks < products; ++ks)
        code += wgmmaLine(halfKeys, kind, accN,
                          2 * accN + 4 * (p * products + ks),
                          ks == 0 ? "p" : "q", /*transposeB=*/0,
                          /*accFirst=*/p * accN,
                          /*descriptor=*/firstDesc + ks);
    code += "wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned "
            "0;\n}";
    SmallVector<Value> acc =
        inlineAsmF32Results(b, loc, code, operands, constraints, 2 * accN);
    if (h == chunkParts() - 1)
      releaseChunk(index);
    // Accumulators of n-tile n: (row g, key 2c), (g, 2c+1), (g+8, 2c),
    // (g+8, 2c+1): product 0 heads 0 / 1, product 1 heads 2 / 3.
    SmallVector<Visit> out;
    for (int64_t n = 0; n < halfKeys / 8; ++n)
      for (int64_t k = 0; k < 2; ++k) {
        Value score = fourHeadScore(
            {acc[4 * n + k], acc[4 * n + 2 + k], acc[accN + 4 * n + k],
             acc[accN + 4 * n + 2 + k]});
        Value key = e.add(s0, e.add(e.index(h * halfKeys + 8 * n + k),
                                    e.mul(c, e.index(2))));
        Visit v{row, key, score};
        v.slot = 0;
        out.push_back(v);
      }
    return out;
  }

  /// A register of two `elem` values, each times `factor` (a power of two).
  Value scaledPair(Value reg, float factor) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value word = vector::FromElementsOp::create(
        b, loc, VectorType::get({1}, b.getI32Type()), ValueRange{reg});
    Value pair =
        vector::BitCastOp::create(b, loc, VectorType::get({2}, elem), word);
    SmallVector<Value> halves;
    for (int64_t i = 0; i < 2; ++i)
      halves.push_back(e.mul(
          e.toF32(vector::ExtractOp::create(b, loc, pair, ArrayRef<int64_t>{i})),
          e.f32(factor)));
    return packPair(b, loc, elem, halves[0], halves[1]);
  }

  /// The visits of the iteration covering keys [s0, s0 + chunk()).
  SmallVector<Visit> visits(Value s0) {
    if (mma)
      return tensorCoreVisits(e.add(s0, e.mul(ids.warp, e.index(8))));
    Value s = e.add(s0, ids.tid);
    SmallVector<Value> values = rowScores(s);
    SmallVector<Visit> out;
    for (int64_t r = 0; r < rows; ++r)
      out.push_back({e.index(r), s, values[r]});
    return out;
  }

private:
  /// Query q of the 4 of a 16-row mma tile that this lane's rows belong to.
  Value queryInGroup() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    return arith::AndIOp::create(
        b, loc, arith::ShRUIOp::create(b, loc, ids.lane, e.index(2)),
        e.index(3));
  }

  SmallVector<Visit> tensorCoreVisits(Value warpBase) {
    return visitsWith(keyFragments(warpBase), warpBase);
  }

public:
  /// Tensor cores: the B fragments of the 8 keys [warpBase, warpBase + 8)
  /// (2 registers per k-step), loads only, so that a sweep can issue the
  /// next iteration's loads before this one's products (visitsWith).
  ///
  /// The products sum over d_I in any order, so the k index of the mma is
  /// a permutation of d: lane c's B registers of every k-step come from
  /// one contiguous slice of the key's row, d in [c d_I/4, (c+1) d_I/4)
  /// (k-step ks: pairs at 4 ks and 4 ks + 2 of the slice), and the A
  /// fragments (prepare) use the same order. One warp load then moves 16
  /// bytes per lane instead of 4: the sweeps were bound by L1 wavefronts
  /// (ncu: L1/TEX throughput 99.5%, 8 lines per 128 useful bytes).
  ///
  /// `inBounds`: the caller knows every key is below L, so the clamp to
  /// L - 1 (four 64-bit integer instructions per load) is left out.
  SmallVector<Value> keyFragments(Value warpBase, bool inBounds = false) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value g = arith::ShRUIOp::create(b, loc, ids.lane, e.index(2));
    Value c = arith::AndIOp::create(b, loc, ids.lane, e.index(3));
    // Column n = g is key warpBase + g.
    Value key = e.add(warpBase, g);
    if (!inBounds)
      key = e.minui(key, e.index(L - 1));
    Value kiBase = e.mul(e.add(e.mul(ids.batch, e.index(L)), key), e.index(DI));
    Value slice = e.add(kiBase, e.mul(c, e.index(DI / 4)));
    Type i32 = b.getI32Type();
    int64_t words = DI / 8; // 32-bit pairs in the lane's slice
    auto sliceType = VectorType::get({DI / 4}, elem);
    Value row = vector::LoadOp::create(
        b, loc, sliceType, ki, ValueRange{slice}, /*nontemporal=*/false,
        llvm::MaybeAlign(std::min<int64_t>(16, DI / 4 * 2)));
    Value pairs = vector::BitCastOp::create(
        b, loc, VectorType::get({words}, i32), row);
    SmallVector<Value> frags;
    for (int64_t w = 0; w < words; ++w)
      frags.push_back(
          vector::ExtractOp::create(b, loc, pairs, ArrayRef<int64_t>{w}));
    return frags;
  }

  /// Tensor cores: the key of this lane's visits among the 8 keys from
  /// warpBase (warpBase + 2c + hi, see visitsWith).
  Value visitKey(Value warpBase) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value c = arith::AndIOp::create(b, loc, ids.lane, e.index(3));
    Value hi = e.cmpi(arith::CmpIPredicate::uge, ids.lane, e.index(16));
    return e.add(warpBase, e.add(e.mul(c, e.index(2)),
                                 e.select(hi, e.index(1), e.index(0))));
  }

  /// Tensor cores: the visits of the keys [warpBase, warpBase + 8) from
  /// their B fragments (keyFragments).
  SmallVector<Visit> visitsWith(ArrayRef<Value> frags, Value warpBase) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    SmallVector<SmallVector<Value>> bFrags;
    for (int64_t ks = 0; ks < DI / 16; ++ks)
      bFrags.push_back({frags[2 * ks], frags[2 * ks + 1]});
    StringRef kind = elem.isBF16() ? "bf16" : "f16";
    Value s = visitKey(warpBase);
    SmallVector<Visit> out;
    int64_t steps = DI / 16;
    for (int64_t m = 0; m < slots(); ++m) {
      std::array<Value, 2> sums;
      for (int64_t group = 0; group < groups; ++group) {
        SmallVector<Value> acc(4, zeroAccumulator);
        for (int64_t ks = 0; ks < steps; ++ks)
          acc = mmaSync(b, loc, kind, aFrags[m][group * steps + ks],
                        bFrags[ks], acc);
        sums = addHeadPairs(m, group, acc, sums);
      }
      out.push_back(finishVisit(m, sums, s));
    }
    return out;
  }

  /// Warpgroup form: issues the cp.async copies of chunk `index` (keys
  /// [index x chunk(), + chunk()), clamped to L - 1) into its ring slot,
  /// 16-byte pieces in the swizzled layout; the caller commits the group.
  void issueChunk(Value index) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    if (tmaMode > 0)
      return issueChunkByTma(index);
    int64_t piecesPerRow = DI / 8, pieces = kWarpgroupKeys * piecesPerRow;
    Value slotBase = slotOffset(index);
    Value s0 = e.mul(index, e.index(kWarpgroupKeys));
    for (int64_t first = 0; first < pieces; first += kThreads) {
      Value i = e.add(ids.tid, e.index(first));
      Value j = e.div(i, e.index(piecesPerRow));
      Value p = arith::RemUIOp::create(b, loc, i, e.index(piecesPerRow));
      Value key = e.minui(e.add(s0, j), e.index(L - 1));
      Value src = e.add(e.mul(e.add(e.mul(ids.batch, e.index(L)), key),
                              e.index(DI)),
                        e.mul(p, e.index(8)));
      Value dst = e.add(slotBase,
                        swizzledPieceOffset(e, j, p, kWarpgroupKeys, 8));
      copyAsync16(b, loc, sharedAddress(e, ring, dst),
                  globalAddress(e, ki, src));
    }
  }

  /// Whether the warpgroup form's chunks arrive by TMA (tmaMode 1: the
  /// loop's barrier frees a slot; 2: its "empty" barrier does).
  bool byTma() const { return tmaMode > 0; }
  bool slotsReleasedByBarriers() const { return tmaMode == 2; }

  /// TMA: thread 0 initialises each slot's barriers - "full" (one arrival,
  /// the issuing thread's, and the chunk's bytes) and, with mode 2,
  /// "empty" (one arrival per warp whose products have read the slot).
  /// Before any chunk is issued; the caller's barrier publishes them.
  void initSlotBarriers() {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    e.ifThen(e.cmpi(arith::CmpIPredicate::eq, ids.tid, e.index(0)), [&]() {
      for (int64_t slot = 0; slot < stages; ++slot) {
        mbarrierInit(b, loc, sharedAddress(e, fullBars, e.index(slot)), 1);
        if (emptyBars)
          mbarrierInit(b, loc, sharedAddress(e, emptyBars, e.index(slot)),
                       kWarps);
      }
      mbarrierInitFence(b, loc);
    });
  }

  /// TMA: waits until chunk `index` has landed in its slot (the parity of
  /// its slot's fill: the slot's phase index / stages).
  void waitForChunk(Value index) {
    if (tmaMode == 0)
      return;
    mbarrierWait(e.builder(), e.location(), slotBarrier(fullBars, index),
                 slotFillParity(e, index, stages));
  }

  /// TMA mode 2: this warp's products no longer read chunk `index`'s slot
  /// (after the wgmma wait), so lane 0 arrives on its "empty" barrier.
  void releaseChunk(Value index) {
    if (tmaMode != 2)
      return;
    mbarrierArrive(e.builder(), e.location(), slotBarrier(emptyBars, index),
                   e.cmpi(arith::CmpIPredicate::eq, ids.lane, e.index(0)));
  }

  /// Warpgroup form: the visits of chunk `index` from its landed slot: per
  /// head group one wgmma m64n64k16 chain per warpgroup (its 16 queries x 4
  /// heads against the chunk's 64 keys), then per 8-key n-tile the mma.sync
  /// epilogue (addHeadPairs, finishVisit): 8 visits per thread, all of its
  /// one row.
  SmallVector<Visit> warpgroupVisits(Value index, int64_t part) {
    if (headPairs)
      return headPairVisits(index, part);
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value slotAddress = sharedAddress(e, ring, slotOffset(index));
    int64_t steps = DI / 16, accN = kWarpgroupKeys / 2;
    int64_t blockBytes = kWarpgroupKeys * 128;
    StringRef kind = elem.isBF16() ? "bf16" : "f16";
    // Keys are the N rows of the K-major B operand; k-step ks starts (ks %
    // 4) x 32 bytes into 128-byte column block ks / 4; 8-key groups 1024
    // bytes apart. The first step does not read the accumulators (p false),
    // the others add (q true).
    // With the affine part in the products, a last k-step adds bias / 2
    // (biasFrags) against the ones block's first 16 columns (none without a
    // bias).
    int64_t products = steps + (ones ? 1 : 0);
    // The k-steps' descriptors: the first one's plus each offset
    // (offsetDescriptor).
    Value firstDescriptor = matrixDescriptor(e, slotAddress, 16, 1024);
    // One product per head group, each consumed into the lanes' head-pair
    // sums before the next (one set of accumulators live).
    // The product's text is the same for every head group; only its A
    // operands differ.
    std::string code = fmt::format(
        "{{\n.reg .pred p, q;\nsetp.ne.b32 p, ${0}, 0;\nsetp.eq.b32 q, "
        "${0}, 0;\nwgmma.fence.sync.aligned;\n",
        accN + products * 5);
    for (int64_t ks = 0; ks < products; ++ks)
      code += wgmmaLine(kWarpgroupKeys, kind, accN, accN + ks * 5,
                        ks == 0 ? "p" : "q", /*transposeB=*/0);
    code += "wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync."
            "aligned 0;\n}";
    SmallVector<std::array<Value, 2>> sums(kWarpgroupKeys / 8);
    SmallVector<Visit> out;
    for (int64_t group = 0; group < groups; ++group) {
      SmallVector<Value> operands;
      for (int64_t ks = 0; ks < products; ++ks) {
        if (ks == steps) {
          llvm::append_range(operands, biasFrags[group]);
          operands.push_back(matrixDescriptor(
              e, sharedAddress(e, ones, e.index(0)), 16, 1024));
        } else {
          int64_t offset = (ks / 4) * blockBytes + (ks % 4) * 32;
          llvm::append_range(operands, aFrags[0][group * steps + ks]);
          operands.push_back(offsetDescriptor(e, firstDescriptor, offset));
        }
      }
      operands.push_back(e.i32(0));
      SmallVector<Value> acc = warpgroupProductBlock(
          b, loc, code, operands, accN, products, /*extraI32=*/1, /*tied=*/{});
      bool last = group == groups - 1;
      if (last)
        releaseChunk(index);
      Value s0 = last ? e.mul(index, e.index(kWarpgroupKeys)) : Value();
      for (int64_t n = 0; n < kWarpgroupKeys / 8; ++n) {
        sums[n] = addHeadPairs(0, group, ArrayRef<Value>(acc).slice(4 * n, 4),
                               sums[n]);
        if (!last)
          continue;
        Visit v = finishVisit(0, sums[n], visitKey(e.add(s0, e.index(8 * n))));
        v.slot = 0;
        out.push_back(v);
      }
    }
    return out;
  }

private:
  /// TMA: thread 0 issues chunk `index` (keys [index x 64, + 64); rows past
  /// L arrive as zeros, and no visit reads them) as one box per 128-byte
  /// column block, in the 128-byte swizzle layout that the slots and the
  /// descriptors use. With mode 2 it first waits until the eight warps
  /// have released the slot's previous chunk (index - stages).
  void issueChunkByTma(Value index) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    e.ifThen(e.cmpi(arith::CmpIPredicate::eq, ids.tid, e.index(0)), [&]() {
      if (emptyBars)
        e.ifThen(e.cmpi(arith::CmpIPredicate::uge, index, e.index(stages)),
                 [&]() {
                   mbarrierWait(b, loc, slotBarrier(emptyBars, index),
                                slotFillParity(e, index, stages, 1));
                 });
      Value full = slotBarrier(fullBars, index);
      mbarrierArriveExpectTx(b, loc, full,
                             kWarpgroupKeys * DI *
                                 (elem.getIntOrFloatBitWidth() / 8));
      Value slotBase = slotOffset(index);
      Value key0 = e.indexToI32(e.mul(index, e.index(kWarpgroupKeys)));
      Value batch = e.indexToI32(ids.batch);
      tmaLoadRowChunk(e, ring, slotBase, kWarpgroupKeys, DI, keyMap, key0,
                      batch, full);
    });
  }

  /// The i32 shared address of chunk `index`'s slot's barrier in `bars`.
  Value slotBarrier(Value bars, Value index) {
    return sharedAddress(
        e, bars,
        arith::RemUIOp::create(e.builder(), e.location(), index,
                               e.index(stages)));
  }

  /// Warpgroup form: the element offset of chunk `index`'s ring slot.
  Value slotOffset(Value index) {
    Value slot =
        arith::RemUIOp::create(e.builder(), e.location(), index, e.index(stages));
    return e.mul(slot, e.index(kWarpgroupKeys * DI));
  }

  /// Adds head group `group`'s part of slot m's scores at the lane's two
  /// keys to `sums` (empty before the first group) from the 4 accumulators
  /// of one m16n8 tile: (head j0, key 2c), (j0, 2c+1), (j0+2, 2c), (j0+2,
  /// 2c+1); returns {key 2c, key 2c+1}.
  std::array<Value, 2> addHeadPairs(int64_t m, int64_t group,
                                    ArrayRef<Value> acc,
                                    std::array<Value, 2> sums) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    float scale = fused.getScaleOrDefault();
    int64_t h0 = 2 * group, h2 = h0 + 1;
    auto headScore = [&](Value dot, int64_t h) {
      Value x = fusedMulAdd(e, dot, e.f32(scale), bias[h]);
      // (The first head, 4 group + j0 with j0 < 2, can be padding from
      // 4 group + 1 on; the second, 4 group + 2 + j0, from 4 group + 3.)
      bool mayPad = 4 * group + (h == h0 ? 1 : 3) >= H;
      if (!mayPad) {
        Value act = e.inlineRegion(fused.getActivation(), {x, heads[h]});
        return e.mul(weights[m][h], act);
      }
      // A padding head in some lanes: the user's activation sees a real
      // head index, and the term is 0 there whatever it returns (weight 0
      // times an infinite or NaN activation would not be).
      Value real = isRealHead(heads[h]);
      Value act =
          e.inlineRegion(fused.getActivation(), {x, realHead(heads[h])});
      return e.select(real, e.mul(weights[m][h], act), e.f32(0.0));
    };
    // The lane's second head (j0 + 2 of the group, j0 < 2) is padding in
    // every lane when the group's heads 2 and 3 are: its term (weight 0)
    // is left out, not computed (H_I 1, 2, 5, 6, ...: half the group's
    // activations).
    bool secondPadded = 4 * group + 2 >= H;
    // Sigmoid activation: weights and bias pre-halved (prepare), the
    // row's constant added once, by the first group.
    auto headPair = [&](Value dot0, Value dot2, Value sum) {
      if (!sigmoidActivation) {
        Value pair = headScore(dot0, h0);
        if (!secondPadded)
          pair = e.add(pair, headScore(dot2, h2));
        return sum ? e.add(sum, pair) : pair;
      }
      auto halfTanh = [&](Value dot, int64_t h) {
        if (affineInProducts)
          return ptxUnary(b, loc, "tanh.approx.f32", dot);
        return ptxUnary(b, loc, "tanh.approx.f32",
                        fusedMulAdd(e, dot, e.f32(0.5f * scale), bias[h]));
      };
      Value second = sum ? sum : rowConstant[m];
      if (!secondPadded)
        second = fusedMulAdd(e, weights[m][h2], halfTanh(dot2, h2), second);
      return fusedMulAdd(e, weights[m][h0], halfTanh(dot0, h0), second);
    };
    return {headPair(acc[0], acc[2], sums[0]), headPair(acc[1], acc[3], sums[1])};
  }

  /// The visit of slot m's row at key s from the lane's head-pair sums of
  /// its two keys (addHeadPairs, every group added).
  Visit finishVisit(int64_t m, std::array<Value, 2> sums, Value s) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value hi = e.cmpi(arith::CmpIPredicate::uge, ids.lane, e.index(16));
    // Lane ^ 16 holds the other two heads of each group for the same two
    // keys: each lane keeps its key's pair (the odd key in the upper half)
    // and sends the other one: one shuffle per visit, not two.
    Value mine = e.select(hi, sums[1], sums[0]);
    Value theirs = e.select(hi, sums[0], sums[1]);
    return {slotRow(m), s, e.add(mine, shuffleXor(b, loc, theirs, 16))};
  }

private:

  /// CUDA cores: the scores I[t0 + r, s] for every row r of the tile
  /// (garbage where s > t or t >= L; the caller masks those).
  SmallVector<Value> rowScores(Value s) {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    Value sLoad = e.minui(s, e.index(L - 1));
    SmallVector<Value> out;
    if (!fused) {
      for (int64_t r = 0; r < rows; ++r) {
        Value t = e.minui(e.add(ids.t0, e.index(r)), e.index(L - 1));
        Value row = e.add(e.mul(ids.batch, e.index(L)), t);
        out.push_back(
            e.loadF32(scores, {e.add(e.mul(row, e.index(L)), sLoad)}));
      }
      return out;
    }
    // The key's indexer row in registers (16-byte vector loads).
    Type kiElem = cast<MemRefType>(ki.getType()).getElementType();
    int64_t width = 16 / (kiElem.getIntOrFloatBitWidth() / 8);
    if (DI % width != 0)
      width = 1;
    Value kiBase =
        e.mul(e.add(e.mul(ids.batch, e.index(L)), sLoad), e.index(DI));
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

  IndexerOp fused;
  Emitter &e;
  int64_t L, rows, H = 0, DI = 0;
  const TileIds &ids;
  Type elem;
  bool mma = false;
  Value qi, ki, wi, bi, scores;
  Value qiShared, weightShared, biasShared;
  // Tensor-core forms: the heads in `groups` groups of 4, staged as
  // stagedHeads (the padding heads weigh 0).
  int64_t groups = 1, stagedHeads = 0;
  // Tensor-core registers: per slot, per head group and k-step, the 4 A
  // registers; per head group the lane's two heads, their biases and per
  // slot their weights ([group][2], flattened).
  SmallVector<SmallVector<SmallVector<Value>>> aFrags;
  SmallVector<Value> heads, bias;
  SmallVector<SmallVector<Value>> weights;
  // Sigmoid activation (the paper's): halved weights and bias, and per slot
  // the row's sum_h w_h / 2.
  bool sigmoidActivation = false;
  SmallVector<Value> rowConstant;
  Value zeroAccumulator;
  // Warpgroup form: the ring of `stages` key chunks.
  bool warpgroup = false;
  // Warpgroup form with 8 queries per warp: two products per key chunk
  // (heads 0-1 and 2-3 of the same queries), so that a lane holds all four
  // heads of its query's keys (no shuffle or select per score).
  bool headPairs = false;
  SmallVector<SmallVector<SmallVector<Value>>> pairFrags;
  int64_t stages = 0;
  Value ring;
  // Warpgroup form with the sigmoid activation, bf16, scale / 2 a power of
  // two (foldsAffine): the A fragments carry scale / 2 and, with a bias, a
  // fifth k-step adds bias / 2 against a column of ones (`ones`, one
  // swizzled 64-key block whose d = 0 is 1), so the accumulators are the
  // tanh arguments x_h / 2 themselves.
  bool affineInProducts = false;
  Value ones;
  SmallVector<SmallVector<Value>> biasFrags;
  // Warpgroup form by TMA (tmaMode > 0): ki's tensor map (a grid-constant
  // kernel argument) and per slot a "full" barrier and, mode 2, an "empty"
  // one.
  int64_t tmaMode = 0;
  Value keyMap, fullBars, emptyBars;
};

/// A visit's tile row is a real row and its key is visible from it.
Value visibleFrom(Emitter &e, const TileIds &ids, int64_t L, const Visit &v) {
  Value t = e.add(ids.t0, v.row);
  return e.andi(e.cmpi(arith::CmpIPredicate::ule, v.s, t),
                e.cmpi(arith::CmpIPredicate::ult, t, e.index(L)));
}

Value u64(Emitter &e, Value i32) {
  return arith::ExtUIOp::create(e.builder(), e.location(),
                                e.builder().getI64Type(), i32);
}
Value i32Of(Emitter &e, Value i64) {
  return arith::TruncIOp::create(e.builder(), e.location(),
                                 e.builder().getI32Type(), i64);
}

/// The four per-row statistics buffers (mean, variance, smallest and
/// largest key), consecutive kernel parameters from `first`.
std::array<Value, 4> rowStatsArgs(Block &entry, int first) {
  return {entry.getArgument(first), entry.getArgument(first + 1),
          entry.getArgument(first + 2), entry.getArgument(first + 3)};
}

/// Adds the four per-row statistics buffers to a kernel's parameters;
/// returns the position of the first (see rowStatsArgs).
int addRowStatsArgs(KernelArgs &args, ArrayRef<Value> stats) {
  int first = args.add(stats[0]);
  for (Value buffer : stats.drop_front())
    args.add(buffer);
  return first;
}

//===----------------------------------------------------------------------===//
// stats: mean, variance and key range of every row
//===----------------------------------------------------------------------===//

/// The candidate collection the stats kernel can do in the same sweep (the
/// sampled selection, see buildSampleKernel): parameter positions of the
/// per-row cut keys (in), candidate keys and positions (rows x capacity)
/// and candidate counts (out; a count above the capacity means overflow).
struct Collect {
  int cuts = -1, keys = -1, positions = -1, counts = -1;
  int64_t capacity = 0;
  /// Tiles of rows with at most `capacity` keys store them by position.
  bool denseTiles = true;
};

/// `moments`: whether anything reads the rows' mean and variance (the
/// policy's budget, training's V_bar); without them (the fixed policy at
/// inference) the sweep carries no sums and writes both as 0.
///
/// `warpgroupStages` > 0 (and TileScores::warpgroupUsable): the products run
/// on wgmma, each warpgroup's 16 queries against 64-key chunks that the
/// CTA stages in a ring of that many shared-memory slots by cp.async (the
/// keys are read once per CTA of 32 rows instead of once per 8-12 rows,
/// and a thread holds 16 A registers instead of 48).
void buildStatsKernel(gpu::GPUFuncOp kernel, IndexerOp fused, SourceArgs src,
                      int64_t L, int64_t rows, bool tensorCores, bool moments,
                      int firstOut, const Collect *collect = nullptr,
                      int64_t warpgroupStages = 0, int64_t tmaMode = 0) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  auto [meanOut, varOut, minOut, maxOut] = rowStatsArgs(entry, firstOut);
  Type f64 = Float64Type::get(kernel.getContext());
  Type i32 = IntegerType::get(kernel.getContext(), 32);
  Value sumShared = sharedBuffer(kernel, f64, rows * kWarps);
  Value sqShared = sharedBuffer(kernel, f64, rows * kWarps);
  // Collecting, a tile whose rows all see at most `capacity` keys (the
  // sample gave them the cut 0) stores every visible key at its own
  // position's slot: no atomics, the count t + 1; the finish kernel finds
  // such a row's key range itself (a min / max carried through this sweep
  // spilled under its register cap).
  bool denseRows = collect && collect->denseTiles;
  Value minShared =
      collect ? Value() : sharedBuffer(kernel, i32, rows * kWarps);
  Value maxShared =
      collect ? Value() : sharedBuffer(kernel, i32, rows * kWarps);
  Value collected = collect ? sharedBuffer(kernel, i32, rows) : Value();
  // Collecting: the row's largest key is its largest candidate's (when a
  // row has any candidate, its largest key is one; a row without records
  // the whole key range),
  // kept by a shared atomic on the rare taken branch instead of a min and
  // a max on every visit; the smallest key is then not tracked (0: the
  // topk kernel's rows start their radix passes at the top bit).
  Value largestShared = collect ? sharedBuffer(kernel, i32, rows) : Value();

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  TileIds ids = tileIds(e, L, rows, /*longestFirst=*/true);
  TileScores source(fused, src, kernel, e, L, rows, ids, tensorCores,
                    warpgroupStages, tmaMode);
  bool warpgroup = source.warpgroupProducts();
  bool byTma = warpgroup && source.byTma();
  // (The sample kernel's rule for the cut 0, t + 1 <= capacity, holds for
  // every real row of such a tile, whatever the sample's tiles are.)
  Value denseTile = denseRows ? e.cmpi(arith::CmpIPredicate::ule, ids.keyEnd,
                                       e.index(collect->capacity))
                              : Value();
  source.stage();
  if (collect)
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, ids.tid, e.index(rows)),
             [&]() {
               e.store(e.i32(0), collected, {ids.tid});
               e.store(e.i32(0), largestShared, {ids.tid});
             });
  // Warpgroup form: the chunks of the tile's keys 0..keyEnd-1.
  Value chunks;
  // Chunks per barrier: a ring of 6 or more slots takes two chunks per
  // barrier (half the barriers, each waiting on the slowest of the eight
  // warps; two slots' copies a barrier ahead), a smaller one one. With the
  // moments' f64 sums the two chunks' code spills under the 80-register
  // cap (16 bytes) except by TMA with per-slot release barriers
  // (select-tma=2, no CTA barrier's bookkeeping in the loop): one.
  int64_t perBarrier =
      warpgroupStages >= 6 && (!moments || tmaMode == 2) ? 2 : 1;
  if (warpgroup) {
    // One warp holds each row: the other warps' entries of the per-warp
    // totals are the identities the final sums read.
    e.loopStep(ids.tid, e.index(rows * kWarps), e.index(kThreads),
               [&](Value i) {
                 e.store(e.f64(0.0), sumShared, {i});
                 e.store(e.f64(0.0), sqShared, {i});
                 if (collect)
                   return;
                 e.store(e.i32(-1), minShared, {i});
                 e.store(e.i32(0), maxShared, {i});
               });
    // The ring's first chunks are in flight while the queries load.
    chunks = e.div(e.add(ids.keyEnd, e.index(source.chunk() - 1)),
                   e.index(source.chunk()));
    if (byTma)
      source.initSlotBarriers();
    for (int64_t k = 0; k < warpgroupStages - perBarrier; ++k) {
      e.ifThen(e.cmpi(arith::CmpIPredicate::ult, e.index(k), chunks),
               [&]() { source.issueChunk(e.index(k)); });
      if (!byTma)
        NVVM::CpAsyncCommitGroupOp::create(b, loc);
    }
    // By TMA no per-chunk fence follows: the block of ones (stage) is
    // ordered before the products' reads here, once.
    if (byTma)
      asyncProxyFence(b, loc);
  }
  gpu::BarrierOp::create(b, loc);
  source.prepare();
  // Per visit slot: the row's cut (candidates are the keys >= its key) as
  // the f32 it stands for: score >= cut decides as key >= cut key does for
  // every non-NaN score (cutFloat; the sample stores no +0.0 cut), one
  // float compare per visit; the key itself is formed where a candidate is
  // taken. A NaN score is never a candidate here; a dense tile stores
  // every key, a NaN's too (ordered by its key, as the topk kernel orders
  // it).
  SmallVector<Value> cuts;
  if (collect)
    for (int64_t m = 0; m < source.slots(); ++m) {
      Value t = e.minui(e.add(ids.t0, source.slotRow(m)), e.index(L - 1));
      cuts.push_back(cutFloat(
          e, e.load(entry.getArgument(collect->cuts),
                    {e.add(e.mul(ids.batch, e.index(L)), t)})));
    }

  // Per thread and visit slot: f64 sum and sum of squares (exact enough
  // for E[x^2] - E[x]^2 at any L), and without candidates the smallest and
  // largest key.
  int64_t slots = source.slots();
  // Carried per slot: [sum, sum of squares] with moments, then [smallest,
  // largest key] without candidates.
  int64_t sums = moments ? 2 : 0;
  int64_t perSlot = sums + (collect ? 0 : 2);
  SmallVector<Value> init;
  for (int64_t m = 0; m < slots; ++m) {
    if (moments) {
      init.push_back(e.f64(0.0));
      init.push_back(e.f64(0.0));
    }
    if (collect)
      continue;
    init.push_back(e.i32(-1)); // the largest unsigned key
    init.push_back(e.i32(0));
  }
  // Tensor cores: the next iteration's key fragments are in flight while
  // this iteration computes (three iterations ahead measured no faster at
  // 128K: the sweep is not waiting on these loads).
  bool prefetch = source.tensorCores() && !warpgroup;
  Value warpOffset = e.mul(ids.warp, e.index(8));
  size_t statsValues = init.size();
  // One iteration's updates. `masked`: some visits may be invisible (keys
  // past their row, rows past L); the bulk of the sweep, chunks wholly
  // below the tile's first row of a tile with only real rows, needs no
  // masks (a fifth of the loop's instructions at 8 rows per tile).
  // A candidate visit: its key appended to its row's list (where `take`).
  auto takeCandidate = [&](const Visit &v, Value take) {
    e.ifThen(take, [&]() {
      Value key = orderKey(e, v.score);
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::maxu, key,
                                  largestShared, ValueRange{v.row});
      Value n = memref::AtomicRMWOp::create(
          b, loc, arith::AtomicRMWKind::addi, e.i32(1), collected,
          ValueRange{v.row});
      // Past the capacity the row has overflowed (its count says so and
      // the finish kernel leaves it to the topk kernel): the stores then
      // go to the last slot, whatever it holds, instead of a branch on
      // the atomic's result.
      Value slot = e.minui(e.i32ToIndex(n), e.index(collect->capacity - 1));
      Value row = e.add(e.mul(ids.batch, e.index(L)), e.add(ids.t0, v.row));
      Value at = e.add(e.mul(row, e.index(collect->capacity)), slot);
      e.store(key, entry.getArgument(collect->keys), {at});
      e.store(e.indexToI32(v.s), entry.getArgument(collect->positions),
              {at});
    });
  };
  // The kinds of sweep step: the bulk's (no masks), the masked chunks',
  // and a dense tile's (masked, every visible key stored at slot s).
  enum class Step { Bulk, Masked, Dense };
  // A dense tile's visits: every visible key stored at slot s.
  auto denseStores = [&](ArrayRef<Visit> visits, bool masked) {
    for (const Visit &v : visits) {
      Value key = orderKey(e, v.score);
      Value row = e.add(e.mul(ids.batch, e.index(L)), e.add(ids.t0, v.row));
      Value at = e.add(e.mul(row, e.index(collect->capacity)), v.s);
      auto store = [&]() {
        e.store(key, entry.getArgument(collect->keys), {at});
        e.store(e.indexToI32(v.s), entry.getArgument(collect->positions),
                {at});
      };
      if (masked)
        e.ifThen(visibleFrom(e, ids, L, v), store);
      else
        store();
    }
  };
  // The step's statistics: the moments' sums and, without candidates, the
  // smallest and largest keys.
  auto sweepMoments = [&](ArrayRef<Visit> visits, SmallVector<Value> next,
                          bool masked) {
    // Unmasked (the bulk of the sweep), the step's visits of a slot are
    // summed in f32 first and the two partial sums added to the f64 totals
    // once per step: two f32 -> f64 conversions (on the XU, beside the
    // sigmoids' tanh) per step instead of one per visit. A partial holds a
    // handful of scores (8 per 64-key chunk on wgmma), so its rounding
    // (~1e-7 of it, unbiased) stays far below what E[x^2] - E[x]^2 needs.
    // The masked steps keep a conversion per visit (the partials' two
    // registers spill there under the 80-register cap, at no gain).
    // (Inverse stats 17.35 -> 16.42 ms at 128K, H100.)
    SmallVector<Value> partialSum(slots), partialSq(slots);
    for (auto [i, v] : llvm::enumerate(visits)) {
      int64_t m = v.slot >= 0 ? v.slot : int64_t(i);
      Value visible = masked ? visibleFrom(e, ids, L, v) : Value();
      if (moments && masked) {
        Value x0 = e.select(visible, e.f32ToF64(v.score), e.f64(0.0));
        next[perSlot * m] = e.add(next[perSlot * m], x0);
        next[perSlot * m + 1] = fusedMulAdd(e, x0, x0, next[perSlot * m + 1]);
      } else if (moments) {
        Value x = v.score;
        partialSum[m] = partialSum[m] ? e.add(partialSum[m], x) : x;
        partialSq[m] = partialSq[m] ? fusedMulAdd(e, x, x, partialSq[m])
                                    : e.mul(x, x);
      }
      if (collect)
        continue;
      Value key = orderKey(e, v.score);
      Value &lo = next[perSlot * m + sums], &hi = next[perSlot * m + sums + 1];
      Value newLo = e.minui(lo, key), newHi = e.maxui(hi, key);
      lo = masked ? e.select(visible, newLo, lo) : newLo;
      hi = masked ? e.select(visible, newHi, hi) : newHi;
    }
    for (int64_t m = 0; m < slots; ++m)
      if (partialSum[m]) {
        next[perSlot * m] =
            e.add(next[perSlot * m], e.f32ToF64(partialSum[m]));
        next[perSlot * m + 1] =
            e.add(next[perSlot * m + 1], e.f32ToF64(partialSq[m]));
      }
    return next;
  };
  // The step's candidates against the rows' cuts.
  auto sparseTakes = [&](ArrayRef<Visit> visits, SmallVector<Value> next,
                         bool masked) {
    if (!collect)
      return next;
    if (masked) {
      for (auto [i, v] : llvm::enumerate(visits)) {
        int64_t m = v.slot >= 0 ? v.slot : int64_t(i);
        takeCandidate(v, e.andi(visibleFrom(e, ids, L, v),
                                e.cmpf(arith::CmpFPredicate::OGE, v.score,
                                       cuts[m])));
      }
      return next;
    }
    // Unmasked, a slot's visits are tested as one: the largest of their
    // scores (maxnum: a NaN score is no candidate and hides none) against
    // the cut, and only a group that holds a candidate tests its visits
    // one by one - one branch per slot and step on the common path instead
    // of one per visit (stats -2.5% fixed, -5.4% inverse at 128K, H100,
    // docs/perf-log.md). (A visit's own test is formed only inside its
    // group's: no predicate held across the group's.)
    for (int64_t m = 0; m < slots; ++m) {
      Value largest;
      for (auto [i, v] : llvm::enumerate(visits))
        if ((v.slot >= 0 ? v.slot : int64_t(i)) == m)
          largest = largest
                        ? arith::MaxNumFOp::create(b, loc, largest, v.score)
                        : v.score;
      if (!largest)
        continue;
      e.ifThen(e.cmpf(arith::CmpFPredicate::OGE, largest, cuts[m]), [&]() {
        for (auto [i, v] : llvm::enumerate(visits))
          if ((v.slot >= 0 ? v.slot : int64_t(i)) == m)
            takeCandidate(v, e.cmpf(arith::CmpFPredicate::OGE, v.score,
                                    cuts[m]));
      });
    }
    return next;
  };
  auto sweepStep = [&](ArrayRef<Visit> visits, ValueRange carried,
                       Step kind) {
    bool masked = kind != Step::Bulk;
    SmallVector<Value> next(carried.begin(), carried.begin() + statsValues);
    next = sweepMoments(visits, next, masked);
    if (kind != Step::Dense)
      return sparseTakes(visits, next, masked);
    denseStores(visits, masked);
    return next;
  };
  Value chunk = e.index(source.chunk());
  // The masked sweep over chunks [lb, ub) (the bulk before it is
  // pipelinedSweep's). Tensor cores: the next chunk's key fragments are
  // loaded (clamped) while this one computes.
  auto maskedSweep = [&](Value lb, Value ub, ValueRange inits, Step kind) {
    return e.loopStepCarry(
        lb, ub, chunk, inits,
        [&](Value s0, ValueRange carried) -> SmallVector<Value> {
          SmallVector<Value> ahead;
          SmallVector<Visit> visits;
          if (prefetch) {
            ahead = source.keyFragments(e.add(e.add(s0, chunk), warpOffset));
            SmallVector<Value> frags(carried.begin() + statsValues,
                                     carried.end());
            visits = source.visitsWith(frags, e.add(s0, warpOffset));
          } else {
            visits = source.visits(s0);
          }
          SmallVector<Value> next = sweepStep(visits, carried, kind);
          next.append(ahead.begin(), ahead.end());
          return next;
        });
  };
  // The bulk of the sweep, software-pipelined: an iteration computes the
  // next chunk's scores (products, activation, head sum) and then the
  // statistics and candidates of this chunk's, carried from the iteration
  // before, so the products' latency overlaps the branchy candidate code
  // instead of following it; the fragments are loaded two chunks ahead.
  size_t fragCount = 0;
  auto pipelinedSweep = [&](Value lb, Value ub,
                            ValueRange stats) -> SmallVector<Value> {
    SmallVector<Value> first =
        source.keyFragments(e.add(lb, warpOffset), /*inBounds=*/true);
    SmallVector<Value> inits(stats.begin(), stats.end());
    for (Value f : source.keyFragments(e.add(e.add(lb, chunk), warpOffset),
                                       /*inBounds=*/true))
      inits.push_back(f);
    fragCount = inits.size() - stats.size();
    for (const Visit &v : source.visitsWith(first, e.add(lb, warpOffset)))
      inits.push_back(v.score);
    SmallVector<Value> out = e.loopStepCarry(
        lb, ub, chunk, inits,
        [&](Value s0, ValueRange carried) -> SmallVector<Value> {
          Value here = e.add(s0, warpOffset);
          SmallVector<Value> frags(carried.begin() + statsValues,
                                   carried.begin() + statsValues + fragCount);
          SmallVector<Visit> upcoming =
              source.visitsWith(frags, e.add(here, chunk));
          // Loaded after the products read the carried fragments, so the
          // new ones can take their registers (loaded first, they were
          // live together: a register move per fragment at the loop's end,
          // waiting on the load).
          SmallVector<Value> ahead = source.keyFragments(
              e.add(here, e.mul(chunk, e.index(2))), /*inBounds=*/true);
          SmallVector<Visit> current;
          Value s = source.visitKey(here);
          for (int64_t m = 0; m < slots; ++m)
            current.push_back({source.slotRow(m), s,
                               carried[statsValues + fragCount + m]});
          SmallVector<Value> next =
              sweepStep(current, carried, Step::Bulk);
          next.append(ahead.begin(), ahead.end());
          for (const Visit &v : upcoming)
            next.push_back(v.score);
          return next;
        });
    out.resize(statsValues);
    return out;
  };
  // The warpgroup form: chunk i waits for its copies (wait_group leaves
  // stages - 2 newer groups in flight), a barrier publishes them and frees
  // the slot chunk i - 1 used, which then receives chunk i + stages - 1.
  auto warpgroupSweep = [&](Value lb, Value ub, ValueRange inits,
                            Step kind) {
    bool masked = kind != Step::Bulk;
    return e.loopStepCarry(
        lb, ub, e.index(perBarrier), inits,
        [&](Value i, ValueRange carried) -> SmallVector<Value> {
          if (!byTma) {
            NVVM::CpAsyncWaitGroupOp::create(
                b, loc, warpgroupStages - 2 * perBarrier);
            asyncProxyFence(b, loc);
          }
          // By TMA with "empty" barriers the issuing thread waits for
          // the slot's release instead of the whole CTA for its slowest
          // warp.
          if (!source.slotsReleasedByBarriers())
            gpu::BarrierOp::create(b, loc);
          for (int64_t p = 0; p < perBarrier; ++p) {
            Value ahead =
                e.add(i, e.index(warpgroupStages - perBarrier + p));
            e.ifThen(e.cmpi(arith::CmpIPredicate::ult, ahead, chunks),
                     [&]() { source.issueChunk(ahead); });
            if (!byTma)
              NVVM::CpAsyncCommitGroupOp::create(b, loc);
          }
          SmallVector<Value> next(carried.begin(), carried.end());
          for (int64_t p = 0; p < perBarrier; ++p) {
            Value index = e.add(i, e.index(p));
            // The chunk's parts one after the other: a part's visits are
            // done before the next part's products take the accumulators.
            auto chunkStep = [&](SmallVector<Value> carried) {
              source.waitForChunk(index);
              for (int64_t part = 0; part < source.chunkParts(); ++part)
                carried = sweepStep(source.warpgroupVisits(index, part),
                                    carried, kind);
              return carried;
            };
            if (!masked || p == 0) {
              next = chunkStep(next);
              continue;
            }
            next = e.ifElse(
                e.cmpi(arith::CmpIPredicate::ult, index, chunks),
                [&]() { return chunkStep(next); }, [&]() { return next; });
          }
          return next;
        });
  };
  // The tile's sweep; `dense` (a dense tile's): every chunk masked, no
  // unmasked bulk (at most capacity / 64 chunks).
  auto sweepTile = [&](SmallVector<Value> init,
                       bool dense) -> SmallVector<Value> {
    Step maskedKind = dense ? Step::Dense : Step::Masked;
    Value bulkEnd = e.index(0);
    SmallVector<Value> acc;
    if (warpgroup) {
      // Chunks wholly below t0 of a tile of real rows need no masks (a
      // dense tile masks them all).
      Value bulkChunks = e.index(0);
      if (!dense) {
        Value chunk = e.index(source.chunk());
        Value allReal =
            e.cmpi(arith::CmpIPredicate::ule, e.add(ids.t0, e.index(rows)),
                   e.index(L));
        bulkChunks = e.select(allReal, e.div(ids.t0, chunk), e.index(0));
        bulkChunks = e.mul(e.div(bulkChunks, e.index(perBarrier)),
                           e.index(perBarrier));
        init = warpgroupSweep(e.index(0), bulkChunks, init, Step::Bulk);
      }
      acc = warpgroupSweep(bulkChunks, chunks, init, maskedKind);
      if (!byTma)
        NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
    } else if (prefetch) {
      // Chunks [0, bulkEnd) lie below t0, and so do the two chunks each of
      // them loads ahead: neither masks nor clamps. A tile with rows past L
      // (the last, for a ragged L) takes the masked loop throughout, as
      // does a dense tile.
      if (!dense) {
        Value below = e.div(ids.t0, chunk);
        Value bulkChunks = e.select(
            e.cmpi(arith::CmpIPredicate::uge, below, e.index(2)),
            e.sub(below, e.index(2)), e.index(0));
        Value allReal =
            e.cmpi(arith::CmpIPredicate::ule, e.add(ids.t0, e.index(rows)),
                   e.index(L));
        bulkEnd = e.select(allReal, e.mul(bulkChunks, chunk), e.index(0));
        init = e.ifElse(
            e.cmpi(arith::CmpIPredicate::ugt, bulkEnd, e.index(0)),
            [&]() { return pipelinedSweep(e.index(0), bulkEnd, init); },
            [&]() { return init; });
      }
      for (Value f : source.keyFragments(e.add(bulkEnd, warpOffset)))
        init.push_back(f);
    }
    if (!warpgroup)
      acc = maskedSweep(bulkEnd, ids.keyEnd, init, maskedKind);
    return acc;
  };
  SmallVector<Value> acc;
  // (The common tile's sweep first, in the then-region.)
  if (denseRows)
    acc = e.ifElse(
        e.cmpi(arith::CmpIPredicate::eq, denseTile,
               arith::ConstantOp::create(b, loc, b.getBoolAttr(false))),
        [&]() { return sweepTile(init, /*dense=*/false); },
        [&]() { return sweepTile(init, /*dense=*/true); });
  else
    acc = sweepTile(init, /*dense=*/false);

  // Combine the lanes holding the same rows; each warp's row leader
  // publishes its warp's totals.
  Value leader = source.isRowLeader();
  for (int64_t m = 0; m < slots; ++m) {
    Value sum = moments ? acc[perSlot * m] : e.f64(0.0);
    Value sq = moments ? acc[perSlot * m + 1] : e.f64(0.0);
    Value mn = collect ? Value() : acc[perSlot * m + sums];
    Value mx = collect ? Value() : acc[perSlot * m + sums + 1];
    for (int32_t offset : source.rowXors()) {
      if (moments) {
        sum = e.add(sum, shuffleXor64(b, loc, sum, offset));
        sq = e.add(sq, shuffleXor64(b, loc, sq, offset));
      }
      if (collect)
        continue;
      mn = e.minui(mn, shuffleXor(b, loc, mn, offset));
      mx = e.maxui(mx, shuffleXor(b, loc, mx, offset));
    }
    Value slot = e.add(e.mul(source.slotRow(m), e.index(kWarps)), ids.warp);
    e.ifThen(leader, [&]() {
      e.store(sum, sumShared, {slot});
      e.store(sq, sqShared, {slot});
      if (collect)
        return;
      e.store(mn, minShared, {slot});
      e.store(mx, maxShared, {slot});
    });
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
      if (collect)
        continue;
      mn = e.minui(mn, e.load(minShared, {slot}));
      mx = e.maxui(mx, e.load(maxShared, {slot}));
    }
    Value row = e.add(e.mul(ids.batch, e.index(L)), t);
    if (collect) {
      // A row without candidates has no largest candidate: its range is
      // then the whole key space (the topk kernel's passes start at the top
      // bit). With one or more, the row's largest key is a candidate.
      // A dense row's count is its t + 1 keys and its range unknown (the
      // whole key space for the topk kernel; the finish finds it).
      Value count = e.load(collected, {ids.tid});
      mn = e.i32(0);
      mx = e.select(e.cmpi(arith::CmpIPredicate::eq, count, e.i32(0)),
                    e.i32(-1), e.load(largestShared, {ids.tid}));
      if (denseRows) {
        count = e.select(denseTile, e.indexToI32(e.add(t, e.index(1))), count);
        mx = e.select(denseTile, e.i32(-1), mx);
      }
      e.store(count, entry.getArgument(collect->counts), {row});
    }
    Value n = e.indexToF64(e.add(t, e.index(1)));
    // wgmma kernels hold no div.rn (see divideF64WithoutCall).
    auto divide = [&](Value x) {
      return warpgroup ? divideF64WithoutCall(e, x, n) : e.div(x, n);
    };
    Value mean = divide(sum);
    Value var = e.sub(divide(sq), e.mul(mean, mean));
    var = arith::MaximumFOp::create(b, loc, var, e.f64(0.0));
    e.store(mean, meanOut, {row});
    e.store(var, varOut, {row});
    e.store(mn, minOut, {row});
    e.store(mx, maxOut, {row});
  });
  gpu::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// sample: per row, a cut key above which about `target` keys lie
//===----------------------------------------------------------------------===//

/// Keys every row's sample takes whole: the first kSampleHead (sinks) and
/// the last kSampleTail before the tile's end (local windows); of the keys
/// between, one 8-key n-tile in every 16, at a pseudo-random offset per
/// 128-key block and tile, counted 16 times. (A tail of 512 instead of
/// 1024: sample -11 to -12% at 128K and no more radix-fallback rows, H200,
/// perf-log eleventh session.)
constexpr int64_t kSampleHead = 64;
constexpr int64_t kSampleTail = 512;
constexpr int64_t kSampleStride = 16;
/// The sample's first sweep (the key range its histograms span) takes
/// every kRangeRoundStep-th round of the sampled span (besides the head and
/// the tail): the range's largest key needs only to lie above the goal's
/// keys, and a sample of 1 in 128 still holds a row's top ~32 of 128K
/// (every 4th round -> every 8th: sample -6% at 128K, H200, perf-log
/// eleventh session). The fixed policy keeps every 4th: with every 8th,
/// some rows of 128K structured inputs overflowed their candidates and
/// took the radix fallback (0.53 ms; sample +0.22 ms with every 4th, H100,
/// perf-log twelfth session).
constexpr int64_t kRangeRoundStep = 8;
constexpr int64_t kFixedRangeRoundStep = 4;

/// The sample's histograms: 2^11 bins per row (in dynamic shared memory:
/// 96 KiB for the 12 rows of long L, two CTAs per SM as its registers
/// allow; 128 KiB and one CTA at select-rows-per-tile = 16), so that one
/// sweep places the cut within 1/2048 of the row's sampled key range.
constexpr int64_t kSampleBinBits = 11;
constexpr int64_t kSampleBins = int64_t(1) << kSampleBinBits;
/// A row's cut is its target bin's lower edge unless that bin alone holds
/// more than target / kSampleRefine (weighted) sample keys, the candidates
/// the edge would add beyond the target at most; only then (crowded scores,
/// e.g. saturated activations) does a tile sweep its sample a third time,
/// for the sub-bins of such rows' target bins. 4 rather than 8: at 128K
/// structured fixed the sample 4.12 -> 3.86 ms, random fixed's stats +0.3
/// ms for the extra candidates (H100, docs/perf-log.md 2026-12-06).
constexpr int64_t kSampleRefine = 4;
/// The dynamic shared memory of a sample kernel with `rows` rows per tile.
constexpr int64_t sampleHistogramBytes(int64_t rows) {
  return rows * kSampleBins * 4;
}

/// One warp (all 32 lanes) over the `bins` bins of one row's histogram,
/// `hist[base, base + bins)` (bins a multiple of 32), counted from the top:
/// the bin where the running count first reaches `goal` (an i32 >= 1), the
/// count above it and its own count, the same in every lane; the bin is -1
/// where the row's total stays below the goal. Lane l sums its bins / 32
/// consecutive bins (lane 0 the highest), a shuffle scan finds the lane
/// whose bins hold the goal, that lane walks them, and a max over the
/// lanes hands its answer to all.
struct TopBin {
  Value bin, above, own;
};
TopBin warpTopBin(Emitter &e, Value hist, Value base, int64_t bins, Value lane,
                  Value goal) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  assert(bins % kWarpSize == 0 && "whole lanes of bins");
  const int64_t perLane = bins / kWarpSize;
  Value zero = e.index(0), count = e.index(perLane);
  Value top =
      e.sub(e.add(base, e.index(bins - 1)), e.mul(lane, e.index(perLane)));
  Value own = e.sum(zero, count, e.i32(0),
                    [&](Value i) { return e.load(hist, {e.sub(top, i)}); });
  Value inclusive = warpInclusiveSum(b, loc, own);
  Value exclusive = e.sub(inclusive, own);
  Value mine = e.andi(e.cmpi(arith::CmpIPredicate::sge, inclusive, goal),
                      e.cmpi(arith::CmpIPredicate::slt, exclusive, goal));
  Value none = e.i32(-1);
  // (running count, bin, count above it, its count); bin -1 until found.
  SmallVector<Value> walk = e.loopCarry(
      zero, count, ValueRange{exclusive, none, none, none},
      [&](Value i, ValueRange c) -> SmallVector<Value> {
        Value at = e.sub(top, i);
        Value h = e.load(hist, {at});
        Value next = e.add(c[0], h);
        Value hit =
            e.andi(e.andi(mine, e.cmpi(arith::CmpIPredicate::eq, c[1], none)),
                   e.cmpi(arith::CmpIPredicate::sge, next, goal));
        return {next, e.select(hit, e.indexToI32(e.sub(at, base)), c[1]),
                e.select(hit, c[0], c[2]), e.select(hit, h, c[3])};
      });
  TopBin result{walk[1], walk[2], walk[3]};
  for (Value *v : {&result.bin, &result.above, &result.own})
    for (int32_t offset = 1; offset < kWarpSize; offset *= 2)
      *v = arith::MaxSIOp::create(b, loc, *v, shuffleXor(b, loc, *v, offset));
  return result;
}

/// Tensor cores only (8-key n-tiles per warp). Per row of the tile: the
/// smallest and largest key of every `rangeRoundStep`-th round of the
/// sample (one sweep, see kRangeRoundStep), then a kSampleBins-bin
/// histogram of the sample over
/// that key range, keys outside it in the end bins (a second sweep,
/// weighted), and the bin where the weighted count from the top reaches
/// `target`: its lower edge is the cut. Where that bin alone holds more
/// than target / kSampleRefine, a third sweep counts the sample inside it
/// in kSampleBins sub-bins and the cut is the lower edge of the sub-bin
/// where the count reaches `target` (only tiles with such a row sweep a
/// third time). The cut is 0 (every key a candidate) where the row has at
/// most `capacity` visible keys or the sample holds fewer than `target`.
void buildSampleKernel(gpu::GPUFuncOp kernel, IndexerOp fused, SourceArgs src,
                       int64_t L, int64_t rows, int cutArg, int64_t target,
                       int64_t capacity, int64_t rangeRoundStep,
                       bool denseTiles) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  Value cutOut = entry.getArgument(cutArg);
  Type i32 = IntegerType::get(kernel.getContext(), 32);
  Value minShared = sharedBuffer(kernel, i32, rows);
  Value maxShared = sharedBuffer(kernel, i32, rows);
  Value edgeShared = sharedBuffer(kernel, i32, rows);
  Value goalShared = sharedBuffer(kernel, i32, rows);
  Value refineShared = sharedBuffer(kernel, i32, rows);
  Value anyRefine = sharedBuffer(kernel, i32, 1);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  Value hist = dynamicSharedBuffer(b, loc, i32, sampleHistogramBytes(rows) / 4);
  TileIds ids = tileIds(e, L, rows, /*longestFirst=*/true);
  // A tile whose real rows all see at most `capacity` keys (t + 1 <=
  // keyEnd) gives each the cut 0 (all its keys are candidates) whatever its
  // sample holds: it stores that and skips the sweeps (every tile at L <=
  // capacity, the shorter half of them at twice that). `denseTiles` off:
  // every tile sweeps (a constant true condition).
  Value sampledTile =
      denseTiles
          ? e.cmpi(arith::CmpIPredicate::ugt, ids.keyEnd, e.index(capacity))
          : arith::ConstantOp::create(b, loc, b.getBoolAttr(true)).getResult();
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, sampledTile,
                  arith::ConstantOp::create(b, loc, b.getBoolAttr(false))),
           [&]() {
             Value t = e.add(ids.t0, ids.tid);
             e.ifThen(e.andi(e.cmpi(arith::CmpIPredicate::ult, ids.tid,
                                    e.index(rows)),
                             e.cmpi(arith::CmpIPredicate::ult, t, e.index(L))),
                      [&]() {
                        e.store(e.i32(0), cutOut,
                                {e.add(e.mul(ids.batch, e.index(L)), t)});
                      });
           });
  // The sweeps below, inside the sampled tiles' branch (uniform per CTA:
  // its barriers are reached by every thread or none).
  auto sampled =
      scf::IfOp::create(b, loc, sampledTile, /*withElseRegion=*/false);
  b.setInsertionPoint(sampled.thenBlock()->getTerminator());
  TileScores source(fused, src, kernel, e, L, rows, ids, /*tensorCores=*/true);
  source.stage();
  e.ifThen(e.cmpi(arith::CmpIPredicate::ult, ids.tid, e.index(rows)), [&]() {
    e.store(e.i32(-1), minShared, {ids.tid});
    e.store(e.i32(0), maxShared, {ids.tid});
  });
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, ids.tid, e.index(0)), [&]() {
    e.store(e.i32(0), anyRefine, {e.index(0)});
  });
  // (Also between the staged head weights and bias and prepare()'s reads.)
  gpu::BarrierOp::create(b, loc);
  source.prepare();
  Value zero = e.index(0), chunk = e.index(source.chunk());
  Value tile = arith::DivUIOp::create(b, loc, ids.t0, e.index(rows));

  // [0, head) and [tail, keyEnd) whole (chunk-aligned), [head, tail) sampled.
  Value head = e.minui(e.index(kSampleHead), ids.keyEnd);
  Value late = e.cmpi(arith::CmpIPredicate::ugt, ids.keyEnd,
                      e.index(kSampleHead + kSampleTail));
  Value tailFrom = e.mul(
      arith::DivUIOp::create(b, loc, e.sub(ids.keyEnd, e.index(kSampleTail)),
                             chunk),
      chunk);
  Value tail = e.select(late, e.maxui(tailFrom, head), head);
  Value block = e.index(8 * kSampleStride);
  Value blocks = arith::DivUIOp::create(
      b, loc, e.add(e.sub(tail, head), e.index(8 * kSampleStride - 1)), block);
  // Per visit slot: whether its row is a real one (t < L).
  SmallVector<Value> realRow;
  for (int64_t m = 0; m < source.slots(); ++m)
    realRow.push_back(e.cmpi(arith::CmpIPredicate::ult,
                             e.add(ids.t0, source.slotRow(m)), e.index(L)));
  // use(visit, visible, weight, slot, state): `state` (values carried
  // through both loops, initially `init`) is the caller's to update.
  using SampledUse = function_ref<void(const Visit &, Value, Value, int64_t,
                                       SmallVectorImpl<Value> &)>;
  // `roundStep`: every roundStep-th round of the sampled span only (the
  // range sweep's sparser sample).
  auto forEachSampledCarry = [&](ValueRange init, SampledUse use,
                                 int64_t roundStep = 1) {
    // The head chunk and then the tail chunks, in one loop (one copy of the
    // visit code: compile time).
    Value tailChunks = arith::DivUIOp::create(
        b, loc, e.add(e.sub(ids.keyEnd, tail), e.index(source.chunk() - 1)),
        chunk);
    SmallVector<Value> state = e.loopCarry(
        zero, e.add(tailChunks, e.index(1)), init,
        [&](Value i, ValueRange carried) -> SmallVector<Value> {
          SmallVector<Value> next(carried.begin(), carried.end());
          Value first = e.cmpi(arith::CmpIPredicate::eq, i, zero);
          Value s0 = e.select(first, zero,
                              e.add(tail, e.mul(e.sub(i, e.index(1)), chunk)));
          for (auto [m, v] : llvm::enumerate(source.visits(s0)))
            use(v, visibleFrom(e, ids, L, v), e.i32(1), m, next);
          return next;
        });
    // Warp w takes block i * 8 + w of the sampled span, one n-tile of it.
    Value rounds = arith::DivUIOp::create(
        b, loc, e.add(blocks, e.index(kWarps - 1)), e.index(kWarps));
    auto baseOf = [&](Value i) {
      Value blk = e.add(e.mul(i, e.index(kWarps)), ids.warp);
      Value mixed = e.add(e.mul(blk, e.index(7)), e.mul(tile, e.index(5)));
      Value pick =
          arith::AndIOp::create(b, loc, mixed, e.index(kSampleStride - 1));
      return e.add(head, e.add(e.mul(blk, block), e.mul(pick, e.index(8))));
    };
    // The sampled span ends at least kSampleTail - chunk keys before the
    // tile's first row: its keys are below L and visible from every real
    // row, so no causal mask. But the last round's warps past the span's
    // blocks (up to 7 blocks of 128 keys past `tail`, which lies only
    // ~kSampleTail below keyEnd) take n-tiles past keyEnd - for the last
    // tiles up to 64 keys past L -, and so does key 0's n-tile when L < 8:
    // their visits are masked (inSpan), their loads clamped to key L - 1
    // (keyFragments' bounds), so that no load leaves ki (unclamped, the
    // last tiles read 8 KiB past it: a fault wherever ki ends its
    // allocation; gsa_bench at 64K, docs/perf-log.md fifteenth session).
    // A round's key fragments are loaded a round ahead (carried), so that
    // the loads' latency overlaps the products and histogram updates of
    // the round before; the round after the last loads its own n-tile
    // again (key 0 where there is no round at all). 128K structured:
    // sample 3.78 -> 3.36 ms fixed, 3.78 -> 3.33 inverse (H100,
    // docs/perf-log.md 2026-12-06 eighth session).
    Value firstBase = e.select(e.cmpi(arith::CmpIPredicate::ult, zero, rounds),
                               baseOf(zero), zero);
    SmallVector<Value> carriedInit(state.begin(), state.end());
    size_t fragsAt = carriedInit.size();
    llvm::append_range(carriedInit, source.keyFragments(firstBase));
    SmallVector<Value> done = e.loopStepCarry(
        zero, rounds, e.index(roundStep), carriedInit,
        [&](Value i, ValueRange carried) -> SmallVector<Value> {
          SmallVector<Value> next(carried.begin(), carried.begin() + fragsAt);
          SmallVector<Value> frags(carried.begin() + fragsAt, carried.end());
          Value base = baseOf(i);
          Value after = e.add(i, e.index(roundStep));
          Value nextBase =
              e.select(e.cmpi(arith::CmpIPredicate::ult, after, rounds),
                       baseOf(after), base);
          SmallVector<Value> ahead = source.keyFragments(nextBase);
          for (auto [m, v] : llvm::enumerate(source.visitsWith(frags, base))) {
            Value inSpan = e.cmpi(arith::CmpIPredicate::ult, v.s, tail);
            use(v, e.andi(realRow[m], inSpan), e.i32(kSampleStride), m, next);
          }
          llvm::append_range(next, ahead);
          return next;
        });
    done.resize(fragsAt);
    return done;
  };
  auto forEachSampled = [&](function_ref<void(const Visit &, Value, Value,
                                              int64_t)> use) {
    forEachSampledCarry({}, [&](const Visit &v, Value visible, Value weight,
                                int64_t m, SmallVectorImpl<Value> &) {
      use(v, visible, weight, m);
    });
  };

  // Adds `weight` to bin `bin` (i32, clamped to the last) of a row.
  auto count = [&](Value row, Value bin, Value weight) {
    Value at = e.add(e.mul(row, e.index(kSampleBins)),
                     arith::IndexCastUIOp::create(
                         b, loc, b.getIndexType(),
                         e.minui(bin, e.i32(kSampleBins - 1))));
    memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addi, weight,
                                hist, ValueRange{at});
  };
  auto clearHistograms = [&]() {
    e.loopStep(ids.tid, e.index(rows * kSampleBins), e.index(kThreads),
               [&](Value i) { e.store(e.i32(0), hist, {i}); });
  };
  // (Cleared while the range sweep runs: the barrier after it orders both.)
  clearHistograms();
  // The sample's key range: per thread and slot a smallest and largest
  // key in registers, combined over the lanes holding the same row, then
  // one shared atomic per warp and row (shared atomics on every visit
  // serialised the lanes of a row).
  SmallVector<Value> rangeInit;
  for (int64_t m = 0; m < source.slots(); ++m) {
    rangeInit.push_back(e.i32(-1));
    rangeInit.push_back(e.i32(0));
  }
  SmallVector<Value> range = forEachSampledCarry(
      rangeInit,
      [&](const Visit &v, Value visible, Value, int64_t m,
          SmallVectorImpl<Value> &state) {
        Value key = orderKey(e, v.score);
        state[2 * m] =
            e.select(visible, e.minui(state[2 * m], key), state[2 * m]);
        state[2 * m + 1] =
            e.select(visible, e.maxui(state[2 * m + 1], key), state[2 * m + 1]);
      },
      rangeRoundStep);
  Value rangeLeader = source.isRowLeader();
  for (int64_t m = 0; m < source.slots(); ++m) {
    Value mn = range[2 * m], mx = range[2 * m + 1];
    for (int32_t offset : source.rowXors()) {
      mn = e.minui(mn, shuffleXor(b, loc, mn, offset));
      mx = e.maxui(mx, shuffleXor(b, loc, mx, offset));
    }
    e.ifThen(rangeLeader, [&]() {
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::minu, mn,
                                  minShared, ValueRange{source.slotRow(m)});
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::maxu, mx,
                                  maxShared, ValueRange{source.slotRow(m)});
    });
  }
  gpu::BarrierOp::create(b, loc);
  // Bins of the sample's key range: key - min shifted right until the
  // range spans at most kSampleBins bins; the sub-bins of a bin likewise.
  auto shiftOf = [&](Value row) {
    Value span = e.sub(e.load(maxShared, {row}), e.load(minShared, {row}));
    Value bits = e.sub(e.i32(32), countLeadingZeros(b, loc, span));
    return arith::MaxSIOp::create(b, loc, e.sub(bits, e.i32(kSampleBinBits)),
                                  e.i32(0))
        .getResult();
  };
  auto subShiftOf = [&](Value shift) {
    return arith::MaxSIOp::create(b, loc, e.sub(shift, e.i32(kSampleBinBits)),
                                  e.i32(0))
        .getResult();
  };
  // The offset of a found bin's lower edge (bin 0 where none was found).
  auto binOffset = [&](const TopBin &found, Value shift) {
    return arith::ShLIOp::create(
               b, loc,
               arith::MaxSIOp::create(b, loc, found.bin, e.i32(0)).getResult(),
               shift)
        .getResult();
  };
  // Each slot's row minimum and shift, read once (the shared atomics in
  // the sweep keep the compiler from hoisting these loads itself).
  SmallVector<Value> rowMins, rowShifts;
  for (int64_t m = 0; m < source.slots(); ++m) {
    rowMins.push_back(e.load(minShared, {source.slotRow(m)}));
    rowShifts.push_back(shiftOf(source.slotRow(m)));
  }
  // The range came from a sparser sample (rangeRoundStep): a key below
  // its smallest counts in bin 0, one above its largest in the last bin.
  forEachSampled([&](const Visit &v, Value visible, Value weight, int64_t m) {
    e.ifThen(visible, [&]() {
      Value key = orderKey(e, v.score);
      Value above = e.maxui(key, rowMins[m]);
      count(v.row,
            arith::ShRUIOp::create(b, loc, e.sub(above, rowMins[m]),
                                   rowShifts[m]),
            weight);
    });
  });
  gpu::BarrierOp::create(b, loc);

  // Warp w, rows w, w + kWarps, ...: the bin where the weighted count from
  // the top reaches `target`; its lower edge (edgeShared), the count still
  // wanted inside it (goalShared, -1: the sample holds fewer than target)
  // and whether it is crowded (refineShared; anyRefine: some row is).
  Value lane0 = e.cmpi(arith::CmpIPredicate::eq, ids.lane, zero);
  e.loopStep(ids.warp, e.index(rows), e.index(kWarps), [&](Value r) {
    TopBin found = warpTopBin(e, hist, e.mul(r, e.index(kSampleBins)),
                              kSampleBins, ids.lane, e.i32(target));
    Value hit = e.cmpi(arith::CmpIPredicate::sge, found.bin, e.i32(0));
    Value crowded = e.andi(hit, e.cmpi(arith::CmpIPredicate::sgt, found.own,
                                       e.i32(target / kSampleRefine)));
    e.ifThen(lane0, [&]() {
      e.store(e.add(e.load(minShared, {r}), binOffset(found, shiftOf(r))),
              edgeShared, {r});
      e.store(e.select(hit, e.sub(e.i32(target), found.above), e.i32(-1)),
              goalShared, {r});
      e.store(arith::ExtUIOp::create(b, loc, i32, crowded).getResult(),
              refineShared, {r});
      e.ifThen(crowded, [&]() { e.store(e.i32(1), anyRefine, {zero}); });
    });
  });
  gpu::BarrierOp::create(b, loc);

  // Crowded rows: the sub-bins of the target bin (the tile's third sweep),
  // then each such row's cut inside it (edgeShared moved up to the sub-bin).
  Value refine =
      e.cmpi(arith::CmpIPredicate::ne, e.load(anyRefine, {zero}), e.i32(0));
  e.ifThen(refine, [&]() {
    clearHistograms();
    gpu::BarrierOp::create(b, loc);
    SmallVector<Value> edges, subShifts, crowdedRow;
    for (int64_t m = 0; m < source.slots(); ++m) {
      edges.push_back(e.load(edgeShared, {source.slotRow(m)}));
      subShifts.push_back(subShiftOf(rowShifts[m]));
      crowdedRow.push_back(e.cmpi(arith::CmpIPredicate::ne,
                                  e.load(refineShared, {source.slotRow(m)}),
                                  e.i32(0)));
    }
    forEachSampled([&](const Visit &v, Value visible, Value weight, int64_t m) {
      Value key = orderKey(e, v.score);
      Value edge = edges[m];
      Value inBin = e.andi(
          e.cmpi(arith::CmpIPredicate::uge, key, edge),
          e.cmpi(arith::CmpIPredicate::eq,
                 arith::ShRUIOp::create(b, loc, e.sub(key, edge), rowShifts[m]),
                 e.i32(0)));
      e.ifThen(e.andi(e.andi(visible, crowdedRow[m]), inBin), [&]() {
        count(v.row,
              arith::ShRUIOp::create(b, loc, e.sub(key, edge), subShifts[m]),
              weight);
      });
    });
    gpu::BarrierOp::create(b, loc);
    e.loopStep(ids.warp, e.index(rows), e.index(kWarps), [&](Value r) {
      Value crowded =
          e.cmpi(arith::CmpIPredicate::ne, e.load(refineShared, {r}), e.i32(0));
      e.ifThen(crowded, [&]() {
        // The sub-bins count only keys inside the bin (the end bins also
        // held keys outside the range): where they fall short of the goal
        // the cut stays at the bin's edge (bin -1 -> sub-bin 0).
        TopBin found =
            warpTopBin(e, hist, e.mul(r, e.index(kSampleBins)), kSampleBins,
                       ids.lane, e.load(goalShared, {r}));
        e.ifThen(lane0, [&]() {
          Value sub = binOffset(found, subShiftOf(shiftOf(r)));
          e.store(e.add(e.load(edgeShared, {r}), sub), edgeShared, {r});
        });
      });
    });
    gpu::BarrierOp::create(b, loc);
  });

  // Thread r: row t0 + r's cut.
  Value r = ids.tid;
  Value t = e.add(ids.t0, r);
  Value owner = e.andi(e.cmpi(arith::CmpIPredicate::ult, r, e.index(rows)),
                       e.cmpi(arith::CmpIPredicate::ult, t, e.index(L)));
  e.ifThen(owner, [&]() {
    Value found =
        e.cmpi(arith::CmpIPredicate::sge, e.load(goalShared, {r}), e.i32(0));
    Value cut = e.load(edgeShared, {r});
    Value few = e.cmpi(arith::CmpIPredicate::ule, e.add(t, e.index(1)),
                       e.index(capacity));
    Value none =
        e.cmpi(arith::CmpIPredicate::eq, found,
               arith::ConstantOp::create(b, loc, b.getBoolAttr(false)));
    // The key of +0.0 is never a cut: the stats sweep's float test
    // (cutFloat) would take -0.0 too, a key below it; one key lower (-0.0's)
    // takes the same scores and is exact.
    cut = e.select(e.cmpi(arith::CmpIPredicate::eq, cut,
                          e.i32(std::numeric_limits<int32_t>::min())),
                   e.i32(std::numeric_limits<int32_t>::max()), cut);
    e.store(e.select(e.ori(few, none), e.i32(0), cut), cutOut,
            {e.add(e.mul(ids.batch, e.index(L)), t)});
  });
  b.setInsertionPointAfter(sampled);
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
                     SourceArgs src, int64_t L, int64_t rows, bool tensorCores,
                     int firstStats,
                     ReferenceSource refSource, int refArg, int indicesArg,
                     int countsArg, int doneArg, bool statsKeysComparable) {
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
  Value writtenShared = sharedBuffer(kernel, i32, rows);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  TileIds ids = tileIds(e, L, rows);
  TileScores source(fused, src, kernel, e, L, rows, ids, tensorCores);
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
          // A row the sampled selection finished is left alone (mode 2).
          Value finished = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
          if (doneArg >= 0)
            finished = e.cmpi(arith::CmpIPredicate::eq,
                              e.load(entry.getArgument(doneArg), {row}), e.i32(1));
          e.ifThen(e.cmpi(arith::CmpIPredicate::eq, finished,
                          arith::ConstantOp::create(b, loc, b.getBoolAttr(false))),
                   [&]() { e.store(e.indexToI32(k), counts, {row}); });
          Value mn = e.load(minKeys, {row}), mx = e.load(maxKeys, {row});
          // Where the stats kernel's scores are not this kernel's to the bit
          // (its products on wgmma, summed in another order and with scale
          // and bias inside; behind the sampled selection the range is
          // also only its candidates'), a key here may leave that range by
          // some ulps: no bits are taken as shared (full passes; rows of
          // non-negative scores behind the sampled selection take them
          // anyway). Taken as shared, such a key would miss every pass.
          if (!statsKeysComparable) {
            mn = e.i32(0);
            mx = e.i32(-1);
          }
          // The bits every key of the row shares need no pass.
          Value diff = arith::XOrIOp::create(b, loc, mn, mx);
          Value shift =
              e.sub(e.i32(32), countLeadingZeros(b, loc, diff));
          Value shift64 = u64(e, shift);
          Value top = arith::ShRUIOp::create(b, loc, u64(e, mn), shift64);
          Value prefix = i32Of(e, arith::ShLIOp::create(b, loc, top, shift64));
          Value all = e.cmpi(arith::CmpIPredicate::eq, k, n);
          Value mode = e.select(finished, e.i32(2),
                                e.select(all, e.i32(1), e.i32(0)));
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
  // With the sampled selection in front, a tile whose rows are all done
  // skips every pass.
  scf::IfOp liveTile;
  if (doneArg >= 0) {
    Value anyLive = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
    for (int64_t r = 0; r < rows; ++r)
      anyLive = e.ori(anyLive, e.cmpi(arith::CmpIPredicate::ne,
                                      e.load(modeShared, {e.index(r)}), e.i32(2)));
    liveTile = scf::IfOp::create(b, loc, anyLive, /*withElseRegion=*/false);
    b.setInsertionPoint(liveTile.thenBlock()->getTerminator());
  }
  source.prepare();
  int64_t slots = source.slots();
  SmallVector<Value> slotRows;
  for (int64_t m = 0; m < slots; ++m)
    slotRows.push_back(source.slotRow(m));

  // Radix passes: at most ceil(32 / 8); rows finish independently.
  e.loop(zero, e.index((32 + kRadixBits - 1) / kRadixBits), [&](Value) {
    e.loopStep(ids.tid, e.index(rows * kBins), e.index(kThreads),
               [&](Value i) { e.store(e.i32(0), hist, {i}); });
    // Any row still narrowing (uniform); each visit slot's row state.
    Value any = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
    auto activeRow = [&](Value row) {
      Value mode = e.load(modeShared, {row});
      Value shift = e.load(shiftShared, {row});
      return e.andi(e.cmpi(arith::CmpIPredicate::eq, mode, e.i32(0)),
                    e.cmpi(arith::CmpIPredicate::ugt, shift, e.i32(0)));
    };
    for (int64_t r = 0; r < rows; ++r)
      any = e.ori(any, activeRow(e.index(r)));
    SmallVector<Value> active, shifts, prefixes;
    for (Value row : slotRows) {
      active.push_back(activeRow(row));
      shifts.push_back(e.load(shiftShared, {row}));
      prefixes.push_back(e.load(prefixShared, {row}));
    }
    gpu::BarrierOp::create(b, loc);
    e.ifThen(any, [&]() {
      e.loopStep(zero, ids.keyEnd, e.index(source.chunk()), [&](Value s0) {
        SmallVector<Visit> visits = source.visits(s0);
        for (auto [m, v] : llvm::enumerate(visits)) {
          Value visible = visibleFrom(e, ids, L, v);
          Value key = orderKey(e, v.score);
          Value shift64 = u64(e, shifts[m]);
          Value match = e.cmpi(
              arith::CmpIPredicate::eq,
              arith::ShRUIOp::create(b, loc, u64(e, key), shift64),
              arith::ShRUIOp::create(b, loc, u64(e, prefixes[m]), shift64));
          Value bits = e.minui(shifts[m], e.i32(kRadixBits));
          Value low = e.sub(shifts[m], bits);
          Value mask = e.sub(arith::ShLIOp::create(b, loc, e.i32(1), bits),
                             e.i32(1));
          Value digit = arith::AndIOp::create(
              b, loc, arith::ShRUIOp::create(b, loc, key, low), mask);
          Value counted = e.andi(active[m], e.andi(visible, match));
          e.ifThen(counted, [&]() {
            Value slot = e.add(e.mul(v.row, e.index(kBins)),
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
      Value shift = e.load(shiftShared, {r});
      e.ifThen(activeRow(r), [&]() {
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
  for (Value row : slotRows) {
    modes.push_back(e.load(modeShared, {row}));
    thresholds.push_back(e.load(prefixShared, {row}));
    cuts.push_back(e.i32ToIndex(
        e.sub(e.load(equalShared, {row}), e.load(remainShared, {row}))));
  }
  Value rowLanes = source.rowLanes();
  Value lowerLanes = source.lowerLanes();
  Value leader = source.isRowLeader();
  // Per chunk parity, kind (0 ties, 1 selected), row and warp.
  auto countSlot = [&](Value parity, int64_t kind, Value row, Value w) {
    Value base = e.mul(e.add(e.mul(parity, e.index(2)), e.index(kind)),
                       e.index(rows));
    return e.add(e.mul(e.add(base, row), e.index(kWarps)), w);
  };
  // Sum of the warps' counts before this warp, and over all warps (warp w
  // holds the keys after those of warps < w in every iteration).
  auto prefixAndTotal = [&](Value parity, int64_t kind, Value row) {
    Value before = zero, total = zero;
    for (int64_t w = 0; w < kWarps; ++w) {
      Value c = e.i32ToIndex(
          e.load(warpCounts, {countSlot(parity, kind, row, e.index(w))}));
      Value earlier = e.cmpi(arith::CmpIPredicate::ult, e.index(w), ids.warp);
      before = e.add(before, e.select(earlier, c, zero));
      total = e.add(total, c);
    }
    return std::make_pair(before, total);
  };
  auto laneCount = [&](Value ballot, Value lanes) {
    return popCount(b, loc, arith::AndIOp::create(b, loc, ballot, lanes));
  };
  SmallVector<Value> init(2 * slots, zero); // written, ties seen
  SmallVector<Value> written = e.loopStepCarry(
      zero, ids.keyEnd, e.index(source.chunk()), init,
      [&](Value s0, ValueRange carried) -> SmallVector<Value> {
        Value parity = arith::RemUIOp::create(
            b, loc, e.div(s0, e.index(source.chunk())), e.index(2));
        SmallVector<Visit> visits = source.visits(s0);
        SmallVector<Value> visible, above, tie, tieBallot;
        for (auto [m, v] : llvm::enumerate(visits)) {
          Value inRow = e.cmpi(arith::CmpIPredicate::ne, modes[m], e.i32(2));
          Value vis = e.andi(inRow, visibleFrom(e, ids, L, v));
          Value key = orderKey(e, v.score);
          visible.push_back(vis);
          above.push_back(e.andi(
              vis, e.cmpi(arith::CmpIPredicate::ugt, key, thresholds[m])));
          tie.push_back(e.andi(
              vis, e.cmpi(arith::CmpIPredicate::eq, key, thresholds[m])));
          tieBallot.push_back(warpBallot(b, loc, tie.back()));
          Value count = e.indexToI32(laneCount(tieBallot.back(), rowLanes));
          e.ifThen(leader, [&]() {
            e.store(count, warpCounts, {countSlot(parity, 0, v.row, ids.warp)});
          });
        }
        gpu::BarrierOp::create(b, loc);
        SmallVector<Value> selected, selBallot, tieTotals;
        for (auto [m, v] : llvm::enumerate(visits)) {
          auto [before, total] = prefixAndTotal(parity, 0, v.row);
          tieTotals.push_back(total);
          Value rank = e.add(e.add(carried[2 * m + 1], before),
                             laneCount(tieBallot[m], lowerLanes));
          Value tieTaken =
              e.andi(tie[m], e.cmpi(arith::CmpIPredicate::uge, rank, cuts[m]));
          Value radixTaken = e.andi(
              e.cmpi(arith::CmpIPredicate::eq, modes[m], e.i32(0)),
              e.ori(above[m], tieTaken));
          Value allTaken = e.andi(
              e.cmpi(arith::CmpIPredicate::eq, modes[m], e.i32(1)), visible[m]);
          Value sel = e.ori(radixTaken, allTaken);
          selected.push_back(sel);
          selBallot.push_back(warpBallot(b, loc, sel));
          Value count = e.indexToI32(laneCount(selBallot.back(), rowLanes));
          e.ifThen(leader, [&]() {
            e.store(count, warpCounts, {countSlot(parity, 1, v.row, ids.warp)});
          });
        }
        gpu::BarrierOp::create(b, loc);
        SmallVector<Value> next;
        for (auto [m, v] : llvm::enumerate(visits)) {
          auto [before, total] = prefixAndTotal(parity, 1, v.row);
          Value pos = e.add(e.add(carried[2 * m], before),
                            laneCount(selBallot[m], lowerLanes));
          // (pos < K holds for consistent keys; the guard keeps any other
          // case inside the row's K slots.)
          e.ifThen(e.andi(selected[m], e.cmpi(arith::CmpIPredicate::ult, pos,
                                              e.index(K))),
                   [&]() {
            Value row = e.add(e.mul(ids.batch, cL), e.add(ids.t0, v.row));
            e.store(e.indexToI32(v.s), indices,
                    {e.add(e.mul(row, e.index(K)), pos)});
          });
          next.push_back(e.add(carried[2 * m], total));
          next.push_back(e.add(carried[2 * m + 1], tieTotals[m]));
        }
        return next;
      });

  // Every thread holding a row knows its count; warp 0's leaders publish
  // them, then every real row is padded with -1.
  Value warp0 = e.cmpi(arith::CmpIPredicate::eq, ids.warp, zero);
  e.ifThen(e.andi(warp0, leader), [&]() {
    for (int64_t m = 0; m < slots; ++m)
      e.store(e.indexToI32(written[2 * m]), writtenShared, {slotRows[m]});
  });
  gpu::BarrierOp::create(b, loc);
  for (int64_t r = 0; r < rows; ++r) {
    Value t = e.add(ids.t0, e.index(r));
    // Rows past L and rows done before (mode 2) are not written.
    Value mode = e.load(modeShared, {e.index(r)});
    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, mode, e.i32(2)), [&]() {
      Value row = e.add(e.mul(ids.batch, cL), t);
      Value count = e.i32ToIndex(e.load(writtenShared, {e.index(r)}));
      e.loopStep(e.add(count, ids.tid), e.index(K), e.index(kThreads),
                 [&](Value j) {
                   e.store(e.i32(-1), indices,
                           {e.add(e.mul(row, e.index(K)), j)});
                 });
    });
  }
  if (liveTile)
    b.setInsertionPointAfter(liveTile);
  gpu::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// finish: the exact top-k_t of each row among its candidates
//===----------------------------------------------------------------------===//

constexpr int64_t kMaxTies = 1024;
/// The finish kernel's compact path: a histogram of kFinishBins bins over
/// the row's candidate range, and at most kFinishList candidates of the
/// k-th largest's bin ranked in shared memory.
constexpr int64_t kFinishBinBits = 11;
constexpr int64_t kFinishBins = int64_t(1) << kFinishBinBits;
constexpr int64_t kFinishList = 512;
/// Candidates per thread and iteration of the finish kernel's sweeps; the
/// compact path's first sweep, which loads keys only, takes 8 (finish
/// -15% at 128K structured fixed together with the block-wide bin search
/// and the write-out's skipped empty steps, perf-log 2026-12-07; the
/// second sweep at 8 measured the same as at 4).
constexpr int64_t kFinishUnroll = 4;
constexpr int64_t kFinishKeyUnroll = 8;

/// One warp (all 32 lanes): the bin of a 256-bin histogram, counted from
/// the top, where the running count first reaches `remain` (i32), the
/// count above it and its own count. Lane l sums bins 255 - 8l .. 248 - 8l,
/// a shuffle scan finds the lane whose range holds the answer, and that
/// lane walks its 8 bins; the other lanes return digit -1.
std::array<Value, 3> thresholdBin(Emitter &e, Value hist, Value lane,
                                  Value remain) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  constexpr int64_t perLane = kBins / kWarpSize;
  SmallVector<Value> h;
  Value top = e.sub(e.index(kBins - 1), e.mul(lane, e.index(perLane)));
  Value own = e.i32(0);
  for (int64_t i = 0; i < perLane; ++i) {
    h.push_back(e.load(hist, {e.sub(top, e.index(i))}));
    own = e.add(own, h.back());
  }
  Value inclusive = warpInclusiveSum(b, loc, own);
  Value exclusive = e.sub(inclusive, own);
  Value mine = e.andi(
      e.cmpi(arith::CmpIPredicate::uge, inclusive, remain),
      e.ori(e.cmpi(arith::CmpIPredicate::ult, exclusive, remain),
            e.cmpi(arith::CmpIPredicate::eq, lane, e.index(0))));
  Value digit = e.i32(-1), above = e.i32(0), equal = e.i32(0);
  Value found = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
  Value cum = exclusive;
  for (int64_t i = 0; i < perLane; ++i) {
    Value next = e.add(cum, h[i]);
    Value hit = e.andi(e.andi(mine, e.cmpi(arith::CmpIPredicate::eq, found,
                                           arith::ConstantOp::create(
                                               b, loc, b.getBoolAttr(false)))),
                       e.cmpi(arith::CmpIPredicate::uge, next, remain));
    digit = e.select(hit, e.indexToI32(e.sub(top, e.index(i))), digit);
    above = e.select(hit, cum, above);
    equal = e.select(hit, h[i], equal);
    found = e.ori(found, hit);
    cum = next;
  }
  return {digit, above, equal};
}

/// Buffers of the sampled selection's candidates and the finish kernel.
struct Candidates {
  int cuts = -1, keys = -1, positions = -1, counts = -1, done = -1;
  int64_t capacity = 0;
};

/// One CTA per row. k_t from the row's statistics (as the topk kernel);
/// a row whose k_t is all its keys takes 0..t. Otherwise, when the row's
/// candidates hold at least k_t keys and did not overflow (so the k_t-th
/// largest key and all its ties are among them): first the compact path
/// (a histogram over the candidates' key range, the k_t-th's bin ranked in
/// shared memory; see below), else an exact radix select of the k_t-th
/// largest key (4 passes of 8 bits over a shared
/// histogram, the bin found by one warp; the compact path's 2048-bin one by
/// the whole block), ties at the threshold to the
/// largest positions (ranked only where some ties are left out), and the
/// selected positions written in ascending
/// order through a bitmap over the positions (a window of 32 x
/// bitmapWords positions at a time: set bits, a block-wide prefix count of
/// the words, each thread writing its words' positions); the row is marked
/// done. Any other row (too few candidates, overflow, more than kMaxTies
/// ties) is left to the topk kernel (done = 0). The candidates are read
/// from L2 in every pass (4 per thread and iteration, 8 in the compact
/// path's key sweep; loads first): held in
/// registers instead, they cost occupancy (2 CTAs per SM) and measured
/// slower. `bulkPrefetch` (sm_90): the row's candidates are requested into
/// L2 by two bulk prefetches at the start.
void buildFinishKernel(gpu::GPUFuncOp kernel, AdaptiveTopKOp op, int64_t L,
                       int firstStats, ReferenceSource refSource, int refArg,
                       const Candidates &cand, int indicesArg, int countsArg,
                       int64_t threads, bool bulkPrefetch) {
  const int64_t warps = threads / kWarpSize;
  MLIRContext *ctx = kernel.getContext();
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  auto [means, vars, minKeys, maxKeys] = rowStatsArgs(entry, firstStats);
  (void)minKeys;
  Value reference = refArg >= 0 ? entry.getArgument(refArg) : Value();
  Value keys = entry.getArgument(cand.keys),
        positions = entry.getArgument(cand.positions),
        candCounts = entry.getArgument(cand.counts),
        done = entry.getArgument(cand.done);
  Value indices = entry.getArgument(indicesArg);
  Value counts = entry.getArgument(countsArg);
  int64_t K = op.getKMax();
  constexpr int64_t bitmapWords = 4096;
  Type i32 = IntegerType::get(ctx, 32);
  Value bitmap = sharedBuffer(kernel, i32, bitmapWords);
  // (The radix passes use its first kBins.)
  Value hist = sharedBuffer(kernel, i32, kFinishBins);
  Value ties = sharedBuffer(kernel, i32, kMaxTies);
  Value listKeys = sharedBuffer(kernel, i32, kFinishList);
  Value listPositions = sharedBuffer(kernel, i32, kFinishList);
  // bin, need, the bin's count, listed
  Value compactScalars = sharedBuffer(kernel, i32, 4);
  Value warpTotals = sharedBuffer(kernel, i32, warps);
  // prefix, remain, equal, -, tie count, k_t, a cut-0 row's smallest and
  // largest key
  Value scalars = sharedBuffer(kernel, i32, 8);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value zero = e.index(0), cK = e.index(K), nt = e.index(threads);
  Value lead = e.cmpi(arith::CmpIPredicate::eq, tid, zero);
  Value warp = arith::DivUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value warp0 = e.cmpi(arith::CmpIPredicate::ult, tid, e.index(kWarpSize));
  Value lane = arith::RemUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value row = e.add(e.mul(batch, e.index(L)), t);
  Value n = e.add(t, e.index(1));
  if (bulkPrefetch) {
    // The stats kernel wrote the row's candidates long before (device
    // memory, not L2): one thread asks for all of them in L2 at once (two
    // bulk prefetches) while thread 0 works out k_t, so that the sweeps
    // below wait on L2 rather than on a device-memory round trip in each
    // of their iterations. 128K, H100: finish 3.41 -> 3.33 ms structured
    // fixed, 3.64 -> 3.53 random, 4.28 -> 4.10 structured inverse; the next
    // wave's rows (t + 660) prefetched as well: 3.90 (docs/perf-log.md,
    // 2026-12-07 tenth session).
    e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, e.index(kWarpSize)), [&]() {
      Value listed = e.minui(e.i32ToIndex(e.load(candCounts, {row})),
                             e.index(cand.capacity));
      Value first = e.mul(row, e.index(cand.capacity));
      prefetchL2(e, keys, first, listed);
      prefetchL2(e, positions, first, listed);
    });
  }
  Value vBar = e.f64(0.0);
  if (refSource == ReferenceSource::Scratch)
    vBar = e.load(reference, {zero});
  else if (refSource == ReferenceSource::RunningVar)
    vBar = e.f32ToF64(e.load(reference, {}));
  // k_t by one thread (the f64 division's slow path is a call whose
  // register saves ptxas counts as spills in every thread otherwise).
  e.ifThen(lead, [&]() {
    Value budget = e.minui(rowBudget(e, op, e.load(means, {row}),
                                     e.load(vars, {row}), vBar, t),
                           n);
    e.store(e.indexToI32(budget), scalars, {e.index(5)});
  });
  gpu::BarrierOp::create(b, loc);
  Value k = e.i32ToIndex(e.load(scalars, {e.index(5)}));
  Value count = e.i32ToIndex(e.load(candCounts, {row}));
  Value rowBase = e.mul(row, e.index(cand.capacity));
  Value all = e.cmpi(arith::CmpIPredicate::eq, k, n);
  Value usable = e.andi(
      e.cmpi(arith::CmpIPredicate::ule, count, e.index(cand.capacity)),
      e.cmpi(arith::CmpIPredicate::uge, count, k));
  Value falseV = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
  Value notAll = e.cmpi(arith::CmpIPredicate::eq, all, falseV);
  auto markDone = [&]() {
    e.ifThen(lead, [&]() {
      e.store(e.indexToI32(k), counts, {row});
      e.store(e.i32(1), done, {row});
    });
  };
  e.ifThen(all, [&]() {
    e.loopStep(tid, cK, nt, [&](Value j) {
      Value entryAt = e.select(e.cmpi(arith::CmpIPredicate::ult, j, n),
                               e.indexToI32(j), e.i32(-1));
      e.store(entryAt, indices, {e.add(e.mul(row, cK), j)});
    });
    markDone();
  });
  e.ifThen(e.andi(notAll, e.cmpi(arith::CmpIPredicate::eq, usable, falseV)),
           [&]() { e.ifThen(lead, [&]() { e.store(e.i32(0), done, {row}); }); });
  e.ifThen(e.andi(notAll, usable), [&]() {
    // Every candidate once, `unroll` per thread and iteration with their
    // loads issued first: use(key, position, live) per candidate.
    // With values carried through the sweep: use(key, position, live,
    // carried) returns the next ones.
    using CandidateFold =
        function_ref<SmallVector<Value>(Value, Value, Value, ValueRange)>;
    auto foldCandidates = [&](bool withPositions, ValueRange init,
                              CandidateFold use, int64_t unroll) {
      return e.loopStepCarry(
          tid, count, e.index(unroll * threads), init,
          [&](Value i0, ValueRange carried) -> SmallVector<Value> {
            SmallVector<Value> cKey, cPos, cLive;
            for (int64_t u = 0; u < unroll; ++u) {
              Value i = e.add(i0, e.index(u * threads));
              cLive.push_back(e.cmpi(arith::CmpIPredicate::ult, i, count));
              Value at =
                  e.add(rowBase, e.minui(i, e.index(cand.capacity - 1)));
              cKey.push_back(e.load(keys, {at}));
              cPos.push_back(withPositions ? e.load(positions, {at})
                                           : Value());
            }
            SmallVector<Value> next(carried.begin(), carried.end());
            for (int64_t u = 0; u < unroll; ++u)
              next = use(cKey[u], cPos[u], cLive[u], next);
            return next;
          });
    };
    auto forEachCandidate = [&](bool withPositions,
                                function_ref<void(Value, Value, Value)> use,
                                int64_t unroll = kFinishUnroll) {
      foldCandidates(
          withPositions, {},
          [&](Value key, Value pos, Value live, ValueRange) {
            use(key, pos, live);
            return SmallVector<Value>{};
          },
          unroll);
    };
    e.ifThen(lead, [&]() {
      e.store(e.indexToI32(k), scalars, {e.index(1)});
      e.store(e.i32(0), scalars, {e.index(4)});
      e.store(e.i32(-1), scalars, {e.index(6)});
      e.store(e.i32(0), scalars, {e.index(7)});
    });
    gpu::BarrierOp::create(b, loc);
    // A row with the cut 0 holds all its keys (at most the capacity; the
    // stats kernel stored a dense tile's without tracking their range): its
    // smallest and largest key by a sweep of them (8 loads in flight per
    // thread), so that the histogram below spans the keys' range rather
    // than the whole key space (where they would fill a few of its bins).
    Value wholeRow = e.cmpi(arith::CmpIPredicate::eq,
                            e.load(entry.getArgument(cand.cuts), {row}),
                            e.i32(0));
    e.ifThen(wholeRow, [&]() {
      SmallVector<Value> range = foldCandidates(
          false, ValueRange{e.i32(-1), e.i32(0)},
          [&](Value key, Value, Value live, ValueRange c) {
            return SmallVector<Value>{
                e.select(live, e.minui(c[0], key), c[0]),
                e.select(live, e.maxui(c[1], key), c[1])};
          },
          kFinishKeyUnroll);
      Value lo = range[0], hi = range[1];
      for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2) {
        lo = e.minui(lo, shuffleXor(b, loc, lo, offset));
        hi = e.maxui(hi, shuffleXor(b, loc, hi, offset));
      }
      e.ifThen(e.cmpi(arith::CmpIPredicate::eq, lane, zero), [&]() {
        memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::minu, lo,
                                    scalars, ValueRange{e.index(6)});
        memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::maxu, hi,
                                    scalars, ValueRange{e.index(7)});
      });
    });
    gpu::BarrierOp::create(b, loc);
    // The row's cut and largest candidate key, loaded in each path rather
    // than held across the compact one into the radix passes (the kernel
    // runs at its 48-register cap); a cut-0 row's from the sweep above.
    auto rowCut = [&]() {
      Value cut = e.load(entry.getArgument(cand.cuts), {row});
      return e.select(e.cmpi(arith::CmpIPredicate::eq, cut, e.i32(0)),
                      e.load(scalars, {e.index(6)}), cut);
    };
    auto rowLargest = [&]() {
      Value cut = e.load(entry.getArgument(cand.cuts), {row});
      return e.select(e.cmpi(arith::CmpIPredicate::eq, cut, e.i32(0)),
                      e.load(scalars, {e.index(7)}), e.load(maxKeys, {row}));
    };
    // The selected positions' ascending write-out, window by window of
    // positions (taken candidates set bits of the bitmap between
    // clearWindow and writeWindow). Warp w owns an even share of the
    // window's used words (whole 32-word steps, in warp order) and
    // reads them 32 at a time, lane l word 32 s + l of step s: the reads
    // are free of bank conflicts (a thread owning 16 consecutive words
    // read them with a 16-way conflict: 80% of the kernel's shared
    // wavefronts, ncu 2026-12-06) and a step's lanes write their
    // positions next to each other. Only the words below the row's last
    // position are cleared and read.
    const int64_t window = 32 * bitmapWords;
    // (Formed where used, not held across the paths below: the kernel runs
    // at its 48-register cap.)
    auto rowOut = [&]() { return e.mul(row, cK); };
    // Words holding the positions [w0, min(n, w0 + window)), rounded up to
    // whole warp steps (32 words), so a step reads no word that was not
    // cleared; computed where needed, not held across the candidates'
    // loop (registers).
    auto usedWords = [&](Value w0) {
      Value steps = arith::DivUIOp::create(
          b, loc, e.add(e.sub(n, w0), e.index(32 * kWarpSize - 1)),
          e.index(32 * kWarpSize));
      return e.minui(e.index(bitmapWords), e.mul(steps, e.index(kWarpSize)));
    };
    auto clearWindow = [&](Value w0) {
      e.loopStep(tid, usedWords(w0), nt,
                 [&](Value w) { e.store(e.i32(0), bitmap, {w}); });
      gpu::BarrierOp::create(b, loc);
    };
    // Sets the bit of position `pos` (index, in the window from w0).
    auto setBit = [&](Value pos, Value w0) {
      Value local = e.sub(pos, w0);
      Value bit = e.indexToI32(arith::RemUIOp::create(b, loc, local, e.index(32)));
      memref::AtomicRMWOp::create(
          b, loc, arith::AtomicRMWKind::ori,
          arith::ShLIOp::create(b, loc, e.i32(1), bit), bitmap,
          ValueRange{arith::DivUIOp::create(b, loc, local, e.index(32))});
    };
    // The window's positions from output slot `base` on; returns how many
    // (after a barrier: the window may then be cleared again).
    auto writeWindow = [&](Value w0, Value base) -> Value {
      gpu::BarrierOp::create(b, loc);
      // The warp's steps that hold used words (the same in every lane)
      // and a step's word of this lane, 0 past the used ones.
      // The used words shared evenly among the warps, whole steps each
      // (ascending: the block's prefix sums follow warp, then step). A fixed
      // share of bitmapWords / warps per warp left the later warps idle on
      // short rows (finish -2 to -4% at 128K, H200, perf-log eleventh session).
      Value wordsUsed = usedWords(w0);
      Value shareSteps =
          e.div(e.add(e.div(wordsUsed, e.index(kWarpSize)), e.index(warps - 1)),
                e.index(warps));
      Value warpFirst = e.mul(warp, e.mul(shareSteps, e.index(kWarpSize)));
      Value warpUsed = e.select(
          e.cmpi(arith::CmpIPredicate::ult, warpFirst, wordsUsed),
          e.sub(wordsUsed, warpFirst), zero);
      Value steps = e.minui(
          shareSteps,
          arith::DivUIOp::create(b, loc, warpUsed, e.index(kWarpSize)));
      auto stepWord = [&](Value s) -> std::pair<Value, Value> {
        Value w = e.add(warpFirst, e.add(e.mul(s, e.index(kWarpSize)), lane));
        return {w, e.load(bitmap, {w})};
      };
      Value own = e.sum(zero, steps, e.i32(0), [&](Value s) {
        return LLVM::CtPopOp::create(b, loc, i32, stepWord(s).second)
            .getResult();
      });
      auto [exclusive, total] = blockExclusiveSum(b, loc, own, lane, warp,
                                                  warpTotals, warps);
      // The positions of the warps before this one: lane 0's exclusive.
      Value warpBase = gpu::ShuffleOp::create(b, loc, exclusive, 0,
                                              kWarpSize,
                                              gpu::ShuffleMode::IDX)
                           .getShuffleResult();
      // Output counts and positions as i32 (registers: the index
      // forms took this kernel from 48 to 64).
      Value at0 = e.add(base, warpBase);
      Value w032 = e.indexToI32(w0);
      // (Loops rather than unrolled copies: code size, compile time.)
      e.loopCarry(
          zero, steps, ValueRange{at0},
          [&](Value s, ValueRange outer) -> SmallVector<Value> {
            auto [wordIndex, word] = stepWord(s);
            auto writeStep = [&]() -> SmallVector<Value> {
              Value bits = LLVM::CtPopOp::create(b, loc, i32, word);
              Value inclusive = warpInclusiveSum(b, loc, bits);
              Value stepTotal = gpu::ShuffleOp::create(
                                    b, loc, inclusive, kWarpSize - 1,
                                    kWarpSize, gpu::ShuffleMode::IDX)
                                    .getShuffleResult();
              Value at = e.add(outer[0], e.sub(inclusive, bits));
              Value wordStart = e.add(
                  w032, e.mul(e.indexToI32(wordIndex), e.i32(32)));
              e.loopCarry(
                  zero, e.i32ToIndex(bits), ValueRange{word, at},
                  [&](Value, ValueRange c) -> SmallVector<Value> {
                    // (c[0] is not 0 here: popc(word) iterations.)
                    Value bit = LLVM::CountTrailingZerosOp::create(
                        b, loc, i32, c[0], b.getBoolAttr(true));
                    e.store(e.add(wordStart, bit), indices,
                            {e.add(rowOut(), e.i32ToIndex(c[1]))});
                    return {e.andi(c[0], e.sub(c[0], e.i32(1))),
                            e.add(c[1], e.i32(1))};
                  });
              return {stepTotal};
            };
            // Steps without a taken position (most of a long row's, where
            // the selections cluster) skip the warp scan: its five
            // dependent shuffles were the write-out's main stall (ncu,
            // 2026-12-07).
            Value any = e.cmpi(arith::CmpIPredicate::ne,
                               warpBallot(b, loc,
                                          e.cmpi(arith::CmpIPredicate::ne,
                                                 word, e.i32(0))),
                               e.i32(0));
            Value stepTotal = e.ifElse(any, writeStep, [&]() {
              return SmallVector<Value>{e.i32(0)};
            })[0];
            return {e.add(outer[0], stepTotal)};
          });
      // Everyone has read the window before the next one clears it.
      gpu::BarrierOp::create(b, loc);
      return total;
    };

    // The compact path. Every candidate key lies in [cut, largest]: a
    // histogram of key - cut in kFinishBins bins spanning that range (one
    // sweep of the keys) gives the bin holding the k-th largest; a second
    // sweep (keys and positions) sets the bits of the candidates above that
    // bin and gathers the bin's own into shared memory, where each is
    // ranked exactly against the others (key, then the larger position);
    // those ranked below `need` are taken. Two sweeps of the candidates
    // from L2 instead of the radix path's one to four passes, its tie
    // sweep where needed and its write-out sweep. Rows whose bin holds more
    // than kFinishList candidates take the radix path below (one sweep more
    // than before the compact path: its histogram), as do rows with more
    // positions than one window (without the histogram).
    Value cut = rowCut();
    Value span = e.sub(rowLargest(), cut);
    Value binShift = arith::MaxSIOp::create(
        b, loc,
        e.sub(e.sub(e.i32(32), countLeadingZeros(b, loc, span)),
              e.i32(kFinishBinBits)),
        e.i32(0));
    // (A key below the cut, which the stats sweep never takes, would count
    // in bin 0 rather than wrap into the top bin; the clamp keeps the
    // index in the histogram.)
    auto binOf = [&](Value key) {
      Value above = e.sub(e.maxui(key, cut), cut);
      return e.minui(
          arith::ShRUIOp::create(b, loc, above, binShift).getResult(),
          e.i32(kFinishBins - 1));
    };
    // (Rows with positions past one bitmap window take the radix path: no
    // histogram for them.)
    Value oneWindow = e.cmpi(arith::CmpIPredicate::ule, n, e.index(window));
    e.ifThen(oneWindow, [&]() {
      e.loopStep(tid, e.index(kFinishBins), nt,
                 [&](Value i) { e.store(e.i32(0), hist, {i}); });
      // (A safeguard: with at least k candidates in the histogram, as the
      // path requires, exactly one thread finds the bin and overwrites it.)
      e.ifThen(lead, [&]() { e.store(e.i32(-1), compactScalars, {zero}); });
      gpu::BarrierOp::create(b, loc);
      forEachCandidate(
          false,
          [&](Value key, Value, Value live) {
            e.ifThen(live, [&]() {
              memref::AtomicRMWOp::create(
                  b, loc, arith::AtomicRMWKind::addi, e.i32(1), hist,
                  ValueRange{arith::IndexCastUIOp::create(
                      b, loc, b.getIndexType(), binOf(key))});
            });
          },
          kFinishKeyUnroll);
      gpu::BarrierOp::create(b, loc);
      // The k-th largest's bin by the whole block: thread i sums the
      // kFinishBins / threads bins below the top's i-th group, a block
      // scan gives the count above each group, and the thread whose
      // group reaches k walks it. (Warp 0 alone - 64 bins a lane, then
      // a 64-bin walk - kept the other warps waiting at the barrier for
      // 9% of the kernel's stall samples, ncu 2026-12-07.)
      assert(kFinishBins % threads == 0 && threads <= kFinishBins &&
             "whole groups of bins per thread");
      const int64_t perThread = kFinishBins / threads;
      Value goal = e.indexToI32(k);
      Value top = e.sub(e.index(kFinishBins - 1),
                        e.mul(tid, e.index(perThread)));
      SmallVector<Value> binCounts;
      Value own = e.i32(0);
      for (int64_t i = 0; i < perThread; ++i) {
        binCounts.push_back(e.load(hist, {e.sub(top, e.index(i))}));
        own = e.add(own, binCounts.back());
      }
      Value above = blockExclusiveSum(b, loc, own, lane, warp, warpTotals,
                                      warps)
                        .first;
      Value mine = e.andi(
          e.cmpi(arith::CmpIPredicate::slt, above, goal),
          e.cmpi(arith::CmpIPredicate::sge, e.add(above, own), goal));
      e.ifThen(mine, [&]() {
        Value bin = e.i32(-1), binAbove = e.i32(0), binCount = e.i32(0);
        Value running = above;
        for (int64_t i = 0; i < perThread; ++i) {
          Value next = e.add(running, binCounts[i]);
          Value hit = e.andi(
              e.cmpi(arith::CmpIPredicate::eq, bin, e.i32(-1)),
              e.cmpi(arith::CmpIPredicate::sge, next, goal));
          bin = e.select(hit, e.indexToI32(e.sub(top, e.index(i))), bin);
          binAbove = e.select(hit, running, binAbove);
          binCount = e.select(hit, binCounts[i], binCount);
          running = next;
        }
        e.store(bin, compactScalars, {zero});
        e.store(e.sub(goal, binAbove), compactScalars, {e.index(1)});
        e.store(binCount, compactScalars, {e.index(2)});
        e.store(e.i32(0), compactScalars, {e.index(3)});
      });
      gpu::BarrierOp::create(b, loc);
    });
    Value bin = e.load(compactScalars, {zero});
    Value compactable =
        e.andi(e.andi(e.cmpi(arith::CmpIPredicate::sge, bin, e.i32(0)),
                      e.cmpi(arith::CmpIPredicate::sle,
                             e.load(compactScalars, {e.index(2)}),
                             e.i32(kFinishList))),
               oneWindow);
    e.ifElse(
        compactable,
        [&]() -> SmallVector<Value> {
          clearWindow(zero);
          forEachCandidate(true, [&](Value key, Value pos, Value live) {
            Value at = binOf(key);
            e.ifThen(e.andi(live, e.cmpi(arith::CmpIPredicate::ugt, at, bin)),
                     [&]() { setBit(e.i32ToIndex(pos), zero); });
            e.ifThen(e.andi(live, e.cmpi(arith::CmpIPredicate::eq, at, bin)),
                     [&]() {
                       Value slot = memref::AtomicRMWOp::create(
                           b, loc, arith::AtomicRMWKind::addi, e.i32(1),
                           compactScalars, ValueRange{e.index(3)});
                       Value i = e.i32ToIndex(slot);
                       e.store(key, listKeys, {i});
                       e.store(pos, listPositions, {i});
                     });
          });
          gpu::BarrierOp::create(b, loc);
          Value listed = e.i32ToIndex(e.load(compactScalars, {e.index(3)}));
          Value need = e.i32ToIndex(e.load(compactScalars, {e.index(1)}));
          e.loopStep(tid, listed, nt, [&](Value i) {
            Value key = e.load(listKeys, {i});
            Value pos = e.load(listPositions, {i});
            Value rank = e.count(zero, listed, [&](Value j) {
              Value other = e.load(listKeys, {j});
              return e.ori(e.cmpi(arith::CmpIPredicate::ugt, other, key),
                           e.andi(e.cmpi(arith::CmpIPredicate::eq, other, key),
                                  e.cmpi(arith::CmpIPredicate::sgt,
                                         e.load(listPositions, {j}), pos)));
            });
            e.ifThen(e.cmpi(arith::CmpIPredicate::ult, rank, need),
                     [&]() { setBit(e.i32ToIndex(pos), zero); });
          });
          writeWindow(zero, e.i32(0));
          e.loopStep(e.add(k, tid), cK, nt, [&](Value j) {
            e.store(e.i32(-1), indices, {e.add(rowOut(), j)});
          });
          markDone();
          return {};
        },
        [&]() -> SmallVector<Value> {
          // The radix passes. Every candidate lies in [cut, the row's largest
          // key]: the bits those two share, every candidate shares, so the
          // passes over them are skipped and their digits taken from the
          // largest key. Those passes are the costly ones: all candidates fall
          // into one or two bins, and the shared atomics on one address
          // serialise.
          Value largest = rowLargest();
          Value shared = countLeadingZeros(
              b, loc, arith::XOrIOp::create(b, loc, rowCut(), largest));
          Value firstPass = e.minui(
              arith::DivUIOp::create(b, loc, shared, e.i32(8)), e.i32(3));
          // The digits of passes [0, firstPass): largest & ~0 << (32 - 8
          // first).
          Value knownBits = arith::ShLIOp::create(
              b, loc, e.i32(-1), e.sub(e.i32(32), e.mul(firstPass, e.i32(8))));
          knownBits =
              e.select(e.cmpi(arith::CmpIPredicate::eq, firstPass, e.i32(0)),
                       e.i32(0), knownBits);
          e.ifThen(lead, [&]() {
            e.store(e.andi(largest, knownBits), scalars,
                    {e.index(0)}); // prefix
          });
          // Radix select of the k-th largest candidate key, 8 bits per pass
          // (the pass condition is the same in every thread of the block).
          for (int64_t pass = 0; pass < 4; ++pass) {
            int64_t shift = 24 - 8 * pass;
            e.ifThen(
                e.cmpi(arith::CmpIPredicate::ule, firstPass, e.i32(pass)),
                [&]() {
                  e.loopStep(tid, e.index(kBins), nt,
                             [&](Value i) { e.store(e.i32(0), hist, {i}); });
                  gpu::BarrierOp::create(b, loc);
                  Value prefix = e.load(scalars, {e.index(0)});
                  forEachCandidate(false, [&](Value key, Value, Value live) {
                    Value match = live;
                    if (pass > 0)
                      match = e.andi(
                          match, e.cmpi(arith::CmpIPredicate::eq,
                                        arith::ShRUIOp::create(
                                            b, loc, key, e.i32(shift + 8)),
                                        arith::ShRUIOp::create(
                                            b, loc, prefix, e.i32(shift + 8))));
                    e.ifThen(match, [&]() {
                      Value digit = arith::AndIOp::create(
                          b, loc,
                          arith::ShRUIOp::create(b, loc, key, e.i32(shift)),
                          e.i32(kBins - 1));
                      memref::AtomicRMWOp::create(
                          b, loc, arith::AtomicRMWKind::addi, e.i32(1), hist,
                          ValueRange{arith::IndexCastUIOp::create(
                              b, loc, b.getIndexType(), digit)});
                    });
                  });
                  gpu::BarrierOp::create(b, loc);
                  e.ifThen(warp0, [&]() {
                    Value remain = e.load(scalars, {e.index(1)});
                    auto [digit, above, equal] =
                        thresholdBin(e, hist, lane, remain);
                    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, digit, e.i32(-1)),
                             [&]() {
                               Value prefixNow = e.load(scalars, {e.index(0)});
                               e.store(e.ori(prefixNow,
                                             arith::ShLIOp::create(
                                                 b, loc, digit, e.i32(shift))),
                                       scalars, {e.index(0)});
                               e.store(e.sub(remain, above), scalars,
                                       {e.index(1)});
                               e.store(equal, scalars, {e.index(2)});
                             });
                  });
                  gpu::BarrierOp::create(b, loc);
                });
          }
          Value threshold = e.load(scalars, {e.index(0)});
          Value need = e.i32ToIndex(e.load(scalars, {e.index(1)}));
          Value equal = e.i32ToIndex(e.load(scalars, {e.index(2)}));
          Value fewTies =
              e.cmpi(arith::CmpIPredicate::ule, equal, e.index(kMaxTies));
          e.ifThen(e.cmpi(arith::CmpIPredicate::eq, fewTies, falseV), [&]() {
            e.ifThen(lead, [&]() { e.store(e.i32(0), done, {row}); });
          });
          e.ifThen(fewTies, [&]() {
            // The tied positions; a tie is taken if fewer than `need` ties come
            // after it. Where every tie is needed (the usual case: the k-th
            // largest key is unique) no pass ranks them.
            Value everyTie = e.cmpi(arith::CmpIPredicate::eq, equal, need);
            Value rankTies = e.cmpi(arith::CmpIPredicate::eq, everyTie, falseV);
            // (None to rank: every tie's rank is 0, below `need`.)
            Value rankedTies = e.select(rankTies, equal, zero);
            e.ifThen(rankTies, [&]() {
              forEachCandidate(true, [&](Value key, Value pos, Value live) {
                Value isTie = e.andi(
                    live, e.cmpi(arith::CmpIPredicate::eq, key, threshold));
                e.ifThen(isTie, [&]() {
                  Value slot = memref::AtomicRMWOp::create(
                      b, loc, arith::AtomicRMWKind::addi, e.i32(1), scalars,
                      ValueRange{e.index(4)});
                  e.store(pos, ties, {e.i32ToIndex(slot)});
                });
              });
              gpu::BarrierOp::create(b, loc);
            });
            auto taken = [&](Value key, Value pos, Value live) {
              Value above = e.andi(
                  live, e.cmpi(arith::CmpIPredicate::ugt, key, threshold));
              Value isTie = e.andi(
                  live, e.cmpi(arith::CmpIPredicate::eq, key, threshold));
              Value rank = e.ifElse(
                  isTie,
                  [&]() -> SmallVector<Value> {
                    return {e.count(zero, rankedTies, [&](Value i) {
                      return e.cmpi(arith::CmpIPredicate::sgt,
                                    e.load(ties, {i}), pos);
                    })};
                  },
                  [&]() -> SmallVector<Value> { return {zero}; })[0];
              return e.ori(
                  above,
                  e.andi(isTie, e.cmpi(arith::CmpIPredicate::ult, rank, need)));
            };
            // Ascending write-out, window by window of positions.
            e.loopStepCarry(
                zero, n, e.index(window), ValueRange{e.i32(0)},
                [&](Value w0, ValueRange carried) -> SmallVector<Value> {
                  clearWindow(w0);
                  forEachCandidate(
                      true,
                      [&](Value key, Value pos32, Value live) {
                        Value pos = e.i32ToIndex(pos32);
                        Value inWindow = e.andi(
                            live,
                            e.andi(e.cmpi(arith::CmpIPredicate::uge, pos, w0),
                                   e.cmpi(arith::CmpIPredicate::ult, pos,
                                          e.add(w0, e.index(window)))));
                        e.ifThen(e.andi(inWindow, taken(key, pos32, live)),
                                 [&]() { setBit(pos, w0); });
                        // Two candidates per iteration: with four, the 128K
                        // kernels spilled 8 bytes under the 48-register cap
                        // (this loop holds the tie ranks' loop inside each
                        // candidate's test).
                      },
                      /*unroll=*/2);
                  Value total = writeWindow(w0, carried[0]);
                  return {e.add(carried[0], total)};
                });
            e.loopStep(e.add(k, tid), cK, nt, [&](Value j) {
              e.store(e.i32(-1), indices, {e.add(rowOut(), j)});
            });
            markDone();
          });
          return {};
        });
  });
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
  // CUDA cores: the scores are written row by row, each key by its thread.
  TileScores source(op, src, kernel, e, L, rows, ids, /*tensorCores=*/false);
  source.stage();
  gpu::BarrierOp::create(b, loc);
  Value cL = e.index(L);
  e.loopStep(e.index(0), cL, e.index(source.chunk()), [&](Value s0) {
    // Chunks past the tile's last row are all masked: no scores needed.
    Value needed = e.cmpi(arith::CmpIPredicate::ult, s0, ids.keyEnd);
    SmallVector<Value> scores = e.ifElse(
        needed,
        [&]() {
          SmallVector<Value> values;
          for (const Visit &v : source.visits(s0))
            values.push_back(v.score);
          return values;
        },
        [&]() { return SmallVector<Value>(rows, e.f32(-kInf)); });
    Value s = e.add(s0, ids.tid);
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

Value scratch(Emitter &host, Type elem, int64_t n) {
  return memref::AllocOp::create(host.builder(), host.location(),
                                 MemRefType::get({n}, elem));
}

} // namespace

LogicalResult checkSelectionTiling(Operation *op, int64_t rows) {
  if (rows < 1 || rows > 16)
    return op->emitOpError(fmt::format(
        "the selection tile takes 1 to 16 query rows, but rows-per-tile = {}",
        rows));
  return success();
}

int64_t selectionFragmentUnits(IndexerOp op) {
  // (Shapes outside the tensor-core forms have no fragments: 0.)
  if (!TileScores::usable(op, 4))
    return 0;
  return llvm::divideCeil(
      TileScores::headGroups(op) * op.getQi().getType().getDimSize(3), 64);
}

LogicalResult checkIndexerForGPU(IndexerOp op, int64_t rows,
                                 bool tensorCores) {
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
  // (Only the CUDA-core form stages the queries: a fused indexer on the
  // tensor cores holds them as mma fragments.)
  bool fragments =
      tensorCores && isFusedIntoSelection(op) && TileScores::usable(op, rows);
  if (!fragments && H * DI * rows * 4 > 24 * 1024)
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
                         StringRef prefix, int64_t rows, bool tensorCores,
                         bool sampledSelection, int64_t maxRegisters,
                         int64_t wgmmaStages, int64_t wgmmaQueries,
                         int64_t tmaMode, bool denseTiles) {
  // The sweep kernels' register cap (.maxnreg), where asked for.
  auto capRegisters = [&](gpu::GPUFuncOp kernel) {
    if (maxRegisters > 0)
      kernel->setAttr(NVVM::NVVMDialect::getMaxnregAttrName(),
                      rewriter.getI32IntegerAttr(int32_t(maxRegisters)));
  };
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  auto scoresType = op.getScores().getType();
  int64_t B = scoresType.getDimSize(0), L = scoresType.getDimSize(1);
  int64_t tiles = (L + rows - 1) / rows;
  Type f64 = Float64Type::get(ctx), i32 = IntegerType::get(ctx, 32);
  // The fixed policy's budget reads no statistic; training's V_bar and
  // every other policy read the variance.
  bool moments = op.getPolicy() != SelectionPolicy::fixed || op.getTraining();

  rewriter.setInsertionPoint(op);
  Emitter host(rewriter, loc);
  // Per row: mean, variance, smallest and largest key.
  SmallVector<Value> stats;
  for (Type elem : {f64, f64, i32, i32})
    stats.push_back(scratch(host, elem, B * L));
  Value vars = stats[1];
  Value indices = host.alloc(op.getIndices().getType(), {});
  Value counts = host.alloc(op.getCounts().getType(), {});

  // The sampled selection (tensor cores, fused indexer): a sample gives
  // each row a cut key, the stats sweep collects the keys above it, and a
  // per-row kernel selects exactly among them; the radix topk kernel then
  // only runs for the rows that kernel could not finish.
  int64_t K = op.getKMax();
  // The largest budget a row can have: k_max, or for the fixed policy the
  // known clamp(k_base): the candidates (target and capacity) are sized
  // for it, so a fixed k = 2048 under k_max = 4096 collects, stores and
  // finishes about 3200 keys per row instead of 4736.
  int64_t budgetBound = K;
  // A row whose candidates fall below its k_t or overflow the capacity goes
  // to the topk kernel, whose radix passes sweep the whole tile each; the
  // sizes below keep that rare (docs/perf-log.md, 2026-12-04).
  // The adaptive policies: a row's k_t is only known after the stats
  // sweep, so the cut aims at k_max + k_max/4 + 128 candidates, with a
  // capacity of k_max + 3 k_max/4 + 256 for the sample's error above that.
  // (With k_max + k_max/8 + 128 in k_max + k_max/2 + 256 the fallback took
  // 9.3 of the 76 ms structured inverse call at 128K; now 1.5 ms.)
  int64_t target = K + K / 4 + 128, capacity = K + 3 * K / 4 + 256;
  if (op.getPolicy() == SelectionPolicy::fixed) {
    budgetBound = std::clamp<int64_t>(op.getKBase(), op.getKMin(), K);
    // The fixed policy's k is known: 1.5 k + 128 measured best at 128K
    // (with k + k/8 + 128 the fallback took 40 ms; k_max's sizes, 2.3 k,
    // 2 ms more than 1.5 k). Capacity 2 target + 256 and 3/4 of k up to
    // 2048 more: with target + target/3 + 256 rows overflowed (the fallback
    // took 1.6 ms at 128K structured), with target + target/2 + 256 still
    // 1.1 ms, and 8192 rather than 6656 at k = 2048 took the 128K random
    // select stage 25.06 -> 23.74 ms for 1.6 GB more workspace (H100,
    // docs/perf-log.md twelfth session). (Only measured at k = 2048: the
    // extra stops there, as a larger k's sample holds more keys above its
    // cut, and at k = 8192 the candidates of 128K rows take 26 GB.)
    target = budgetBound + budgetBound / 2 + 128;
    capacity = 2 * target + 256 + 3 * std::min<int64_t>(budgetBound, 2048) / 4;
  }
  // A row never has more candidates than keys: nothing beyond L is needed
  // (every row then takes the cut 0, all its keys, as rows of at most
  // `capacity` keys do).
  capacity = std::min(capacity, L);
  bool sampled = sampledSelection && fused && tensorCores &&
                 TileScores::usable(fused, rows) &&
                 budgetBound <= kMaxSampledBudget;
  Value cuts, candKeys, candPositions, candCounts, done;
  if (sampled) {
    cuts = scratch(host, i32, B * L);
    candKeys = scratch(host, i32, B * L * capacity);
    candPositions = scratch(host, i32, B * L * capacity);
    candCounts = scratch(host, i32, B * L);
    done = scratch(host, i32, B * L);
    KernelArgs args;
    SourceArgs src = addSourceArgs(host, args, fused, op.getScores());
    int cutArg = args.add(cuts);
    auto kernel = createKernel(kernels, loc, (prefix + "_select_sample").str(),
                               args, kThreads);
    capRegisters(kernel);
    if (maxRegisters == 0)
      kernel->setAttr(NVVM::NVVMDialect::getMaxnregAttrName(),
                      rewriter.getI32IntegerAttr(kSampleRegisters));
    buildSampleKernel(kernel, fused, src, L, rows, cutArg, target, capacity,
                      op.getPolicy() == SelectionPolicy::fixed
                          ? kFixedRangeRoundStep
                          : kRangeRoundStep,
                      denseTiles);
    launchKernel(host, kernel, args.operands(), tiles, B, 1, kThreads,
                 sampleHistogramBytes(rows));
  }

  // stats (and, sampled, the candidates)
  // The stats sweep on wgmma (its own 32-row grid), where it applies.
  int64_t statsStages = 0;
  if (wgmmaStages > 0 && fused && tensorCores &&
      TileScores::warpgroupUsable(fused, 2 * wgmmaQueries))
    statsStages = wgmmaStages;
  {
    KernelArgs args;
    SourceArgs src = addSourceArgs(host, args, fused, op.getScores());
    int first = addRowStatsArgs(args, stats);
    Collect collect;
    if (sampled) {
      collect.cuts = args.add(cuts);
      collect.keys = args.add(candKeys);
      collect.positions = args.add(candPositions);
      collect.counts = args.add(candCounts);
      collect.capacity = capacity;
      collect.denseTiles = denseTiles;
    }
    // By TMA: ki's tensor map, [B, L, d_I] in boxes of one 64-key chunk's
    // 128-byte column block.
    if (statsStages > 0 && tmaMode > 0) {
      auto kiType = fused.getKi().getType();
      int64_t DI = kiType.getDimSize(2);
      Value kiBuffer = args.operands()[src.ki];
      src.keyMap = args.add(rowChunkTensorMap(rewriter, loc, kiBuffer,
                                              {B, L, DI}, kWarpgroupKeys));
    }
    auto kernel = createKernel(kernels, loc, (prefix + "_select_stats").str(),
                               args, kThreads);
    if (src.keyMap >= 0)
      kernel->setAttr(kTensorMapArgsAttr,
                      rewriter.getDenseI32ArrayAttr({src.keyMap}));
    capRegisters(kernel);
    // On wgmma the statistics tile is the two warpgroups' queries (its own
    // grid: the per-row outputs do not depend on the tiling).
    int64_t statsRows = statsStages > 0 ? 2 * wgmmaQueries : rows;
    // 16 queries per warpgroup: three CTAs of 256 threads per SM need at
    // most 80 registers (ptxas chose 90 for two; 80 spills nothing at d_I
    // 64). 32: the second product's A fragments and four heads' weights
    // take ~40 more, two CTAs per SM; so do more head groups or a wider d_I
    // (16 A registers per unit, selectionFragmentUnits: at 80, H_I 4 x d_I
    // 128 spilled 144-244 bytes).
    if (statsStages > 0 && maxRegisters == 0)
      kernel->setAttr(NVVM::NVVMDialect::getMaxnregAttrName(),
                      rewriter.getI32IntegerAttr(
                          wgmmaQueries == 32 || selectionFragmentUnits(fused) > 1
                              ? kWarpgroupPairStatsRegisters
                              : kWarpgroupStatsRegisters));
    buildStatsKernel(kernel, fused, src, L, statsRows, tensorCores, moments,
                     first, sampled ? &collect : nullptr, statsStages,
                     tmaMode);
    launchKernel(host, kernel, args.operands(), (L + statsRows - 1) / statsRows,
                 B, 1, kThreads);
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
    launchKernel(host, kernel, args.operands(), 1, 1, 1, kThreads);
  } else if (op.getRunningVar()) {
    reference = flatBuffer(host, op.getRunningVar());
    refSource = ReferenceSource::RunningVar;
  }

  // finish (sampled): one CTA per row
  if (sampled) {
    KernelArgs args;
    int first = addRowStatsArgs(args, stats);
    int refArg = reference ? int(args.add(reference)) : -1;
    Candidates cand;
    cand.cuts = args.add(cuts);
    cand.keys = args.add(candKeys);
    cand.positions = args.add(candPositions);
    cand.counts = args.add(candCounts);
    cand.done = args.add(done);
    cand.capacity = capacity;
    int indicesArg = args.add(collapse(rewriter, loc, indices));
    int countsArg = args.add(collapse(rewriter, loc, counts));
    // One CTA of 256 threads per row: 128 threads (9 rows in flight per SM
    // instead of 5) measured slower (perf-log, 2026-11-30).
    int64_t finishThreads = kThreads;
    auto kernel = createKernel(kernels, loc, (prefix + "_select_finish").str(),
                               args, finishThreads);
    // 48 registers keep 5 CTAs of 256 threads on an SM (the kernel waits on
    // L2 for its candidates: occupancy); without the cap ptxas picks 48
    // to 63 from one version of the write-out to the next.
    kernel->setAttr(NVVM::NVVMDialect::getMaxnregAttrName(),
                    rewriter.getI32IntegerAttr(48));
    // (The stats kernel on wgmma says the target is sm_90, which has the
    // bulk copy engine the finish kernel's L2 prefetch uses.)
    buildFinishKernel(kernel, op, L, first, refSource, refArg, cand,
                      indicesArg, countsArg, finishThreads,
                      /*bulkPrefetch=*/statsStages > 0);
    launchKernel(host, kernel, args.operands(), L, B, 1, finishThreads);
  }

  // topk (sampled: only the rows the finish kernel left)
  {
    KernelArgs args;
    SourceArgs src = addSourceArgs(host, args, fused, op.getScores());
    int first = addRowStatsArgs(args, stats);
    int refArg = reference ? int(args.add(reference)) : -1;
    int indicesArg = args.add(collapse(rewriter, loc, indices));
    int countsArg = args.add(collapse(rewriter, loc, counts));
    int doneArg = sampled ? int(args.add(done)) : -1;
    auto kernel = createKernel(kernels, loc, (prefix + "_select_topk").str(),
                               args, kThreads);
    capRegisters(kernel);
    // The stats kernel's key range fits this kernel's keys only where both
    // compute the scores alike (not on wgmma) and it covers every key.
    bool statsKeysComparable = !sampled && statsStages == 0;
    buildTopKKernel(kernel, op, fused, src, L, rows, tensorCores, first,
                    refSource, refArg, indicesArg, countsArg, doneArg,
                    statsKeysComparable);
    launchKernel(host, kernel, args.operands(), tiles, B, 1, kThreads);
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
  launchKernel(host, kernel, args.operands(), (L + rows - 1) / rows, B, 1,
               kThreads);
  rewriter.replaceOp(op, host.toTensor(out, op.getScores().getType()));
}

} // namespace gsa::detail
