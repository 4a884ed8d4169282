//===- GSADialect.h - the gsa dialect, its attributes and ops ---*- C++ -*-===//

#ifndef GSA_DIALECT_GSADIALECT_H
#define GSA_DIALECT_GSADIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "gsa/Dialect/GSADialect.h.inc"
#include "gsa/Dialect/GSAEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "gsa/Dialect/GSAAttrs.h.inc"

#define GET_OP_CLASSES
#include "gsa/Dialect/GSAOps.h.inc"

namespace gsa {

/// Defaults fixed by SPEC section 2.
inline constexpr int64_t kDefaultKBase = 2048;
inline constexpr int64_t kDefaultKMin = 256;
inline constexpr int64_t kDefaultKMax = 4096;
inline constexpr float kDefaultMomentum = 0.99f;

/// The scalar type in which every region computes and every accumulation
/// happens (SPEC section 3: accumulate in fp32).
mlir::Type getComputeType(mlir::MLIRContext *ctx);

/// Whether a policy reads the reference variance V_bar.
inline bool policyNeedsReferenceVariance(SelectionPolicy policy) {
  return policy != SelectionPolicy::fixed;
}

} // namespace gsa

#endif // GSA_DIALECT_GSADIALECT_H
