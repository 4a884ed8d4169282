//===- GPUQueryTiles.cpp - sparse attention over query tiles --------------===//
//
// gsa.sparse_attention as two kernels that share the selected key rows of
// nearby queries (attention v7, issue 6's first lead):
//
//  1. query-tile union: per tile of T consecutive queries (T = 4 warps x
//     16 / G queries, G the GQA group size) the sorted union of their
//     selected positions, and per union entry a T-bit mask of the queries
//     that selected it. Built window by window (16384 keys for T = 16) in
//     shared memory:
//     a bitmap of the window's selected keys and a mask per key (shared
//     atomics), a block-wide prefix count over the bitmap words, then every
//     set bit written out in position order. Invisible entries (past the
//     row's count, negative, or after the query) are skipped, so the masks
//     carry the causal limit. Output per tile: at most T x k_max entries
//     (scratch of L x k_max x 8 bytes in all: O(L k_max), never O(L^2)).
//
//  2. tile attention: one CTA of 4 warps per (query tile, KV head, batch).
//     The union is walked in chunks of 32 keys: each chunk's K and v' rows
//     (v' = v * sigmoid(gv), pre-gated) are copied once into shared memory
//     with 16-byte cp.async, double-buffered (the next chunk's copies fly
//     while this one computes), in a layout whose 16-byte pieces are
//     XOR-swizzled by row so that ldmatrix reads them without bank
//     conflicts. Warp w owns the M = 16 rows (its 16/G queries x the G heads
//     of the group): S = Q K^T and O += P V on mma.sync m16n8k16 (fp32
//     accumulation; B fragments by ldmatrix, V's transposed), an online
//     softmax on the accumulators, and per score the query's bit of the
//     chunk's mask (not selected -> -inf, weight 0). Each (query, head) row
//     lives in one lane quad, so no combine step: the output gate and the
//     row's lse are applied where the row ends.
//
// Every key row a tile's queries share is read from memory once per tile
// and KV head instead of once per query: the structured selections of a
// trained model (local windows, sinks, topics shared by nearby queries)
// need a fraction of the bytes. Independent (random) selections gain the
// mma tiles but compute the union, T x more scores than selected (masked).
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

#include <fmt/format.h>

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

constexpr int64_t kUnionThreads = 256;
/// 32-bit words of the union kernel's shared query-mask buffer (32 KiB).
constexpr int64_t kUnionMaskWords = 8192;
constexpr int64_t kTileWarps = 4;
/// mma's M: the rows (query, head) one warp owns.
constexpr int64_t kRowsPerWarp = 16;
/// Keys staged per step of the tile attention.
constexpr int64_t kKeyChunk = 32;
constexpr int64_t kStages = 2;

struct TileShape {
  int64_t B, L, NH, NKV, D, K, G;
  int64_t queriesPerWarp, T, numTiles;
};

TileShape tileShapeOf(SparseAttentionOp op) {
  auto qType = op.getQ().getType();
  TileShape s;
  s.B = qType.getDimSize(0);
  s.L = qType.getDimSize(1);
  s.NH = qType.getDimSize(2);
  s.D = qType.getDimSize(3);
  s.NKV = op.getK().getType().getDimSize(2);
  s.K = op.getIndices().getType().getDimSize(2);
  s.G = s.NH / s.NKV;
  s.queriesPerWarp = kRowsPerWarp / s.G;
  s.T = kTileWarps * s.queriesPerWarp;
  s.numTiles = (s.L + s.T - 1) / s.T;
  return s;
}

/// The address of element `offset` of a buffer as an integer of `type`:
/// i32 for a workgroup buffer (the shared window, what ldmatrix and
/// cp.async take as `[r]`), i64 for a kernel's global buffer (kernel
/// buffers arrive as bare pointers, so their offset is 0).
Value byteAddress(Emitter &e, Value buffer, Value offset, Type type) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  auto memrefType = cast<MemRefType>(buffer.getType());
  Value bytes = e.mul(offset, e.index(memrefType.getElementTypeBitWidth() / 8));
  return arith::IndexCastUIOp::create(b, loc, type, e.add(base, bytes));
}
Value sharedAddress(Emitter &e, Value buffer, Value offset) {
  return byteAddress(e, buffer, offset, e.builder().getI32Type());
}
Value globalAddress(Emitter &e, Value buffer, Value offset) {
  return byteAddress(e, buffer, offset, e.builder().getI64Type());
}

