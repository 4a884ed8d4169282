//===- gsa-opt.cpp - the gsa optimizer driver ------------------------------===//
//
// mlir-opt for the gsa compiler: the gsa dialect, its passes and pipelines,
// and the upstream dialects and passes the pipelines go through.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<gsa::GSADialect, mlir::arith::ArithDialect,
                  mlir::func::FuncDialect, mlir::math::MathDialect,
                  mlir::tensor::TensorDialect>();
  gsa::registerGSAPasses();
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "gsa optimizer driver\n", registry));
}
