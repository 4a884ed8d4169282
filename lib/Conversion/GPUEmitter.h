//===- GPUEmitter.h - building blocks of the gsa GPU kernels ----*- C++ -*-===//
//
// Helpers shared by the GPU kernel builders (sparse attention, indexer,
// selection): approximate transcendental instructions, warp collectives,
// vector loads of a lane's slice of a row, and the flat kernel buffers.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_CONVERSION_GPUEMITTER_H
#define GSA_LIB_CONVERSION_GPUEMITTER_H

#include "Emitter.h"

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <fmt/format.h>

namespace gsa::detail {

constexpr int64_t kWarpSize = 32;
/// mma.sync m16n8k16's M: the rows of a tile one warp owns.
constexpr int64_t kRowsPerWarp = 16;
/// Static shared memory a kernel may declare.
constexpr int64_t kStaticSharedBytes = 48 * 1024;
/// Shared memory a block may use on sm_90 (static plus dynamic).
constexpr int64_t kBlockSharedBytes = 227 * 1024;
constexpr double kLog2E = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

/// x * y + z in one rounding (LLVM's intrinsic: fma.rn on the GPU).
inline Value fusedMulAdd(Emitter &e, Value x, Value y, Value z) {
  return LLVM::FMAOp::create(e.builder(), e.location(), x, y, z);
}

/// One f32 PTX instruction `op dst, src;` (approximate transcendental).
inline Value ptxUnary(OpBuilder &b, Location loc, StringRef instruction, Value x) {
  std::string code = (instruction + " $0, $1;").str();
  auto op = NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()},
                                      ValueRange{x}, ValueRange{},
                                      b.getStringAttr(code), Value());
  return op.getResult(0);
}

inline Value exp2Approx(OpBuilder &b, Location loc, Value x) {
  return ptxUnary(b, loc, "ex2.approx.ftz.f32", x);
}

/// The E contiguous elements of a row that one lane owns, loaded with one
/// vector load (E * element-size bytes, aligned as such: rows start at
/// multiples of d_k elements and lanes at multiples of E), extended to f32.
inline SmallVector<Value> loadLaneRow(OpBuilder &b, Location loc, Value memref,
                               Value offset, int64_t E) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  auto vecType = VectorType::get({E}, elem);
  unsigned bytes = E * elem.getIntOrFloatBitWidth() / 8;
  Value vec = vector::LoadOp::create(b, loc, vecType, memref, ValueRange{offset},
                                     /*nontemporal=*/false,
                                     llvm::MaybeAlign(bytes));
  SmallVector<Value> out;
  for (int64_t i = 0; i < E; ++i) {
    Value x = vector::ExtractOp::create(b, loc, vec, ArrayRef<int64_t>{i});
    if (!x.getType().isF32())
      x = arith::ExtFOp::create(b, loc, b.getF32Type(), x);
    out.push_back(x);
  }
  return out;
}

/// Stores E f32 values as one vector of the memref's element type.
inline void storeLaneRow(OpBuilder &b, Location loc, ArrayRef<Value> values,
                  Value memref, Value offset) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  int64_t E = values.size();
  auto vecType = VectorType::get({E}, elem);
  Value vec = arith::ConstantOp::create(
      b, loc, vecType, DenseElementsAttr::get(vecType, b.getZeroAttr(elem)));
  for (auto [i, v] : llvm::enumerate(values)) {
    Value x = v;
    if (x.getType() != elem)
      x = arith::TruncFOp::create(b, loc, elem, x);
    vec = vector::InsertOp::create(b, loc, x, vec, ArrayRef<int64_t>{int64_t(i)});
  }
  unsigned bytes = E * elem.getIntOrFloatBitWidth() / 8;
  vector::StoreOp::create(b, loc, vec, memref, ValueRange{offset},
                          /*nontemporal=*/false, llvm::MaybeAlign(bytes));
}

/// A buffer viewed as 1-D (rank 0, a scalar, and rank 1 stay as they are).
inline Value collapse(OpBuilder &b, Location loc, Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() <= 1)
    return buffer;
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  return memref::CollapseShapeOp::create(b, loc, buffer,
                                         ArrayRef<ReassociationIndices>{all});
}

/// Flattens a tensor operand to the 1-D buffer a kernel takes.
inline Value flatBuffer(Emitter &e, Value tensor) {
  return collapse(e.builder(), e.location(), e.toBuffer(tensor));
}

