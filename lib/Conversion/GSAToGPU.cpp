//===- GSAToGPU.cpp - the gsa ops as GPU kernels ---------------------------===//
//
// The per-query GPU lowering: a gsa.sparse_attention that gsa-tile did not
// take over query tiles becomes a gpu.func kernel in the gpu.module
// @gsa_kernels and the op a gpu.launch_func on flat buffers (the selection's
// ops are gsa-lower-selection's).
//
// Kernel design (v2; the Hopper work of issue 6 goes further): one CTA of 4
// warps per (query t, key/value head, batch b). All query heads of the GQA
// group share S_t: the warps split S_t, each K/V row is loaded once per CTA
// and feeds the dot products of all G heads of the group (G independent
// xor-shuffle reductions in lockstep), lane i holding the d_k/32 contiguous
// elements [i*d_k/32, (i+1)*d_k/32) of the head dimension, loaded with one
// vector load per row. The online softmax (base 2, ex2.approx) is branch
// free; the warps' partial states meet in shared memory after one barrier.
// sigmoid is 0.5 * tanh.approx(x/2) + 0.5. Nothing of size L x L, and
// nothing per (t, s) pair, touches memory.
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

#include "llvm/ADT/StringSet.h"

#include <cmath>
#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_CONVERTGSATOGPU
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

constexpr int64_t kWarpsPerBlock = 4;

/// Builds the kernel body of one gsa.sparse_attention.
///
/// CTA = (query t, kv head, batch b), 4 warps. The warps split the selected
/// set (warp w takes entries w, w+4, ...), so each K/V row is loaded once per
/// CTA; for each row a warp computes the dot products of all G query heads
/// of the group (G independent shuffle reductions in lockstep) and updates
/// G online-softmax states without branches. The warps' partial states
/// (m, l, acc) meet in shared memory after a barrier and each warp then
/// finishes heads w, w+4, ... of the group.
/// Whether the tensor-core attention applies: 16-bit q/k/v of one type,
/// d_k a multiple of 16.
bool usableTensorCores(SparseAttentionOp op) {
  Type elem = op.getQ().getType().getElementType();
  return (elem.isBF16() || elem.isF16()) &&
         op.getK().getType().getElementType() == elem &&
         op.getV().getType().getElementType() == elem &&
         op.getQ().getType().getDimSize(3) % 16 == 0;
}

