//===- GridConstantParams.cpp - gsa-grid-constant-params ------------------===//
//
// A TMA copy reads its tensor map from memory; the fastest place for the
// map is the kernel's parameter space (constant-cached, nothing to copy
// before the launch), which the PTX expresses as a 128-byte .param whose
// address the kernel takes. LLVM's NVPTX backend keeps such a parameter in
// parameter space only for a byval argument marked as a grid constant, and
// the GPU-to-LLVM conversion keeps neither mark on a gpu.func argument, so
// the kernel builders name the arguments in a function attribute and this
// pass sets the marks on the lowered llvm.func.
//
//===----------------------------------------------------------------------===//

#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

#include "GPUKernels.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSAGRIDCONSTANTPARAMS
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;

namespace {

struct GSAGridConstantParamsPass
    : gsa::impl::GSAGridConstantParamsBase<GSAGridConstantParamsPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    auto result = getOperation()->walk([&](LLVM::LLVMFuncOp func) {
      auto positions =
          func->getAttrOfType<DenseI32ArrayAttr>(gsa::detail::kTensorMapArgsAttr);
      if (!positions)
        return WalkResult::advance();
      for (int32_t i : positions.asArrayRef()) {
        if (i < 0 || unsigned(i) >= func.getNumArguments() ||
            !isa<LLVM::LLVMPointerType>(func.getArgumentTypes()[i])) {
          func.emitOpError(fmt::format(
              "{} names argument {}, which is not an !llvm.ptr argument of "
              "this kernel",
              gsa::detail::kTensorMapArgsAttr, i));
          return WalkResult::interrupt();
        }
        func.setArgAttr(i, LLVM::LLVMDialect::getByValAttrName(),
                        TypeAttr::get(LLVM::LLVMArrayType::get(
                            IntegerType::get(ctx, 8),
                            gsa::detail::kTensorMapBytes)));
        func.setArgAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                        IntegerAttr::get(IntegerType::get(ctx, 64),
                                         gsa::detail::kTensorMapAlign));
        func.setArgAttr(i, NVVM::NVVMDialect::getGridConstantAttrName(),
                        UnitAttr::get(ctx));
      }
      func->removeAttr(gsa::detail::kTensorMapArgsAttr);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