/// The 32-bit mask of the lanes of this warp whose predicate holds.
inline Value warpBallot(OpBuilder &b, Location loc, Value predicate) {
  Value all = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(-1));
  return NVVM::VoteSyncOp::create(b, loc, b.getI32Type(), all, predicate,
                                  NVVM::VoteSyncKind::ballot);
}

/// Number of set bits of an i32, as index.
inline Value popCount(OpBuilder &b, Location loc, Value bits) {
  // LLVM's intrinsic directly: the GPU lowering has no math.ctpop pattern.
  Value n = LLVM::CtPopOp::create(b, loc, b.getI32Type(), bits);
  return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), n);
}

/// xor-shuffle of a 32-bit value within the warp.
inline Value shuffleXor(OpBuilder &b, Location loc, Value v, int32_t offset) {
  return gpu::ShuffleOp::create(b, loc, v, offset, kWarpSize,
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

/// Inclusive prefix sum of an i32 over the lanes of a warp (lane 0 first),
/// by shuffles up.
inline Value warpInclusiveSum(OpBuilder &b, Location loc, Value value) {
  Value zero = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0));
  for (int32_t off = 1; off < kWarpSize; off *= 2) {
    // The shuffle's own "source lane in range" predicate (lane >= off):
    // no compare of the lane id, which LLVM hoists out of loops and keeps
    // live across them (registers).
    auto up = gpu::ShuffleOp::create(b, loc, value, off, kWarpSize,
                                     gpu::ShuffleMode::UP);
    value = arith::AddIOp::create(
        b, loc, value,
        arith::SelectOp::create(b, loc, up.getValid(), up.getShuffleResult(),
                                zero));
  }
  return value;
}

/// Two f32 values rounded to `elem` (bf16/f16) and packed into one 32-bit
/// register, the first in the low half (an mma operand pair).
inline Value packPair(OpBuilder &b, Location loc, Type elem, Value x, Value y) {
  Value xs = arith::TruncFOp::create(b, loc, elem, x);
  Value ys = arith::TruncFOp::create(b, loc, elem, y);
  Value pair = vector::FromElementsOp::create(
      b, loc, VectorType::get({2}, elem), ValueRange{xs, ys});
  Value bits = vector::BitCastOp::create(
      b, loc, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, loc, bits, ArrayRef<int64_t>{0});
}

/// Block-wide exclusive prefix sum of one i32 per thread (thread order) and
/// the block's total, for `warps` warps: a shuffle scan per warp, the warp
/// totals through `warpTotals` (a shared buffer of `warps` i32), one
/// barrier. Every thread of the block must call it.
inline std::pair<Value, Value> blockExclusiveSum(OpBuilder &b, Location loc,
                                                 Value value, Value lane,
                                                 Value warp, Value warpTotals,
                                                 int64_t warps) {
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value zero = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0));
  Value inclusive = warpInclusiveSum(b, loc, value);
  Value last = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane,
                                     index(kWarpSize - 1));
  scf::IfOp::create(b, loc, last, [&](OpBuilder &nested, Location) {
    memref::StoreOp::create(nested, loc, inclusive, warpTotals, ValueRange{warp});
    scf::YieldOp::create(nested, loc);
  });
  gpu::BarrierOp::create(b, loc);
  Value before = zero, total = zero;
  for (int64_t w = 0; w < warps; ++w) {
    Value x = memref::LoadOp::create(b, loc, warpTotals, ValueRange{index(w)});
    total = arith::AddIOp::create(b, loc, total, x);
    Value earlier = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                          index(w), warp);
    before = arith::AddIOp::create(
        b, loc, before, arith::SelectOp::create(b, loc, earlier, x, zero));
  }
  Value exclusive = arith::SubIOp::create(
      b, loc, arith::AddIOp::create(b, loc, before, inclusive), value);
  return {exclusive, total};
}

/// An i32 0 that is not a constant op (lane / 32 is 0): the inline-asm
/// lowering gives constant operands an immediate ("n") constraint, which
/// mma's register operands cannot take.
inline Value opaqueZeroI32(OpBuilder &b, Location loc, Value lane) {
  Value high = arith::ShRUIOp::create(
      b, loc, lane, arith::ConstantIndexOp::create(b, loc, 5));
  return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), high);
}