/// v' = v * sigmoid(gv), elementwise over the flat buffers, rounded to
/// v's type; each thread takes kValueGateWidth contiguous elements (one
/// 16-byte vector for 16-bit types).
void buildAttentionKernel(SparseAttentionOp op, gpu::GPUFuncOp kernel,
                          int64_t rowsInFlight, bool tensorCores,
                          bool gateInKernel) {
  MLIRContext *ctx = op.getContext();
  auto qType = op.getQ().getType();
  int64_t L = qType.getDimSize(1), NH = qType.getDimSize(2),
          D = qType.getDimSize(3);
  int64_t NKV = op.getK().getType().getDimSize(2);
  int64_t K = op.getIndices().getType().getDimSize(2);
  int64_t G = NH / NKV;
  int64_t E = D / kWarpSize;
  int64_t W = kWarpsPerBlock;
  bool hasGV = op.getValueGate() && gateInKernel;
  bool hasGO = static_cast<bool>(op.getOutputGate());
  bool hasScoreMod = !op.getScoreMod().empty();
  Location loc = op.getLoc();

  // Shared memory for the warps' partial softmax states.
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Type f32 = Float32Type::get(ctx);
  auto smemType = [&](int64_t n) {
    return MemRefType::get({n}, f32, MemRefLayoutAttrInterface(), workgroup);
  };
  Value smemM = kernel.addWorkgroupAttribution(smemType(W * G), loc);
  Value smemL = kernel.addWorkgroupAttribution(smemType(W * G), loc);
  Value smemAcc = kernel.addWorkgroupAttribution(smemType(W * G * D), loc);

  Block &entry = kernel.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  unsigned arg = 0;
  Value q = entry.getArgument(arg++), k = entry.getArgument(arg++),
        v = entry.getArgument(arg++), indices = entry.getArgument(arg++),
        counts = entry.getArgument(arg++);
  Value gv = hasGV ? entry.getArgument(arg++) : Value();
  Value go = hasGO ? entry.getArgument(arg++) : Value();
  Value out = entry.getArgument(arg++), lse = entry.getArgument(arg++);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value kvh = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value warpSize = e.index(kWarpSize);
  Value warp = arith::DivUIOp::create(b, loc, tid, warpSize);
  Value lane = arith::RemUIOp::create(b, loc, tid, warpSize);
  Value zero = e.index(0);
  Value cL = e.index(L), cNH = e.index(NH), cNKV = e.index(NKV),
        cD = e.index(D), cK = e.index(K), cG = e.index(G), cW = e.index(W);
  Value log2e = e.f32(kLog2E);
  Value negInf = e.f32(-kInf);

  Value row = e.add(e.mul(bi, cL), t);
  Value rawCount = e.i32ToIndex(e.load(counts, {row}));
  Value capped = arith::MinSIOp::create(b, loc, rawCount, cK);
  Value count = arith::MaxSIOp::create(b, loc, capped, zero);
  float scale = op.getScaleOrDefault();

  // Lane l owns elements [l*E, l*E + E) of the head dimension: one vector
  // load per row and lane.
  Value laneBase = e.mul(lane, e.index(E));
  SmallVector<Value> laneOffsets;
  for (int64_t i = 0; i < E; ++i)
    laneOffsets.push_back(e.add(laneBase, e.index(i)));

  // Tensor cores: per warp, blocks of 16 selected rows (warp w takes rows
  // w*16.., then every 64th). S = Q K^T as m16n8k16 mma with the group's G
  // query heads as rows 0..G-1 of M (the rest zero), two 8-key n-tiles,
  // d_k/16 k-steps; P (bf16/f16) re-enters as the A operand of P V (the
  // accumulator layout of two n-tiles is the A layout of one k-step), with
  // V's B fragments gathered as pairs of rows, d_k/8 n-tiles. Lane (g, c)
  // holds head g's scores of keys 2c, 2c+1 of each n-tile and its output
  // columns 2c, 2c+1 of each d-tile; row max and sum reduce over the 4
  // lanes of a row (xor 1, 2).
  auto tensorCoreLoop = [&]() {
    Type elem = op.getQ().getType().getElementType();
    StringRef kind = elem.isBF16() ? "bf16" : "f16";
    Value g = arith::ShRUIOp::create(b, loc, lane, e.index(2));
    Value c = arith::AndIOp::create(b, loc, lane, e.index(3));
    Value col = e.mul(c, e.index(2));
    Value realRow = e.cmpi(arith::CmpIPredicate::ult, g, cG);
    // Zeros that are not constant ops (inline asm would want immediates).
    Value zeroI = opaqueZeroI32(b, loc, lane);
    Value zeroF = arith::BitcastOp::create(b, loc, f32, zeroI);
    Value head = e.add(e.mul(kvh, cG), arith::MinUIOp::create(b, loc, g, e.index(G - 1)));
    Value qBase = e.mul(e.add(e.mul(row, cNH), head), cD);
    SmallVector<SmallVector<Value>> qFrag;
    for (int64_t ks = 0; ks < D / 16; ++ks) {
      Value at = e.add(qBase, e.add(col, e.index(ks * 16)));
      Value lo = e.select(realRow, loadPair(b, loc, q, at), zeroI);
      Value hi = e.select(realRow, loadPair(b, loc, q, e.add(at, e.index(8))), zeroI);
      qFrag.push_back({lo, zeroI, hi, zeroI});
    }
    auto pack = [&](Value x, Value y) { return packPair(b, loc, elem, x, y); };
    auto kvBaseOf = [&](Value s) {
      return e.mul(e.add(e.mul(e.add(e.mul(bi, cL), s), cNKV), kvh), cD);
    };
    int64_t DT = D / 8;
    SmallVector<Value> init = {negInf, e.f32(0.0)};
    for (int64_t i = 0; i < 2 * DT; ++i)
      init.push_back(e.f32(0.0));
    auto forOp = scf::ForOp::create(
        b, loc, e.mul(warp, e.index(16)), count, e.index(16 * W), init,
        [&](OpBuilder &nested, Location, Value j0, ValueRange carried) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          // The position of block entry kk, and whether it is visible.
          auto entryAt = [&](Value kk) -> std::pair<Value, Value> {
            Value jj = e.add(j0, kk);
            Value inRange = e.cmpi(arith::CmpIPredicate::slt, jj, count);
            Value jl = arith::MinSIOp::create(b, loc, jj, e.index(K - 1));
            Value s = e.i32ToIndex(e.load(indices, {e.add(e.mul(row, cK), jl)}));
            Value visible = e.andi(
                inRange, e.andi(e.cmpi(arith::CmpIPredicate::sge, s, zero),
                                e.cmpi(arith::CmpIPredicate::sle, s, t)));
            return {e.select(visible, s, zero), visible};
          };
          // Scores: keys 2c, 2c+1 of n-tiles 0 and 1 (this lane's C slots).
          SmallVector<Value> pos, vis, scores;
          for (int64_t nt = 0; nt < 2; ++nt) {
            auto [sB, visB] = entryAt(e.add(g, e.index(nt * 8)));
            (void)visB;
            Value kBase = kvBaseOf(sB);
            SmallVector<Value> acc = {zeroF, zeroF, zeroF, zeroF};
            for (int64_t ks = 0; ks < D / 16; ++ks) {
              Value at = e.add(kBase, e.add(col, e.index(ks * 16)));
              SmallVector<Value> bFrag = {loadPair(b, loc, k, at),
                                          loadPair(b, loc, k, e.add(at, e.index(8)))};
              acc = mmaSync(b, loc, kind, qFrag[ks], bFrag, acc);
            }
            for (int64_t x = 0; x < 2; ++x) {
              auto [sC, visC] = entryAt(e.add(col, e.index(nt * 8 + x)));
              Value score = e.mul(acc[x], e.f32(scale));
              if (hasScoreMod)
                score = e.inlineRegion(op.getScoreMod(), {score, bi, head, t, sC});
              pos.push_back(sC);
              vis.push_back(visC);
              scores.push_back(e.select(visC, score, negInf));
            }
          }
          // Online softmax on head g's row (4 lanes x 4 scores).
          Value blockMax = scores[0];
          for (int64_t i = 1; i < 4; ++i)
            blockMax = arith::MaximumFOp::create(b, loc, blockMax, scores[i]);
          for (int32_t off : {1, 2})
            blockMax = arith::MaximumFOp::create(
                b, loc, blockMax, shuffleXor(b, loc, blockMax, off));
          Value m = carried[0], l = carried[1];
          Value mNew = arith::MaximumFOp::create(b, loc, m, blockMax);
          Value stillEmpty = e.cmpf(arith::CmpFPredicate::OEQ, mNew, negInf);
          Value alpha = e.select(stillEmpty, e.f32(1.0),
                                 exp2Approx(b, loc, e.mul(e.sub(m, mNew), log2e)));
          SmallVector<Value> p;
          Value lNew = e.mul(l, alpha);
          for (Value sc : scores) {
            Value raw = exp2Approx(b, loc, e.mul(e.sub(sc, mNew), log2e));
            Value pi = e.select(e.cmpf(arith::CmpFPredicate::OEQ, sc, negInf),
                                e.f32(0.0), raw);
            p.push_back(pi);
            lNew = e.add(lNew, pi);
          }
          SmallVector<Value> pFrag = {pack(p[0], p[1]), zeroI, pack(p[2], p[3]), zeroI};
          // V (gated) B fragments: rows = keys 2c, 2c+1 (k 0..7) and
          // 8+2c, 9+2c (k 8..15), column g of each d-tile.
          SmallVector<Value> vBase;
          for (int64_t i = 0; i < 4; ++i)
            vBase.push_back(kvBaseOf(pos[i]));
          SmallVector<Value> next = {mNew, lNew};
          for (int64_t dt = 0; dt < DT; ++dt) {
            Value d = e.add(e.index(dt * 8), g);
            SmallVector<Value> vals;
            for (int64_t i = 0; i < 4; ++i) {
              Value x = e.loadF32(v, {e.add(vBase[i], d)});
              if (hasGV)
                x = e.mul(x, e.sigmoid(e.loadF32(gv, {e.add(vBase[i], d)})));
              vals.push_back(x);
            }
            SmallVector<Value> vFrag = {pack(vals[0], vals[1]), pack(vals[2], vals[3])};
            SmallVector<Value> acc = {e.mul(carried[2 + 2 * dt], alpha),
                                      e.mul(carried[3 + 2 * dt], alpha), zeroF, zeroF};
            acc = mmaSync(b, loc, kind, pFrag, vFrag, acc);
            next.push_back(acc[0]);
            next.push_back(acc[1]);
          }
          scf::YieldOp::create(b, loc, next);
        });
    // Publish: head g's m, its row sum over the 4 lanes, and columns 2c,
    // 2c+1 of every d-tile, in the layout the combine below reads.
    Value l = forOp.getResult(1);
    for (int32_t off : {1, 2})
      l = e.add(l, shuffleXor(b, loc, l, off));
    Value slot = e.add(e.mul(warp, cG), g);
    e.ifThen(realRow, [&]() {
      e.ifThen(e.cmpi(arith::CmpIPredicate::eq, c, zero), [&]() {
        e.store(forOp.getResult(0), smemM, {slot});
        e.store(l, smemL, {slot});
      });
      for (int64_t dt = 0; dt < DT; ++dt)
        for (int64_t x = 0; x < 2; ++x)
          e.store(forOp.getResult(2 + 2 * dt + x), smemAcc,
                  {e.add(e.mul(slot, cD), e.add(col, e.index(dt * 8 + x)))});
    });
  };

  Value lane0 = e.cmpi(arith::CmpIPredicate::eq, lane, zero);

  // CUDA cores (v3/v4).
  auto cudaCoreLoop = [&]() {
    // The group's queries, pre-scaled, in registers: qReg[g][i].
    SmallVector<SmallVector<Value>> qReg(G);
    SmallVector<Value> heads, qBases;
    for (int64_t g = 0; g < G; ++g) {
      Value h = e.add(e.mul(kvh, cG), e.index(g));
      Value qBase = e.mul(e.add(e.mul(row, cNH), h), cD);
      heads.push_back(h);
      qBases.push_back(qBase);
      for (Value x : loadLaneRow(b, loc, q, e.add(qBase, laneBase), E))
        qReg[g].push_back(e.mul(x, e.f32(scale)));
    }

    // Loop state per head g: m, l, acc[0..E).
    int64_t stride = 2 + E;
    SmallVector<Value> init;
    for (int64_t g = 0; g < G; ++g) {
      init.push_back(negInf);
      init.push_back(e.f32(0.0));
      for (int64_t i = 0; i < E; ++i)
        init.push_back(e.f32(0.0));
    }
    // Each warp iteration takes R selected rows (j, j + W, ..., j + (R-1)W):
    // their K/V(/gate) loads are issued together, then the dot products of
    // all rows and heads reduce in lockstep, then the online-softmax updates
    // run in row order. Rows past the count or invisible get score -inf
    // (weight 0) and load a safe row (position 0).
    int64_t R = rowsInFlight;
    auto forOp = scf::ForOp::create(
        b, loc, warp, count, e.index(W * R), init,
        [&](OpBuilder &nested, Location, Value j, ValueRange carried) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          SmallVector<Value> positions, visibles;
          SmallVector<SmallVector<Value>> kRows, vRows;
          for (int64_t r = 0; r < R; ++r) {
            Value jr = e.add(j, e.index(r * W));
            Value inRange = e.cmpi(arith::CmpIPredicate::slt, jr, count);
            Value jl = arith::MinSIOp::create(b, loc, jr, e.index(K - 1));
            Value s = e.i32ToIndex(e.load(indices, {e.add(e.mul(row, cK), jl)}));
            Value nonNegative = e.cmpi(arith::CmpIPredicate::sge, s, zero);
            Value causal = e.cmpi(arith::CmpIPredicate::sle, s, t);
            Value visible = e.andi(inRange, e.andi(nonNegative, causal));
            Value safe = e.select(visible, s, zero);
            positions.push_back(safe);
            visibles.push_back(visible);
            Value kvRow = e.add(e.mul(bi, cL), safe);
            Value kvBase = e.mul(e.add(e.mul(kvRow, cNKV), kvh), cD);
            Value rowStart = e.add(kvBase, laneBase);
            kRows.push_back(loadLaneRow(b, loc, k, rowStart, E));
            vRows.push_back(loadLaneRow(b, loc, v, rowStart, E));
            if (hasGV) {
              SmallVector<Value> gates = loadLaneRow(b, loc, gv, rowStart, E);
              for (int64_t i = 0; i < E; ++i)
                vRows.back()[i] = e.mul(vRows.back()[i], e.sigmoid(gates[i]));
            }
          }
          // partial[r][g]: this lane's share of q_g . k_r.
          SmallVector<SmallVector<Value>> partial(R);
          for (int64_t r = 0; r < R; ++r)
            for (int64_t g = 0; g < G; ++g) {
              Value acc = e.f32(0.0);
              for (int64_t i = 0; i < E; ++i)
                acc = LLVM::FMAOp::create(b, loc, qReg[g][i], kRows[r][i], acc);
              partial[r].push_back(acc);
            }
          // R x G reductions in lockstep: independent shuffles overlap.
          for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t g = 0; g < G; ++g) {
                auto shuffle = gpu::ShuffleOp::create(
                    b, loc, partial[r][g], offset, kWarpSize,
                    gpu::ShuffleMode::XOR);
                partial[r][g] = arith::AddFOp::create(
                    b, loc, partial[r][g], shuffle.getShuffleResult());
              }
          SmallVector<Value> state(carried.begin(), carried.end());
          for (int64_t r = 0; r < R; ++r) {
            SmallVector<Value> next;
            for (int64_t g = 0; g < G; ++g) {
              Value score = partial[r][g];
              if (hasScoreMod)
                score = e.inlineRegion(op.getScoreMod(),
                                       {score, bi, heads[g], t, positions[r]});
              score = e.select(visibles[r], score, negInf);
              Value m = state[g * stride], l = state[g * stride + 1];
              // Branch-free update; a -inf score (invisible, or masked by
              // score_mod) has weight 0 and leaves the state as it was.
              Value mNew = arith::MaximumFOp::create(b, loc, m, score);
              Value stillEmpty = e.cmpf(arith::CmpFPredicate::OEQ, mNew, negInf);
              Value alphaRaw = exp2Approx(b, loc, e.mul(e.sub(m, mNew), log2e));
              Value alpha = e.select(stillEmpty, e.f32(1.0), alphaRaw);
              Value pRaw = exp2Approx(b, loc, e.mul(e.sub(score, mNew), log2e));
              Value masked = e.cmpf(arith::CmpFPredicate::OEQ, score, negInf);
              Value p = e.select(masked, e.f32(0.0), pRaw);
              next.push_back(mNew);
              next.push_back(LLVM::FMAOp::create(b, loc, l, alpha, p));
              for (int64_t i = 0; i < E; ++i) {
                Value kept = e.mul(state[g * stride + 2 + i], alpha);
                next.push_back(LLVM::FMAOp::create(b, loc, p, vRows[r][i], kept));
              }
            }
            state = next;
          }
          scf::YieldOp::create(b, loc, state);
        });

    // Publish this warp's partial states.
    for (int64_t g = 0; g < G; ++g) {
      Value slot = e.add(e.mul(warp, cG), e.index(g));
      Value m = forOp.getResult(g * stride), l = forOp.getResult(g * stride + 1);
      e.ifThen(lane0, [&]() {
        e.store(m, smemM, {slot});
        e.store(l, smemL, {slot});
      });
      for (auto [i, off] : llvm::enumerate(laneOffsets))
        e.store(forOp.getResult(g * stride + 2 + i), smemAcc,
                {e.add(e.mul(slot, cD), off)});
    }
  };
  if (tensorCores && usableTensorCores(op))
    tensorCoreLoop();
  else
    cudaCoreLoop();
  gpu::BarrierOp::create(b, loc);

  // Each warp finishes heads w, w+4, ... of the group.
  scf::ForOp::create(
      b, loc, warp, cG, cW, ValueRange{},
      [&](OpBuilder &nested, Location, Value g, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> ms, slots;
        Value M = negInf;
        for (int64_t w = 0; w < W; ++w) {
          Value slot = e.add(e.mul(e.index(w), cG), g);
          slots.push_back(slot);
          ms.push_back(e.load(smemM, {slot}));
          M = arith::MaximumFOp::create(b, loc, M, ms.back());
        }
        SmallVector<Value> factors;
        Value total = e.f32(0.0);
        for (int64_t w = 0; w < W; ++w) {
          Value none = e.cmpf(arith::CmpFPredicate::OEQ, ms[w], negInf);
          Value f = exp2Approx(b, loc, e.mul(e.sub(ms[w], M), log2e));
          f = e.select(none, e.f32(0.0), f);
          factors.push_back(f);
          total = LLVM::FMAOp::create(b, loc, e.load(smemL, {slots[w]}), f,
                                      total);
        }
        Value empty = e.cmpf(arith::CmpFPredicate::OEQ, total, e.f32(0.0));
        Value invTotal = e.div(e.f32(1.0), total);
        Value h = e.add(e.mul(kvh, cG), g);
        Value qBase = e.mul(e.add(e.mul(row, cNH), h), cD);
        SmallVector<Value> gates;
        if (hasGO)
          gates = loadLaneRow(b, loc, go, e.add(qBase, laneBase), E);
        SmallVector<Value> values;
        for (auto [i, off] : llvm::enumerate(laneOffsets)) {
          Value sum = e.f32(0.0);
          for (int64_t w = 0; w < W; ++w) {
            Value part = e.load(smemAcc, {e.add(e.mul(slots[w], cD), off)});
            sum = LLVM::FMAOp::create(b, loc, part, factors[w], sum);
          }
          Value value = e.select(empty, e.f32(0.0), e.mul(sum, invTotal));
          if (hasGO)
            value = e.mul(value, e.sigmoid(gates[i]));
          values.push_back(value);
        }
        storeLaneRow(b, loc, values, out, e.add(qBase, laneBase));
        e.ifThen(lane0, [&]() {
          Value log2L = ptxUnary(b, loc, "lg2.approx.ftz.f32", total);
          Value logSum = e.add(M, e.mul(log2L, e.f32(kLn2)));
          e.store(e.select(empty, negInf, logSum), lse,
                  {e.add(e.mul(row, cNH), h)});
        });
        scf::YieldOp::create(b, loc);
      });
  gpu::ReturnOp::create(b, loc);
}

/// sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, one MUFU instruction.
void lowerSigmoidForGPU(SigmoidOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  Value x = op.getX();
  if (!x.getType().isF32()) {
    op.emitOpError("GPU lowering supports f32 sigmoids only");
    return;
  }
  Value half = arith::ConstantOp::create(rewriter, loc,
                                         rewriter.getF32FloatAttr(0.5f));
  Value scaled = arith::MulFOp::create(rewriter, loc, x, half);
  Value th = ptxUnary(rewriter, loc, "tanh.approx.f32", scaled);
  Value fma = LLVM::FMAOp::create(rewriter, loc, th, half, half);
  rewriter.replaceOp(op, fma);
}

/// The per-query kernel's limits (ops that `gsa-tile` took over query tiles
/// are gone by now).
LogicalResult checkStatic(SparseAttentionOp op) {
  if (failed(checkStaticOperands(op)))
    return failure();
  int64_t D = op.getQ().getType().getDimSize(3);
  int64_t group = op.getQ().getType().getDimSize(2) /
                  op.getK().getType().getDimSize(2);
  if (group > 8)
    return op.emitOpError(fmt::format(
        "GPU kernel keeps the query heads of a GQA group in registers and "
        "supports n_h / n_kv <= 8, but it is {} (the query-tile kernels of "
        "gsa-tile take groups up to 16 on bf16/f16 with d_k 64 or 128)",
        group));
  if (D % kWarpSize != 0 || D > 256)
    return op.emitOpError(fmt::format(
        "GPU kernel needs d_k to be a multiple of 32 and at most 256, but "
        "d_k = {}",
        D));
  return success();
}

