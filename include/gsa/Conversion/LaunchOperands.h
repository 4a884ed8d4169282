//===- LaunchOperands.h - what a host-side launch operand is ----*- C++ -*-===//
//
// After the GPU pipeline, the host function passes buffers to its
// gpu.launch_func ops. The runtime's launch plan and gsa-compile's manifest
// both need to know what each one is: an entry argument, a result the entry
// returns, or a buffer only the kernels see.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_CONVERSION_LAUNCHOPERANDS_H
#define GSA_CONVERSION_LAUNCHOPERANDS_H

#include "mlir/IR/Value.h"

namespace gsa {

struct LaunchOperandSource {
  enum Kind {
    /// Entry argument `number` (read through bufferization.to_buffer).
    Argument,
    /// Result `number` of the entry's return (directly or through a
    /// tensor.cast to its declared type).
    Result,
    /// `buffer`, returned by nothing: the kernels' own (scratch).
    Buffer,
    /// A tensor whose buffer cannot be traced.
    Unknown,
  } kind = Unknown;
  unsigned number = 0;
  mlir::Value buffer;
};

/// Follows `operand` back through memref.collapse_shape views and
/// to_buffer(to_tensor(buffer)) round trips (a buffer one kernel writes and
/// a later one reads) to where it comes from.
LaunchOperandSource traceLaunchOperand(mlir::Value operand);

} // namespace gsa

#endif // GSA_CONVERSION_LAUNCHOPERANDS_H