/// Leading zero bits of an i32 (32 for zero).
inline Value countLeadingZeros(OpBuilder &b, Location loc, Value bits) {
  return LLVM::CountLeadingZerosOp::create(b, loc, b.getI32Type(), bits,
                                           b.getBoolAttr(false));
}

/// xor-shuffle of a 64-bit value as two 32-bit shuffles (the NVVM lowering
/// of gpu.shuffle takes 32-bit values).
inline Value shuffleXor64(OpBuilder &b, Location loc, Value value,
                          int32_t offset) {
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  Type original = value.getType();
  Value bits = original.isInteger(64)
                   ? value
                   : arith::BitcastOp::create(b, loc, i64, value).getResult();
  Value low = arith::TruncIOp::create(b, loc, i32, bits);
  Value c32 = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(32));
  Value high = arith::TruncIOp::create(
      b, loc, i32, arith::ShRUIOp::create(b, loc, bits, c32));
  auto shuffle = [&](Value x) {
    return gpu::ShuffleOp::create(b, loc, x, offset, kWarpSize,
                                  gpu::ShuffleMode::XOR)
        .getShuffleResult();
  };
  Value lowS = arith::ExtUIOp::create(b, loc, i64, shuffle(low));
  Value highS = arith::ExtUIOp::create(b, loc, i64, shuffle(high));
  Value joined = arith::OrIOp::create(
      b, loc, lowS, arith::ShLIOp::create(b, loc, highS, c32));
  if (original.isInteger(64))
    return joined;
  return arith::BitcastOp::create(b, loc, original, joined);
}

/// Two 16-bit elements at an even offset as one 32-bit register (the lower
/// half holds the element at the lower index, as mma fragments want).
inline Value loadPair(OpBuilder &b, Location loc, Value memref, Value offset) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  Value pair = vector::LoadOp::create(b, loc, VectorType::get({2}, elem),
                                      memref, ValueRange{offset},
                                      /*nontemporal=*/false, llvm::MaybeAlign(4));
  Value bits = vector::BitCastOp::create(
      b, loc, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, loc, bits, ArrayRef<int64_t>{0});
}

/// D = A * B + C for one m16n8k16 tile on the tensor cores (fp32
/// accumulation); A, B as packed 16-bit pairs.
inline SmallVector<Value> mmaSync(OpBuilder &b, Location loc, StringRef elem,
                           ArrayRef<Value> a, ArrayRef<Value> bFrag,
                           ArrayRef<Value> c) {
  std::string code =
      ("mma.sync.aligned.m16n8k16.row.col.f32." + elem + "." + elem +
       ".f32 {$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, "
       "{$10, $11, $12, $13};")
          .str();
  SmallVector<Value> args(a.begin(), a.end());
  args.append(bFrag.begin(), bFrag.end());
  args.append(c.begin(), c.end());
  Type f32 = b.getF32Type();
  auto op = NVVM::InlinePtxOp::create(b, loc, TypeRange{f32, f32, f32, f32},
                                      args, ValueRange{}, b.getStringAttr(code),
                                      Value());
  return SmallVector<Value>(op.getResults());
}

/// The parameters of one kernel: host buffers in order, each becoming a
/// block argument of the gpu.func.
class KernelArgs {
public:
  /// Adds a host buffer (flattened where needed); returns its position.
  unsigned add(Value hostBuffer) {
    host.push_back(hostBuffer);
    return host.size() - 1;
  }
  SmallVector<Type> types() const {
    SmallVector<Type> out;
    for (Value v : host)
      out.push_back(v.getType());
    return out;
  }
  ArrayRef<Value> operands() const { return host; }

private:
  SmallVector<Value> host;
};

/// A workgroup (shared memory) buffer of n elements attached to a kernel,
/// `alignment`-byte aligned (at least 16, so that (vectorised) 128-bit
/// shared loads are legal).
inline Value sharedBuffer(gpu::GPUFuncOp kernel, Type elem, int64_t n,
                          int64_t alignment = 16) {
  auto workgroup = gpu::AddressSpaceAttr::get(kernel.getContext(),
                                              gpu::AddressSpace::Workgroup);
  auto type = MemRefType::get({n}, elem, MemRefLayoutAttrInterface(), workgroup);
  Value buffer = kernel.addWorkgroupAttribution(type, kernel.getLoc());
  kernel.setWorkgroupAttributionAttr(
      kernel.getNumWorkgroupAttributions() - 1,
      LLVM::LLVMDialect::getAlignAttrName(),
      IntegerAttr::get(IntegerType::get(kernel.getContext(), 64), alignment));
  return buffer;
}