/// 16 bytes global -> shared without registers (completion through the
/// commit / wait groups).
void copyAsync16(OpBuilder &b, Location loc, Value sharedAddr, Value globalAddr) {
  NVVM::InlinePtxOp::create(
      b, loc, TypeRange{}, ValueRange{sharedAddr, globalAddr}, ValueRange{},
      b.getStringAttr("cp.async.cg.shared.global [$0], [$1], 16;"), Value());
}

/// Four 8x8 16-bit matrices from shared memory; lane i gives the address of
/// row i % 8 of matrix i / 8 and receives, of each matrix, row i / 4,
/// elements 2 (i % 4) and 2 (i % 4) + 1 (or, transposed, column i / 4,
/// rows 2 (i % 4) and 2 (i % 4) + 1): the mma B fragment layout.
SmallVector<Value> loadMatrices(OpBuilder &b, Location loc, Value sharedAddr,
                                bool transposed) {
  std::string code = fmt::format(
      "ldmatrix.sync.aligned.m8n8.x4{}.shared.b16 {{$0, $1, $2, $3}}, [$4];",
      transposed ? ".trans" : "");
  Type i32 = b.getI32Type();
  auto op = NVVM::InlinePtxOp::create(b, loc, TypeRange{i32, i32, i32, i32},
                                      ValueRange{sharedAddr}, ValueRange{},
                                      b.getStringAttr(code), Value());
  return SmallVector<Value>(op.getResults());
}

/// Kernel 1: the union of each query tile's selections and the per-entry
/// query masks (see the file comment). The masks are packed: keysPerWord =
/// 32 / pow2ceil(T) keys share a 32-bit word of the shared mask buffer
/// (8192 words), so a window covers 8192 x keysPerWord keys (16384 for
/// T = 16) and each thread owns keysPerWord bitmap words.
void buildUnionKernel(gpu::GPUFuncOp kernel, const TileShape &s) {
  Location loc = kernel.getLoc();
  Block &entry = kernel.getBody().front();
  Value indices = entry.getArgument(0), counts = entry.getArgument(1),
        keysOut = entry.getArgument(2), masksOut = entry.getArgument(3),
        sizesOut = entry.getArgument(4);
  int64_t maskBits = int64_t(llvm::PowerOf2Ceil(uint64_t(s.T)));
  int64_t keysPerWord = 32 / maskBits;
  int64_t wordsPerThread = keysPerWord;
  int64_t window = kUnionThreads * 32 * wordsPerThread;
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Type i32 = b.getI32Type();
  Value bitmap = sharedBuffer(kernel, i32, window / 32);
  Value members = sharedBuffer(kernel, i32, kUnionMaskWords);
  Value warpTotals = sharedBuffer(kernel, i32, kUnionThreads / kWarpSize);
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

  SmallVector<Value> total = e.loopStepCarry(
      zero, hi, e.index(window), ValueRange{zero},
      [&](Value w0, ValueRange carried) -> SmallVector<Value> {
        Value base = carried[0];
        e.loopStep(tid, e.index(window / 32), nt,
                   [&](Value i) { e.store(zeroI, bitmap, {i}); });
        e.loopStep(tid, e.index(kUnionMaskWords), nt,
                   [&](Value i) { e.store(zeroI, members, {i}); });
        gpu::BarrierOp::create(b, loc);
        // Mark the window's visible selected keys, query by query (each
        // query's live entries only).
        // (A loop, not unrolled: T copies of this body were a fifth of
        // the program's PTX and of its cold compile.)
        e.loop(zero, e.index(s.T), [&](Value q) {
          Value t = e.add(t0, q);
          Value inRows = e.cmpi(arith::CmpIPredicate::ult, t, cL);
          Value row = e.add(e.mul(bi, cL), e.minui(t, e.index(s.L - 1)));
          Value count = arith::MinSIOp::create(
              b, loc, e.i32ToIndex(e.load(counts, {row})), cK);
          count = e.select(inRows, count, zero);
          e.loopStep(tid, count, nt, [&](Value j) {
            Value sel = e.i32ToIndex(e.load(indices, {e.add(e.mul(row, cK), j)}));
            Value inWindow = e.andi(
                e.andi(e.cmpi(arith::CmpIPredicate::sge, sel, w0),
                       e.cmpi(arith::CmpIPredicate::slt, sel,
                              e.add(w0, e.index(window)))),
                e.cmpi(arith::CmpIPredicate::sle, sel, t));
            e.ifThen(inWindow, [&]() {
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
                  ValueRange{arith::DivUIOp::create(b, loc, local,
                                                    e.index(keysPerWord))});
            });
          });
        });
        gpu::BarrierOp::create(b, loc);
        // Block-wide exclusive prefix of the popcounts of each thread's
        // words.
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
        return {e.add(base, e.i32ToIndex(all))};
      });
  e.ifThen(e.cmpi(arith::CmpIPredicate::eq, tid, zero), [&]() {
    e.store(e.indexToI32(total[0]), sizesOut, {tileIndex});
  });
  gpu::ReturnOp::create(b, loc);
}

