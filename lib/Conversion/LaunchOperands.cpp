//===- LaunchOperands.cpp - what a host-side launch operand is ------------===//

#include "gsa/Conversion/LaunchOperands.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

gsa::LaunchOperandSource gsa::traceLaunchOperand(Value operand) {
  LaunchOperandSource source;
  Value v = operand;
  for (;;) {
    if (auto collapse = v.getDefiningOp<memref::CollapseShapeOp>()) {
      v = collapse.getSrc();
      continue;
    }
    auto toBuffer = v.getDefiningOp<bufferization::ToBufferOp>();
    if (!toBuffer)
      break;
    Value tensor = toBuffer.getTensor();
    if (auto arg = dyn_cast<BlockArgument>(tensor)) {
      source.kind = LaunchOperandSource::Argument;
      source.number = arg.getArgNumber();
      return source;
    }
    auto toTensor = tensor.getDefiningOp<bufferization::ToTensorOp>();
    if (!toTensor)
      return source; // Unknown
    v = toTensor.getBuffer();
  }
  for (Operation *user : v.getUsers())
    if (auto toTensor = dyn_cast<bufferization::ToTensorOp>(user))
      for (OpOperand &use : toTensor.getResult().getUses()) {
        Operation *owner = use.getOwner();
        unsigned number = use.getOperandNumber();
        if (auto cast = dyn_cast<tensor::CastOp>(owner))
          for (OpOperand &castUse : cast.getResult().getUses())
            if (isa<func::ReturnOp>(castUse.getOwner())) {
              owner = castUse.getOwner();
              number = castUse.getOperandNumber();
            }
        if (isa<func::ReturnOp>(owner)) {
          source.kind = LaunchOperandSource::Result;
          source.number = number;
          return source;
        }
      }
  source.kind = LaunchOperandSource::Buffer;
  source.buffer = v;
  return source;
}