/// A buffer of `n` elements at the start of the launch's dynamic shared
/// memory (a kernel may hold more than 48 KiB only there; the launch must
/// ask for n elements' bytes, see launchKernel), built at `b`'s point.
inline Value dynamicSharedBuffer(OpBuilder &b, Location loc, Type elem,
                                 int64_t n) {
  auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                              gpu::AddressSpace::Workgroup);
  Value bytes = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                      MemRefLayoutAttrInterface(), workgroup));
  Value start = arith::ConstantIndexOp::create(b, loc, 0);
  return memref::ViewOp::create(
      b, loc,
      MemRefType::get({n}, elem, MemRefLayoutAttrInterface(), workgroup),
      bytes, start, ValueRange{});
}

/// Launches `kernel` on a (gridX, gridY, gridZ) grid of 1-D blocks with
/// `dynamicShared` bytes of dynamic shared memory.
inline void launchKernel(Emitter &host, gpu::GPUFuncOp kernel,
                         ArrayRef<Value> operands, int64_t gridX,
                         int64_t gridY, int64_t gridZ, int64_t threads,
                         int64_t dynamicShared = 0) {
  gpu::KernelDim3 grid{host.index(gridX), host.index(gridY), host.index(gridZ)};
  gpu::KernelDim3 block{host.index(threads), host.index(1), host.index(1)};
  Value shared;
  if (dynamicShared > 0)
    shared = arith::ConstantIntOp::create(host.builder(), host.location(),
                                          host.builder().getI32Type(),
                                          dynamicShared);
  gpu::LaunchFuncOp::create(host.builder(), host.location(), kernel, grid,
                            block, shared, operands);
}

/// The address of element `offset` of a buffer as an integer of `type`:
/// i32 for a workgroup buffer (the shared window, what ldmatrix and
/// cp.async take as `[r]`), i64 for a global buffer. Kernel buffers arrive
/// as bare pointers and workgroup buffers are whole allocations, so the
/// aligned pointer is the buffer's start.
inline Value byteAddress(Emitter &e, Value buffer, Value offset, Type type) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  auto memrefType = cast<MemRefType>(buffer.getType());
  Value bytes = e.mul(offset, e.index(memrefType.getElementTypeBitWidth() / 8));
  return arith::IndexCastUIOp::create(b, loc, type, e.add(base, bytes));
}
/// The bytes of a (shared) buffer.
inline int64_t bytesOf(MemRefType type) {
  return type.getNumElements() * type.getElementTypeBitWidth() / 8;
}

inline Value sharedAddress(Emitter &e, Value buffer, Value offset) {
  return byteAddress(e, buffer, offset, e.builder().getI32Type());
}
inline Value globalAddress(Emitter &e, Value buffer, Value offset) {
  return byteAddress(e, buffer, offset, e.builder().getI64Type());
}

/// Element offset, inside one ring slot of `rows` rows, of 16-byte piece
/// `piece` of row `row` in the swizzled layout (gsa-stage-shared writes it,
/// gsa-map-tensor-cores reads it). A row is cut into 128-byte column blocks
/// stored one after the other; inside a block, row r is 128 bytes at r x 128
/// with its eight pieces permuted by p ^ (r % 8). The eight rows of an
/// ldmatrix phase then hit eight different bank groups, and with the slot
/// 1024-byte aligned and `rows` a multiple of 8 each block is the 128-byte
/// swizzle layout that wgmma's shared-memory descriptors address (atoms of
/// 8 rows x 128 bytes, swizzled on address bits 4-6 by bits 7-9).
inline Value swizzledPieceOffset(Emitter &e, Value row, Value piece,
                                 int64_t rows, int64_t perPiece) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  int64_t blockElems = 8 * perPiece; // one 128-byte row of a column block
  Value block = arith::ShRUIOp::create(b, loc, piece, e.index(3));
  Value inBlock = arith::AndIOp::create(b, loc, piece, e.index(7));
  Value permuted = arith::XOrIOp::create(
      b, loc, inBlock, arith::AndIOp::create(b, loc, row, e.index(7)));
  return e.add(e.mul(block, e.index(rows * blockElems)),
               e.add(e.mul(row, e.index(blockElems)),
                     e.mul(permuted, e.index(perPiece))));
}

