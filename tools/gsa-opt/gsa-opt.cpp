//===- gsa-opt.cpp - the gsa optimizer driver ------------------------------===//
//
// mlir-opt for the gsa compiler: the gsa dialect, its passes and pipelines,
// and the upstream dialects and passes the pipelines go through.
//
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/InitAll.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  gsa::registerCompilerDialects(registry);
  // The project's passes and pipelines.
  gsa::registerGSAPasses();
  gsa::registerCPUPipeline();
  gsa::registerGPUPipeline();
  // The upstream passes the pipelines are made of, so each stage can be run
  // and inspected on its own.
  mlir::registerTransformsPasses();
  mlir::bufferization::registerBufferizationPasses();
  mlir::bufferization::registerBufferizationPipelines();
  mlir::memref::registerMemRefPasses();
  mlir::arith::registerArithPasses();
  mlir::registerArithToLLVMConversionPass();
  mlir::registerConvertBufferizationToMemRefPass();
  mlir::registerConvertControlFlowToLLVMPass();
  mlir::registerConvertFuncToLLVMPass();
  mlir::registerConvertMathToLLVMPass();
  mlir::registerFinalizeMemRefToLLVMConversionPass();
  mlir::registerReconcileUnrealizedCastsPass();
  mlir::registerSCFToControlFlowPass();
  mlir::registerConvertGpuOpsToNVVMOpsPass();
  mlir::registerConvertNVVMToLLVMPass();
  mlir::registerGPUPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "gsa optimizer driver\n", registry));
}