/// Kernel 2: the attention of a query tile over its union (file comment).
void buildTileAttentionKernel(SparseAttentionOp op, gpu::GPUFuncOp kernel,
                              const TileShape &s) {
  Location loc = op.getLoc();
  Type elem = op.getQ().getType().getElementType();
  StringRef kind = elem.isBF16() ? "bf16" : "f16";
  bool hasGO = static_cast<bool>(op.getOutputGate());
  bool hasScoreMod = !op.getScoreMod().empty();
  Block &entry = kernel.getBody().front();
  unsigned arg = 0;
  Value q = entry.getArgument(arg++), k = entry.getArgument(arg++),
        v = entry.getArgument(arg++), unionKeys = entry.getArgument(arg++),
        unionMasks = entry.getArgument(arg++), unionSizes = entry.getArgument(arg++);
  Value go = hasGO ? entry.getArgument(arg++) : Value();
  Value out = entry.getArgument(arg++), lse = entry.getArgument(arg++);

  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  int64_t chunkElems = kKeyChunk * s.D;
  Value kBuf = sharedBuffer(kernel, elem, kStages * chunkElems);
  Value vBuf = sharedBuffer(kernel, elem, kStages * chunkElems);
  Value maskBuf = sharedBuffer(kernel, i32, kStages * kKeyChunk);
  Value keyBuf = sharedBuffer(kernel, i32, kStages * kKeyChunk);
  Emitter e(b, loc);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value kvh = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value warp = arith::DivUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value lane = arith::RemUIOp::create(b, loc, tid, e.index(kWarpSize));
  Value g = arith::ShRUIOp::create(b, loc, lane, e.index(2));
  Value c = arith::AndIOp::create(b, loc, lane, e.index(3));
  Value col = e.mul(c, e.index(2));
  Value zero = e.index(0), cL = e.index(s.L), cD = e.index(s.D),
        cNH = e.index(s.NH), cNKV = e.index(s.NKV);
  Value negInf = e.f32(-kInf), log2e = e.f32(kLog2E);
  Value zeroI = opaqueZeroI32(b, loc, lane);
  Value zeroF = arith::BitcastOp::create(b, loc, f32, zeroI);
  Value tileIndex = e.add(e.mul(bi, e.index(s.numTiles)), tile);
  Value unionBase = e.mul(tileIndex, e.index(s.T * s.K));
  Value unionSize = e.i32ToIndex(e.load(unionSizes, {tileIndex}));
  Value chunks = arith::DivUIOp::create(
      b, loc, e.add(unionSize, e.index(kKeyChunk - 1)), e.index(kKeyChunk));
  Value t0 = e.mul(tile, e.index(s.T));
  float scale = op.getScaleOrDefault();

  // This lane's two rows of the warp's 16: rows g and g + 8, each a
  // (query of the tile, head of the group) pair.
  struct Row {
    Value queryInTile, t, valid, head, queryBit, qBase;
  };
  auto rowOf = [&](int64_t plus) {
    Row r;
    Value m = e.add(g, e.index(plus));
    r.queryInTile = e.add(e.mul(warp, e.index(s.queriesPerWarp)),
                          arith::DivUIOp::create(b, loc, m, e.index(s.G)));
    r.t = e.add(t0, r.queryInTile);
    r.valid = e.cmpi(arith::CmpIPredicate::ult, r.t, cL);
    Value tc = e.minui(r.t, e.index(s.L - 1));
    r.t = tc;
    r.head = e.add(e.mul(kvh, e.index(s.G)),
                   arith::RemUIOp::create(b, loc, m, e.index(s.G)));
    r.queryBit = arith::ShLIOp::create(b, loc, e.i32(1),
                                       e.indexToI32(r.queryInTile));
    r.qBase = e.mul(e.add(e.mul(e.add(e.mul(bi, cL), tc), cNH), r.head), cD);
    return r;
  };
  Row rows[2] = {rowOf(0), rowOf(8)};

  // Q as A fragments for the whole kernel (d_k / 16 k-steps).
  SmallVector<SmallVector<Value>> qFrag;
  for (int64_t ks = 0; ks < s.D / 16; ++ks) {
    Value at = e.add(col, e.index(ks * 16));
    qFrag.push_back({loadPair(b, loc, q, e.add(rows[0].qBase, at)),
                     loadPair(b, loc, q, e.add(rows[1].qBase, at)),
                     loadPair(b, loc, q, e.add(rows[0].qBase, e.add(at, e.index(8)))),
                     loadPair(b, loc, q, e.add(rows[1].qBase, e.add(at, e.index(8))))});
  }

  // Stage `chunk` of the union into buffer `stage`: K and v' rows by
  // cp.async (16-byte pieces, piece p of row j at slot p ^ (j % 8)), the
  // masks and positions by plain stores. Entries past the union read row 0
  // with an empty mask (weight 0).
  int64_t pieces = s.D / 8;
  auto issue = [&](Value chunk, Value stage) {
    Value stageElems = e.mul(stage, e.index(chunkElems));
    for (int64_t r = 0; r < kKeyChunk * pieces / (kTileWarps * kWarpSize); ++r) {
      Value p = e.add(tid, e.index(r * kTileWarps * kWarpSize));
      Value j = arith::DivUIOp::create(b, loc, p, e.index(pieces));
      Value piece = arith::RemUIOp::create(b, loc, p, e.index(pieces));
      Value u = e.add(e.mul(chunk, e.index(kKeyChunk)), j);
      Value inUnion = e.cmpi(arith::CmpIPredicate::ult, u, unionSize);
      Value key = e.i32ToIndex(e.load(unionKeys, {e.add(unionBase, e.select(inUnion, u, zero))}));
      key = e.select(inUnion, key, zero);
      Value src = e.add(e.mul(e.add(e.mul(e.add(e.mul(bi, cL), key), cNKV), kvh), cD),
                        e.mul(piece, e.index(8)));
      Value slot = arith::XOrIOp::create(b, loc, piece,
                                         arith::AndIOp::create(b, loc, j, e.index(7)));
      Value dst = e.add(stageElems, e.add(e.mul(j, cD), e.mul(slot, e.index(8))));
      copyAsync16(b, loc, sharedAddress(e, kBuf, dst), globalAddress(e, k, src));
      copyAsync16(b, loc, sharedAddress(e, vBuf, dst), globalAddress(e, v, src));
    }
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, tid, e.index(kKeyChunk)), [&]() {
      Value u = e.add(e.mul(chunk, e.index(kKeyChunk)), tid);
      Value inUnion = e.cmpi(arith::CmpIPredicate::ult, u, unionSize);
      Value at = e.add(unionBase, e.select(inUnion, u, zero));
      Value slot = e.add(e.mul(stage, e.index(kKeyChunk)), tid);
      e.store(e.select(inUnion, e.load(unionMasks, {at}), e.i32(0)),
              maskBuf, {slot});
      e.store(e.select(inUnion, e.load(unionKeys, {at}), e.i32(0)),
              keyBuf, {slot});
    });
  };

  issue(zero, zero);
  NVVM::CpAsyncCommitGroupOp::create(b, loc);

  int64_t DT = s.D / 8, NT = kKeyChunk / 8;
  // State: m and l of rows g, g + 8; O as DT d-tiles x 4 accumulators.
  SmallVector<Value> init = {negInf, e.f32(0.0), negInf, e.f32(0.0)};
  for (int64_t i = 0; i < 4 * DT; ++i)
    init.push_back(e.f32(0.0));
  SmallVector<Value> state = e.loopCarry(
      zero, chunks, init, [&](Value chunk, ValueRange carried) -> SmallVector<Value> {
        Value stage = arith::AndIOp::create(b, loc, chunk, e.index(1));
        Value next = e.add(chunk, e.index(1));
        e.ifThen(e.cmpi(arith::CmpIPredicate::ult, next, chunks), [&]() {
          issue(next, e.sub(e.index(1), stage));
        });
        NVVM::CpAsyncCommitGroupOp::create(b, loc);
        NVVM::CpAsyncWaitGroupOp::create(b, loc, 1);
        gpu::BarrierOp::create(b, loc);

        Value stageElems = e.mul(stage, e.index(chunkElems));
        Value laneRow = arith::AndIOp::create(b, loc, lane, e.index(7));
        Value laneMatrix = arith::ShRUIOp::create(b, loc, lane, e.index(3));
        // S = Q K^T: NT n-tiles of 8 keys, two k-steps per ldmatrix.x4.
        SmallVector<SmallVector<Value>> sAcc;
        for (int64_t nt = 0; nt < NT; ++nt) {
          SmallVector<Value> acc = {zeroF, zeroF, zeroF, zeroF};
          Value j = e.add(e.index(nt * 8), laneRow);
          for (int64_t ks = 0; ks < s.D / 16; ks += 2) {
            Value piece = e.add(e.index(ks * 2), laneMatrix);
            Value slot = arith::XOrIOp::create(b, loc, piece, laneRow);
            Value at = e.add(stageElems, e.add(e.mul(j, cD), e.mul(slot, e.index(8))));
            SmallVector<Value> m = loadMatrices(b, loc, sharedAddress(e, kBuf, at), false);
            acc = mmaSync(b, loc, kind, qFrag[ks], {m[0], m[1]}, acc);
            acc = mmaSync(b, loc, kind, qFrag[ks + 1], {m[2], m[3]}, acc);
          }
          sAcc.push_back(acc);
        }
        // Scores, masked by each row's query bit; row maxima over the quad.
        SmallVector<SmallVector<Value>> score(2);
        for (int64_t nt = 0; nt < NT; ++nt)
          for (int64_t x = 0; x < 2; ++x) {
            Value slot = e.add(e.mul(stage, e.index(kKeyChunk)),
                               e.add(e.index(nt * 8 + x), col));
            Value mask = e.load(maskBuf, {slot});
            Value pos = hasScoreMod ? e.i32ToIndex(e.load(keyBuf, {slot})) : Value();
            for (int64_t r = 0; r < 2; ++r) {
              Value sc = e.mul(sAcc[nt][2 * r + x], e.f32(scale));
              if (hasScoreMod)
                sc = e.inlineRegion(op.getScoreMod(),
                                    {sc, bi, rows[r].head, rows[r].t, pos});
              Value member = e.cmpi(arith::CmpIPredicate::ne,
                                    e.andi(mask, rows[r].queryBit),
                                    e.i32(0));
              score[r].push_back(e.select(member, sc, negInf));
            }
          }
        SmallVector<Value> nextState, alpha(2);
        SmallVector<SmallVector<Value>> p(2);
        for (int64_t r = 0; r < 2; ++r) {
          Value mx = score[r][0];
          for (Value sc : ArrayRef<Value>(score[r]).drop_front())
            mx = arith::MaximumFOp::create(b, loc, mx, sc);
          for (int32_t off : {1, 2})
            mx = arith::MaximumFOp::create(b, loc, mx, shuffleXor(b, loc, mx, off));
          Value m = carried[2 * r], l = carried[2 * r + 1];
          Value mNew = arith::MaximumFOp::create(b, loc, m, mx);
          Value empty = e.cmpf(arith::CmpFPredicate::OEQ, mNew, negInf);
          alpha[r] = e.select(empty, e.f32(1.0),
                              exp2Approx(b, loc, e.mul(e.sub(m, mNew), log2e)));
          Value lNew = e.mul(l, alpha[r]);
          for (Value sc : score[r]) {
            Value raw = exp2Approx(b, loc, e.mul(e.sub(sc, mNew), log2e));
            Value pi = e.select(e.cmpf(arith::CmpFPredicate::OEQ, sc, negInf),
                                e.f32(0.0), raw);
            p[r].push_back(pi);
            lNew = e.add(lNew, pi);
          }
          nextState.push_back(mNew);
          nextState.push_back(lNew);
        }
        // O = O * alpha + P V: P's accumulator layout of n-tiles 2kk and
        // 2kk + 1 is the A layout of k-step kk; V's B fragments by
        // transposed ldmatrix, two d-tiles per instruction.
        SmallVector<Value> o;
        for (int64_t dt = 0; dt < DT; ++dt)
          for (int64_t i = 0; i < 4; ++i)
            o.push_back(e.mul(carried[4 + 4 * dt + i], alpha[i / 2]));
        for (int64_t kk = 0; kk < kKeyChunk / 16; ++kk) {
          // p[r] holds n-tile nt's keys 2c, 2c+1 at 2 nt, 2 nt + 1.
          auto pAt = [&](int64_t r, int64_t nt, int64_t x) { return p[r][2 * nt + x]; };
          SmallVector<Value> aFrag = {
              packPair(b, loc, elem, pAt(0, 2 * kk, 0), pAt(0, 2 * kk, 1)),
              packPair(b, loc, elem, pAt(1, 2 * kk, 0), pAt(1, 2 * kk, 1)),
              packPair(b, loc, elem, pAt(0, 2 * kk + 1, 0), pAt(0, 2 * kk + 1, 1)),
              packPair(b, loc, elem, pAt(1, 2 * kk + 1, 0), pAt(1, 2 * kk + 1, 1))};
          Value j = e.add(e.index(kk * 16),
                          e.add(laneRow, e.mul(arith::AndIOp::create(
                                                   b, loc, laneMatrix, e.index(1)),
                                               e.index(8))));
          Value half = arith::ShRUIOp::create(b, loc, laneMatrix, e.index(1));
          for (int64_t dt = 0; dt < DT; dt += 2) {
            Value piece = e.add(e.index(dt), half);
            Value slot = arith::XOrIOp::create(b, loc, piece, laneRow);
            Value at = e.add(stageElems, e.add(e.mul(j, cD), e.mul(slot, e.index(8))));
            SmallVector<Value> m = loadMatrices(b, loc, sharedAddress(e, vBuf, at), true);
            for (int64_t h = 0; h < 2; ++h) {
              SmallVector<Value> acc(o.begin() + 4 * (dt + h), o.begin() + 4 * (dt + h) + 4);
              acc = mmaSync(b, loc, kind, aFrag, {m[2 * h], m[2 * h + 1]}, acc);
              std::copy(acc.begin(), acc.end(), o.begin() + 4 * (dt + h));
            }
          }
        }
        nextState.append(o.begin(), o.end());
        // Everyone is done with this stage before it is refilled.
        gpu::BarrierOp::create(b, loc);
        return nextState;
      });
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);

  // Rows end: l over the quad, the output gate, O / l, lse.
  for (int64_t r = 0; r < 2; ++r) {
    Value m = state[2 * r], l = state[2 * r + 1];
    for (int32_t off : {1, 2})
      l = e.add(l, shuffleXor(b, loc, l, off));
    Value empty = e.cmpf(arith::CmpFPredicate::OEQ, l, e.f32(0.0));
    Value invL = e.select(empty, e.f32(0.0), e.div(e.f32(1.0), l));
    e.ifThen(rows[r].valid, [&]() {
      for (int64_t dt = 0; dt < DT; ++dt) {
        Value at = e.add(rows[r].qBase, e.add(col, e.index(dt * 8)));
        SmallVector<Value> values = {e.mul(state[4 + 4 * dt + 2 * r], invL),
                                     e.mul(state[4 + 4 * dt + 2 * r + 1], invL)};
        if (hasGO) {
          SmallVector<Value> gates = loadLaneRow(b, loc, go, at, 2);
          for (int64_t x = 0; x < 2; ++x)
            values[x] = e.mul(values[x], e.sigmoid(gates[x]));
        }
        storeLaneRow(b, loc, values, out, at);
      }
      e.ifThen(e.cmpi(arith::CmpIPredicate::eq, c, zero), [&]() {
        Value log2L = ptxUnary(b, loc, "lg2.approx.ftz.f32", l);
        Value logSum = e.add(m, e.mul(log2L, e.f32(kLn2)));
        Value at = e.add(e.mul(e.add(e.mul(bi, cL), rows[r].t), cNH), rows[r].head);
        e.store(e.select(empty, negInf, logSum), lse, {at});
      });
    });
  }
  gpu::ReturnOp::create(b, loc);
}

} // namespace