/// A wgmma shared-memory matrix descriptor for the 128-byte swizzle layout
/// (swizzledPieceOffset): start address, leading and stride byte offsets,
/// each in 16-byte units, and layout type 1 (128-byte swizzle) in bits
/// 62-63.
inline Value matrixDescriptor(Emitter &e, Value address, int64_t leading,
                              int64_t stride) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Type i64 = b.getI64Type();
  Value start = arith::AndIOp::create(
      b, loc,
      arith::ShRUIOp::create(b, loc,
                             arith::ExtUIOp::create(b, loc, i64, address),
                             arith::ConstantIntOp::create(b, loc, i64, 4)),
      arith::ConstantIntOp::create(b, loc, i64, 0x3FFF));
  uint64_t fields = (uint64_t(leading >> 4) << 16) |
                    (uint64_t(stride >> 4) << 32) | (uint64_t(1) << 62);
  return arith::OrIOp::create(
      b, loc, start,
      arith::ConstantIntOp::create(b, loc, i64, int64_t(fields)));
}

/// The descriptor of the matrix `bytes` past `first`'s (a multiple of 16):
/// only the start address field (address / 16 in bits 0-13) differs, and
/// shared addresses stay below 2^18 bytes, so adding bytes / 16 never
/// carries out of it - one add instead of rebuilding the descriptor.
inline Value offsetDescriptor(Emitter &e, Value first, int64_t bytes) {
  if (bytes == 0)
    return first;
  OpBuilder &b = e.builder();
  return arith::AddIOp::create(
      b, e.location(), first,
      arith::ConstantIntOp::create(b, e.location(), b.getI64Type(),
                                   bytes >> 4));
}

/// "{$first, ..., $(first+n-1)}": a register list of an inline PTX block.
inline std::string asmRegisterList(int64_t first, int64_t n) {
  std::string out = "{";
  for (int64_t i = 0; i < n; ++i)
    out += (i ? ", $" : "$") + std::to_string(first + i);
  return out + "}";
}

/// One `wgmma.mma_async` m64nNk16 line of an inline PTX block (f32
/// accumulators $accFirst..$accFirst+accN-1, A from the 4 registers
/// $first..$first+3, B by the descriptor $descriptor - by default
/// $first+4, and the accumulators from $0): `scaleD` names the predicate
/// that says whether the accumulators are added to, `transposeB` is 1 for
/// an MN-major B.
inline std::string wgmmaLine(int64_t n, llvm::StringRef kind, int64_t accN,
                             int64_t first, llvm::StringRef scaleD,
                             int64_t transposeB, int64_t accFirst = 0,
                             int64_t descriptor = -1) {
  return fmt::format("wgmma.mma_async.sync.aligned.m64n{}k16.f32.{}.{} "
                     "{}, {}, ${}, {}, 1, 1, {};\n",
                     n, kind.str(), kind.str(), asmRegisterList(accFirst, accN),
                     asmRegisterList(first, 4),
                     descriptor < 0 ? first + 4 : descriptor, scaleD.str(),
                     transposeB);
}

/// One wgmma product line with both operands in shared memory: A (K-major,
/// not transposed) by the descriptor $aDescriptor, B by $bDescriptor; the
/// rest as wgmmaLine.
inline std::string wgmmaSharedLine(int64_t n, llvm::StringRef kind,
                                   int64_t accN, int64_t aDescriptor,
                                   int64_t bDescriptor, llvm::StringRef scaleD,
                                   int64_t transposeB) {
  return fmt::format("wgmma.mma_async.sync.aligned.m64n{}k16.f32.{}.{} "
                     "{}, ${}, ${}, {}, 1, 1, 0, {};\n",
                     n, kind.str(), kind.str(), asmRegisterList(0, accN),
                     aDescriptor, bDescriptor, scaleD.str(), transposeB);
}

/// An inline PTX block with `n` f32 results ("=f" constraints first in
/// `constraints`, then the operands').
inline SmallVector<Value> inlineAsmF32Results(OpBuilder &b, Location loc,
                                              StringRef code,
                                              ArrayRef<Value> operands,
                                              StringRef constraints,
                                              int64_t n) {
  Type f32 = b.getF32Type();
  auto structType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(n, f32));
  auto block = LLVM::InlineAsmOp::create(
      b, loc, structType, operands, code, constraints,
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT),
      ArrayAttr());
  SmallVector<Value> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, loc, block.getResult(0),
                                               ArrayRef<int64_t>{i}));
  return out;
}

