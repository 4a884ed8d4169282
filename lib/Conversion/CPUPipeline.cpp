//===- CPUPipeline.cpp - the CPU reference pipeline ------------------------===//
//
// gsa program -> LLVM dialect, ready for the ExecutionEngine. One function,
// readable top to bottom; `gsa-opt --gsa-cpu-pipeline` runs the same thing.
//
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void gsa::buildCPUPipeline(OpPassManager &pm) {
  // gsa: the composite op into its parts, the parts into loops.
  pm.addPass(createGSADecompose());
  pm.addPass(createConvertGSAToLoops());
  pm.addPass(createCanonicalizerPass());

  // Tensors to buffers, with identity layouts at the function boundary so
  // the runtime passes plain row-major descriptors; then free every buffer
  // that does not escape.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createConvertBufferizationToMemRefPass());

  // Loops and scalars to the LLVM dialect. bf16 conversions are expanded
  // to integer code so no soft-float library call is needed.
  pm.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void gsa::registerCPUPipeline() {
  PassPipelineRegistration<>(
      "gsa-cpu-pipeline",
      "lower a gsa program to the LLVM dialect for the CPU (reference path)",
      [](OpPassManager &pm) { buildCPUPipeline(pm); });
}