namespace gsa::detail {

bool usableQueryTiles(SparseAttentionOp op, bool valuesPregated) {
  Type elem = op.getQ().getType().getElementType();
  TileShape s = tileShapeOf(op);
  return (elem.isBF16() || elem.isF16()) &&
         op.getK().getType().getElementType() == elem &&
         op.getV().getType().getElementType() == elem &&
         (s.D == 64 || s.D == 128) && s.G >= 2 && kRowsPerWarp % s.G == 0 &&
         (!op.getValueGate() || valuesPregated);
}

void lowerAttentionByQueryTiles(SparseAttentionOp op, Value values,
                                gpu::GPUModuleOp kernels,
                                IRRewriter &rewriter, StringRef name) {
  Location loc = op.getLoc();
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, loc);
  TileShape s = tileShapeOf(op);
  Type i32 = rewriter.getI32Type();
  int64_t capacity = s.B * s.numTiles * s.T * s.K;
  auto scratch = [&](int64_t n) {
    return memref::AllocOp::create(rewriter, loc, MemRefType::get({n}, i32))
        .getResult();
  };
  Value unionKeys = scratch(capacity), unionMasks = scratch(capacity),
        unionSizes = scratch(s.B * s.numTiles);

  KernelArgs unionArgs;
  unionArgs.add(flatBuffer(e, op.getIndices()));
  unionArgs.add(flatBuffer(e, op.getCounts()));
  unionArgs.add(unionKeys);
  unionArgs.add(unionMasks);
  unionArgs.add(unionSizes);
  auto unionKernel = createKernel(kernels, loc, (name + "_query_tiles").str(),
                                  unionArgs, kUnionThreads);
  buildUnionKernel(unionKernel, s);
  launchKernel(e, unionKernel, unionArgs.operands(), s.numTiles, s.B, 1,
               kUnionThreads);