/// An inline PTX block of wgmma products whose text `code` issues, commits
/// and waits: no accumulator register is read or copied while a product is
/// in flight. Its operands: `accN` f32 accumulators ($0..), per k-step 4 A
/// registers and a B descriptor - or, with `aFromShared`, an A descriptor
/// and a B descriptor - (`operands`, then any further i32 operands
/// `extraI32`), and where `tied` holds the incoming accumulators they are
/// tied to the outputs. Returns the accumulators.
inline SmallVector<Value>
warpgroupProductBlock(OpBuilder &b, Location loc, StringRef code,
                      ArrayRef<Value> operands, int64_t accN, int64_t steps,
                      int64_t extraI32, ArrayRef<Value> tied,
                      bool aFromShared = false) {
  std::string constraints;
  for (int64_t i = 0; i < accN; ++i)
    constraints += "=f,";
  for (int64_t ks = 0; ks < steps; ++ks)
    constraints += aFromShared ? "l,l," : "r,r,r,r,l,";
  for (int64_t i = 0; i < extraI32; ++i)
    constraints += "r,";
  constraints.pop_back();
  for (int64_t i = 0; i < int64_t(tied.size()); ++i)
    constraints += "," + std::to_string(i);
  SmallVector<Value> all(operands.begin(), operands.end());
  all.append(tied.begin(), tied.end());
  return inlineAsmF32Results(b, loc, code, all, constraints, accN);
}

/// x / y in f64 without `div.rn.f64`, which ptxas makes a subroutine call
/// (refused in wgmma kernels, see gsa-serialize-kernels): the reciprocal
/// from `rcp.approx.ftz.f64` refined by two Newton steps, then one
/// residual correction of the quotient (at most 1 ulp from div.rn; y a
/// normal number).
inline Value divideF64WithoutCall(Emitter &e, Value x, Value y) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Type f64 = b.getF64Type();
  Value r = NVVM::InlinePtxOp::create(b, loc, TypeRange{f64}, ValueRange{y},
                                     ValueRange{},
                                     b.getStringAttr("rcp.approx.ftz.f64 $0, $1;"),
                                     Value())
                .getResult(0);
  Value one = e.f64(1.0);
  Value negY = arith::NegFOp::create(b, loc, y);
  for (int step = 0; step < 2; ++step) {
    Value err = LLVM::FMAOp::create(b, loc, negY, r, one);
    r = LLVM::FMAOp::create(b, loc, r, err, r);
  }
  Value q = e.mul(x, r);
  Value residual = LLVM::FMAOp::create(b, loc, negY, q, x);
  return LLVM::FMAOp::create(b, loc, residual, r, q);
}

/// Orders this thread's landed cp.async copies (written through the generic
/// proxy) before wgmma reads of them (through the async proxy); a barrier
/// after it publishes them to the other threads.
inline void asyncProxyFence(OpBuilder &b, Location loc) {
  NVVM::InlinePtxOp::create(b, loc, TypeRange{}, ValueRange{}, ValueRange{},
                            b.getStringAttr("fence.proxy.async.shared::cta;"),
                            Value());
}

/// A void inline PTX block with side effects, `predicate` (i1) guarding it
/// where given.
inline void inlinePtx(OpBuilder &b, Location loc, StringRef code,
                      ValueRange operands, Value predicate = Value()) {
  NVVM::InlinePtxOp::create(b, loc, TypeRange{}, operands, ValueRange{},
                            b.getStringAttr(code), predicate);
}

// Shared-memory barriers (mbarrier) and TMA copies. A barrier is 8 bytes
// of shared memory at the i32 shared address `bar`; a phase completes when
// its expected arrivals have arrived and, for a TMA copy's barrier, the
// bytes it expects have landed.

/// Initialises the barrier for `count` arrivals per phase.
inline void mbarrierInit(OpBuilder &b, Location loc, Value bar,
                         int64_t count) {
  Value n = arith::ConstantIntOp::create(b, loc, b.getI32Type(), count);
  inlinePtx(b, loc, "mbarrier.init.shared::cta.b64 [$0], $1;", {bar, n});
}