struct ConvertGSAToGPUPass
    : gsa::impl::ConvertGSAToGPUBase<ConvertGSAToGPUPass> {
  using ConvertGSAToGPUBase::ConvertGSAToGPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if (failed(requireDecomposed(module)))
      return signalPassFailure();

    // The selection's ops belong to gsa-lower-selection, which runs first.
    bool failedAny = false;
    module.walk([&](Operation *op) {
      if (isa<IndexerOp, AdaptiveTopKOp>(op)) {
        op->emitOpError("must be lowered by --gsa-lower-selection before "
                        "--convert-gsa-to-gpu");
        failedAny = true;
      }
    });
    if (failedAny)
      return signalPassFailure();

    SmallVector<SparseAttentionOp> attentions;
    module.walk([&](SparseAttentionOp op) { attentions.push_back(op); });
    for (SparseAttentionOp op : attentions)
      if (failed(checkStatic(op)))
        return signalPassFailure();
    if (attentions.empty()) {
      lowerKernelSigmoids(module);
      return;
    }
    if (attentionRowsInFlight < 1 || attentionRowsInFlight > 8) {
      for (SparseAttentionOp op : attentions)
        op->emitOpError(fmt::format(
            "the attention kernel takes 1 to 8 rows in flight per warp, but "
            "attention-rows-in-flight = {}",
            attentionRowsInFlight));
      return signalPassFailure();
    }

    gpu::GPUModuleOp kernels = kernelModule(module);
    IRRewriter rewriter(ctx);
    for (SparseAttentionOp op : attentions) {
      Location loc = op.getLoc();
      auto parent = op->getParentOfType<FunctionOpInterface>();
      std::string name = freeKernelName(
          module,
          (parent ? parent.getName().str() : std::string("gsa")) +
              "_sparse_attention_");
      rewriter.setInsertionPoint(op);
      Emitter e(rewriter, loc);

      // The value gate applied once per key row (v' = v * sigmoid(gv),
      // rounded to v's type) instead of once per (query, selected row): the
      // attention then gathers K and v' only, 2/3 of the bytes.
      Value values = flatBuffer(e, op.getV());
      bool pregate = op.getValueGate() && attentionPregateValues;
      if (pregate) {
        Value gates = flatBuffer(e, op.getValueGate());
        auto type = cast<MemRefType>(values.getType());
        Value gated = memref::AllocOp::create(rewriter, loc, type);
        KernelArgs args;
        args.add(values);
        args.add(gates);
        args.add(gated);
        auto kernel = createKernel(kernels, loc, name + "_value_gate", args,
                                   kValueGateThreads);
        OpBuilder kb = OpBuilder::atBlockBegin(&kernel.getBody().front());
        buildValueGate(kb, loc, kernel.getArgument(0), kernel.getArgument(1),
                       kernel.getArgument(2), type.getNumElements());
        gpu::ReturnOp::create(kb, loc);
        int64_t perBlock = kValueGateThreads * kValueGateWidth;
        launchKernel(e, kernel, args.operands(),
                     (type.getNumElements() + perBlock - 1) / perBlock, 1, 1,
                     kValueGateThreads);
        values = gated;
      }

      // Kernel signature: flat buffers, inputs then outputs.
      KernelArgs args;
      args.add(flatBuffer(e, op.getQ()));
      args.add(flatBuffer(e, op.getK()));
      args.add(values);
      args.add(flatBuffer(e, op.getIndices()));
      args.add(flatBuffer(e, op.getCounts()));
      if (op.getValueGate() && !pregate)
        args.add(flatBuffer(e, op.getValueGate()));
      if (op.getOutputGate())
        args.add(flatBuffer(e, op.getOutputGate()));
      Value outBuffer = e.alloc(op.getO().getType(), {});
      Value lseBuffer = e.alloc(op.getLse().getType(), {});
      args.add(collapse(rewriter, loc, outBuffer));
      args.add(collapse(rewriter, loc, lseBuffer));
      auto kernel = createKernel(kernels, loc, name, args,
                                 kWarpSize * kWarpsPerBlock);
      buildAttentionKernel(op, kernel, attentionRowsInFlight,
                           attentionTensorCores, /*gateInKernel=*/!pregate);
      auto qType = op.getQ().getType();
      launchKernel(e, kernel, args.operands(), qType.getDimSize(1),
                   op.getK().getType().getDimSize(2), qType.getDimSize(0),
                   kWarpSize * kWarpsPerBlock);
      Value oTensor = e.toTensor(outBuffer, op.getO().getType());
      Value lseTensor = e.toTensor(lseBuffer, op.getLse().getType());
      rewriter.replaceOp(op, {oTensor, lseTensor});
    }

    lowerKernelSigmoids(module);
  }

  /// gsa.sigmoid in every kernel (also those gsa-outline-kernels moved
  /// there) as one tanh.approx.
  void lowerKernelSigmoids(ModuleOp module) {
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels");
    if (!kernels)
      return;
    IRRewriter rewriter(module.getContext());
    SmallVector<SigmoidOp> sigmoids;
    kernels.walk([&](SigmoidOp op) { sigmoids.push_back(op); });
    for (SigmoidOp op : sigmoids)
      lowerSigmoidForGPU(op, rewriter);
  }
};

} // namespace

