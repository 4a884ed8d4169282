//===- SelectionArithmeticTest.cpp - the selection's key arithmetic -------===//
//
// The selection kernels compare scores through order keys (orderKey: the
// unsigned order of the keys is the float order) and, in the stats sweep's
// candidate test, through the f32 a cut key stands for (cutFloat). Both are
// IR builders; this test emits them into one function, runs it through the
// ExecutionEngine and checks that the float test decides as the key test
// does wherever the sample kernel can store a cut.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"

#include "mlir/Pass/Pass.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/TargetSelect.h"

#include <cstring>
#include <cmath>
#include <gtest/gtest.h>
#include <limits>
#include <random>

using namespace mlir;
using namespace gsa::detail;

namespace {

template <typename To, typename From> To bitsAs(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(to));
  return to;
}

/// JIT of `take(score: f32, key: i32) -> i32`: bit 1 = orderKey(score) >=
/// key (unsigned), bit 0 = score >= cutFloat(key) (ordered).
class TakeFunction {
public:
  TakeFunction() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    DialectRegistry registry;
    registry.insert<arith::ArithDialect, func::FuncDialect, LLVM::LLVMDialect>();
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();

    OpBuilder b(&context);
    Location loc = b.getUnknownLoc();
    module = ModuleOp::create(loc);
    b.setInsertionPointToEnd(module->getBody());
    auto fn = func::FuncOp::create(
        b, loc, "take",
        b.getFunctionType({b.getF32Type(), b.getI32Type()}, {b.getI32Type()}));
    // invoke() calls the C interface wrapper.
    fn->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(&context));
    Block *body = fn.addEntryBlock();
    b.setInsertionPointToStart(body);
    Emitter e(b, loc);
    Value score = body->getArgument(0), key = body->getArgument(1);
    Value byKey = e.cmpi(arith::CmpIPredicate::uge, orderKey(e, score), key);
    Value byFloat =
        e.cmpf(arith::CmpFPredicate::OGE, score, cutFloat(e, key));
    auto widen = [&](Value bit) {
      return arith::ExtUIOp::create(b, loc, b.getI32Type(), bit);
    };
    Value both = e.ori(arith::ShLIOp::create(b, loc, widen(byKey), e.i32(1)),
                       widen(byFloat));
    func::ReturnOp::create(b, loc, both);

    PassManager pm(&context);
    pm.addPass(createArithToLLVMConversionPass());
    pm.addPass(createConvertFuncToLLVMPass());
    pm.addPass(createReconcileUnrealizedCastsPass());
    if (failed(pm.run(*module)))
      return;
    auto created = ExecutionEngine::create(*module);
    if (!created) {
      llvm::consumeError(created.takeError());
      return;
    }
    engine = std::move(*created);
  }

  bool ready() const { return engine != nullptr; }

  /// (key test, float test) for one score and cut key.
  std::pair<bool, bool> operator()(uint32_t scoreBits, uint32_t key) {
    float score = bitsAs<float>(scoreBits);
    int32_t keyArg = bitsAs<int32_t>(key);
    int32_t result = -1;
    llvm::Error err = engine->invoke("take", score, keyArg,
                                     ExecutionEngine::result(result));
    EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
    return {(result & 2) != 0, (result & 1) != 0};
  }

private:
  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ExecutionEngine> engine;
};

/// The float order as keys: flip every bit of a negative, the sign bit of
/// the rest (the definition orderKey implements).
uint32_t referenceKey(uint32_t bits) {
  return (bits & 0x80000000u) ? ~bits : bits ^ 0x80000000u;
}

bool isNaN(uint32_t bits) { return std::isnan(bitsAs<float>(bits)); }

TEST(SelectionArithmetic, CutFloatDecidesAsTheOrderKey) {
  TakeFunction take;
  ASSERT_TRUE(take.ready());
  // Scores: both zeros, subnormals, normals, the largest finite values,
  // both infinities, and random bit patterns.
  std::vector<uint32_t> scores = {
      0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff,
      0x807fffff, 0x00800000, 0x80800000, 0x3f800000, 0xbf800000,
      0x3f800001, 0xbf800001, 0x7f7fffff, 0xff7fffff, 0x7f800000,
      0xff800000};
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    uint32_t bits = rng();
    if (!isNaN(bits))
      scores.push_back(bits);
  }
  // Cuts: every score's key and its neighbours, the smallest and largest
  // keys, and those around -inf's, +inf's and the zeros'.
  std::vector<uint32_t> keys = {0x00000000, 0x00000001, 0x007ffffe,
                                0x007fffff, 0x00800000, 0x7ffffffe,
                                0x7fffffff, 0x80000001, 0xff7fffff,
                                0xff800000, 0xff800001, 0xffffffff};
  for (uint32_t s : scores)
    for (uint32_t d : {0u, 1u, ~0u})
      keys.push_back(referenceKey(s) + d);
  int64_t checked = 0;
  for (uint32_t key : keys) {
    // The one cut the float test cannot express; the sample kernel never
    // stores it (it stores -0.0's key, 0x7fffffff, instead).
    if (key == 0x80000000u)
      continue;
    for (uint32_t s : scores) {
      auto [byKey, byFloat] = take(s, key);
      ASSERT_EQ(byKey, referenceKey(s) >= key)
          << "orderKey, score bits " << std::hex << s << " key " << key;
      ASSERT_EQ(byFloat, byKey)
          << "cutFloat, score bits " << std::hex << s << " key " << key;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(SelectionArithmetic, CutFloatAtPlusZeroWouldTakeMinusZero) {
  // Why the sample kernel remaps the cut key of +0.0: there the float test
  // takes -0.0, whose key is below the cut (the finish kernel's shared-bit
  // skip assumes no candidate is).
  TakeFunction take;
  ASSERT_TRUE(take.ready());
  auto [byKey, byFloat] = take(0x80000000u, 0x80000000u);
  EXPECT_FALSE(byKey);
  EXPECT_TRUE(byFloat);
  // With -0.0's key as the cut both tests take both zeros.
  for (uint32_t zero : {0x00000000u, 0x80000000u}) {
    auto [k, f] = take(zero, 0x7fffffffu);
    EXPECT_TRUE(k);
    EXPECT_TRUE(f);
  }
}

TEST(SelectionArithmetic, NaNScoresAreNeverCandidates) {
  TakeFunction take;
  ASSERT_TRUE(take.ready());
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu})
    for (uint32_t key : {0x00000000u, 0x007fffffu, 0x7fffffffu, 0xff800000u})
      EXPECT_FALSE(take(nan, key).second)
          << std::hex << "NaN bits " << nan << " key " << key;
}

} // namespace