/// Orders the barriers' initialisation before their use by the TMA unit
/// (the async proxy) and other threads.
inline void mbarrierInitFence(OpBuilder &b, Location loc) {
  inlinePtx(b, loc,
            "fence.mbarrier_init.release.cluster;\n"
            "fence.proxy.async.shared::cta;",
            {});
}

/// Arrives on the barrier (by the threads for which `predicate` holds).
inline void mbarrierArrive(OpBuilder &b, Location loc, Value bar,
                           Value predicate = Value()) {
  inlinePtx(b, loc, "mbarrier.arrive.shared::cta.b64 _, [$0];", {bar},
            predicate);
}

/// Arrives on the barrier and adds `bytes` to the bytes its phase waits
/// for (the copies that follow complete them).
inline void mbarrierArriveExpectTx(OpBuilder &b, Location loc, Value bar,
                                   int64_t bytes) {
  Value n = arith::ConstantIntOp::create(b, loc, b.getI32Type(), bytes);
  inlinePtx(b, loc, "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;",
            {bar, n});
}

/// Waits until the barrier's phase of parity `parity` (i32, 0 or 1) has
/// completed: try_wait (which suspends the thread for a while) in a loop.
/// The labels are local to the braces' scope, so the block may appear any
/// number of times in a kernel.
inline void mbarrierWait(OpBuilder &b, Location loc, Value bar,
                         Value parity) {
  inlinePtx(b, loc,
            "{\n.reg .pred done;\nwait:\n"
            "mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1;\n"
            "@!done bra wait;\n}",
            {bar, parity});
}

/// A TMA copy of one box of the 3-d tensor map `map` (a grid-constant
/// kernel argument, gsa.tensor_map) at element coordinates (x, y, z),
/// innermost first, into shared memory at `dst`; completes `bytes` on the
/// barrier `bar`.
inline void tmaLoad3d(OpBuilder &b, Location loc, Value dst, Value map,
                      Value x, Value y, Value z, Value bar) {
  inlinePtx(b, loc,
            "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::"
            "complete_tx::bytes [$0], [$1, {$2, $3, $4}], [$5];",
            {dst, map, x, y, z, bar});
}

/// The TMA tensor map (gsa.tensor_map, built on the host side of a launch)
/// of a [B, L, D] 16-bit `source` of shape `shape`, read in boxes of
/// [1, rows, 64] - one 128-byte column block of `rows` consecutive rows -
/// with the 128-byte swizzle that the staged slots and wgmma's descriptors
/// use (tmaLoadRowChunk copies with it).
inline Value rowChunkTensorMap(OpBuilder &b, Location loc, Value source,
                               ArrayRef<int64_t> shape, int64_t rows) {
  return TensorMapOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()),
                             source, b.getDenseI64ArrayAttr(shape),
                             b.getDenseI64ArrayAttr({1, rows, 64}),
                             b.getI64IntegerAttr(128));
}

/// A ring slot's copy of `rows` consecutive rows of a [B, L, D] 16-bit
/// source by TMA: one box [1, rows, 64] of its tensor map `map` per 128-byte
/// column block, from row `firstRow` of batch `batch` (i32 coordinates),
/// column block k to element slotElems + k x rows x 64 of `ring` (the
/// 128-byte swizzle layout of the swizzled copies), completing on the
/// mbarrier at shared address `bar`.
inline void tmaLoadRowChunk(Emitter &e, Value ring, Value slotElems,
                            int64_t rows, int64_t D, Value map, Value firstRow,
                            Value batch, Value bar) {
  for (int64_t block = 0; block < D / 64; ++block)
    tmaLoad3d(e.builder(), e.location(),
              sharedAddress(e, ring, e.add(slotElems, e.index(block * rows * 64))),
              map, e.i32(int32_t(block * 64)), firstRow, batch, bar);
}

/// The parity (i32) of the phase that chunk `ordinal`'s fill of its ring
/// slot completes on the slot's mbarrier (one phase per fill: fill
/// ordinal / stages), or of the fill `back` before that.
inline Value slotFillParity(Emitter &e, Value ordinal, int64_t stages,
                            int64_t back = 0) {
  Value fill = e.div(ordinal, e.index(stages));
  if (back)
    fill = e.add(fill, e.index(back));
  return e.indexToI32(
      arith::AndIOp::create(e.builder(), e.location(), fill, e.index(1)));
}