namespace gsa::detail {

void buildValueGate(OpBuilder &b, Location loc, Value v, Value gv, Value out,
                    int64_t n) {
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value blockId = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value first = e.mul(e.add(e.mul(blockId, e.index(kValueGateThreads)), tid),
                      e.index(kValueGateWidth));
  e.ifThen(e.cmpi(arith::CmpIPredicate::ult, first, e.index(n)), [&]() {
    SmallVector<Value> x = loadLaneRow(b, loc, v, first, kValueGateWidth);
    SmallVector<Value> g = loadLaneRow(b, loc, gv, first, kValueGateWidth);
    SmallVector<Value> y;
    for (int64_t i = 0; i < kValueGateWidth; ++i)
      y.push_back(e.mul(x[i], e.sigmoid(g[i])));
    storeLaneRow(b, loc, y, out, first);
  });
}

LogicalResult requireDecomposed(ModuleOp module) {
  bool found = false;
  module.walk([&](GatedSparseAttentionOp op) {
    op->emitOpError("must be decomposed before lowering to the GPU (run "
                    "--gsa-decompose first)");
    found = true;
  });
  return failure(found);
}

gpu::GPUModuleOp kernelModule(ModuleOp module) {
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(module.getContext()));
  if (auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels"))
    return kernels;
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  return gpu::GPUModuleOp::create(b, module.getLoc(), "gsa_kernels");
}

std::string freeKernelName(ModuleOp module, StringRef stem) {
  llvm::StringSet<> taken;
  if (auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels"))
    for (Operation &op : kernels.getBody()->getOperations())
      if (auto symbol = dyn_cast<SymbolOpInterface>(op))
        taken.insert(symbol.getName());
  module.walk([&](gpu::LaunchOp launch) {
    if (auto name = launch->getAttrOfType<StringAttr>(kKernelNameAttr))
      taken.insert(name.getValue());
  });
  for (int64_t n = 0;; ++n) {
    std::string name = (stem + Twine(n)).str();
    // Also keep the kernels derived from a name (`<name>_value_gate`,
    // `<name>_query_tiles`) apart.
    bool used = llvm::any_of(taken.keys(), [&](StringRef t) {
      return t == name || t.starts_with(name + "_");
    });
    if (!used)
      return name;
  }
}

} // namespace gsa::detail