  KernelArgs args;
  args.add(flatBuffer(e, op.getQ()));
  args.add(flatBuffer(e, op.getK()));
  args.add(values);
  args.add(unionKeys);
  args.add(unionMasks);
  args.add(unionSizes);
  if (op.getOutputGate())
    args.add(flatBuffer(e, op.getOutputGate()));
  Value outBuffer = e.alloc(op.getO().getType(), {});
  Value lseBuffer = e.alloc(op.getLse().getType(), {});
  args.add(collapse(rewriter, loc, outBuffer));
  args.add(collapse(rewriter, loc, lseBuffer));
  int64_t threads = kTileWarps * kWarpSize;
  auto kernel = createKernel(kernels, loc, name, args, threads);
  // (Capping it at 168 registers for 3 CTAs per SM instead of 2 measured
  // 1.34x slower at 128K: docs/perf-log.md.)
  buildTileAttentionKernel(op, kernel, s);
  launchKernel(e, kernel, args.operands(), s.numTiles, s.NKV, s.B, threads);
  Value oTensor = e.toTensor(outBuffer, op.getO().getType());
  Value lseTensor = e.toTensor(lseBuffer, op.getLse().getType());
  rewriter.replaceOp(op, {oTensor, lseTensor});
}

} // namespace gsa::detail