/// Asks for the 4-byte elements [first, first + count) of a global buffer
/// in L2 (sm_90 `cp.async.bulk.prefetch.L2`: one instruction, no registers,
/// nothing to wait for). The bulk copy engine takes 16-byte aligned spans
/// only: the span's start is rounded down and its end down too (never past
/// the buffer; a tail of at most 3 elements is left to the loads).
inline void prefetchL2(Emitter &e, Value buffer, Value first, Value count) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Type i64 = b.getI64Type();
  Value mask = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(~int64_t(15)));
  Value start = globalAddress(e, buffer, first);
  Value end = globalAddress(e, buffer, e.add(first, count));
  Value from = arith::AndIOp::create(b, loc, start, mask);
  Value to = arith::AndIOp::create(b, loc, end, mask);
  Value any = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, to, from);
  e.ifThen(any, [&]() {
    Value bytes = arith::TruncIOp::create(
        b, loc, b.getI32Type(), arith::SubIOp::create(b, loc, i64, to, from));
    NVVM::InlinePtxOp::create(
        b, loc, TypeRange{}, ValueRange{from, bytes}, ValueRange{},
        b.getStringAttr("cp.async.bulk.prefetch.L2.global [$0], $1;"),
        Value());
  });
}

/// 16 bytes global -> shared without registers (completion through the
/// commit / wait groups).
inline void copyAsync16(OpBuilder &b, Location loc, Value sharedAddr,
                        Value globalAddr) {
  NVVM::InlinePtxOp::create(
      b, loc, TypeRange{}, ValueRange{sharedAddr, globalAddr}, ValueRange{},
      b.getStringAttr("cp.async.cg.shared.global [$0], [$1], 16;"), Value());
}

/// A 4-byte asynchronous copy (cp.async.ca) of which `sourceBytes` (i32, 0
/// or 4) are read from global memory, the rest zero-filled.
inline void copyAsync4(OpBuilder &b, Location loc, Value sharedAddr,
                       Value globalAddr, Value sourceBytes) {
  NVVM::InlinePtxOp::create(
      b, loc, TypeRange{}, ValueRange{sharedAddr, globalAddr, sourceBytes},
      ValueRange{},
      b.getStringAttr("cp.async.ca.shared.global [$0], [$1], 4, $2;"),
      Value());
}

/// Four 8x8 16-bit matrices from shared memory; lane i gives the address of
/// row i % 8 of matrix i / 8 and receives, of each matrix, row i / 4,
/// elements 2 (i % 4) and 2 (i % 4) + 1 (or, transposed, column i / 4,
/// rows 2 (i % 4) and 2 (i % 4) + 1): the mma B fragment layout.
inline SmallVector<Value> loadMatrices(OpBuilder &b, Location loc,
                                       Value sharedAddr, bool transposed) {
  std::string code =
      std::string("ldmatrix.sync.aligned.m8n8.x4") +
      (transposed ? ".trans" : "") +
      ".shared.b16 {$0, $1, $2, $3}, [$4];";
  Type i32 = b.getI32Type();
  auto op = NVVM::InlinePtxOp::create(b, loc, TypeRange{i32, i32, i32, i32},
                                      ValueRange{sharedAddr}, ValueRange{},
                                      b.getStringAttr(code), Value());
  return SmallVector<Value>(op.getResults());
}

/// Fails with a located error unless every operand of `op` has a static
/// shape (the runtime specialises programs per shape before lowering).
inline LogicalResult checkStaticOperands(Operation *op) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op->emitOpError(
          "needs static shapes on the GPU path (the runtime specialises the "
          "program per shape before lowering)");
  return success();
}

/// A new kernel `name` in `kernels` taking `args`, with a known block size.
inline gpu::GPUFuncOp createKernel(gpu::GPUModuleOp kernels, Location loc,
                                   StringRef name, const KernelArgs &args,
                                   int32_t threads) {
  MLIRContext *ctx = kernels.getContext();
  OpBuilder kb = OpBuilder::atBlockEnd(kernels.getBody());
  auto kernel = gpu::GPUFuncOp::create(
      kb, loc, name, FunctionType::get(ctx, args.types(), {}));
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  kernel.setKnownBlockSizeAttr(DenseI32ArrayAttr::get(ctx, {threads, 1, 1}));
  return kernel;
}

} // namespace gsa::detail

#endif // GSA_LIB_CONVERSION_GPUEMITTER_H
