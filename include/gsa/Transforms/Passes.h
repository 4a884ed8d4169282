//===- Passes.h - passes of the gsa compiler --------------------*- C++ -*-===//

#ifndef GSA_TRANSFORMS_PASSES_H
#define GSA_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace gsa {

#define GEN_PASS_DECL
#include "gsa/Dialect/GSAPasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "gsa/Dialect/GSAPasses.h.inc"

} // namespace gsa

#endif // GSA_TRANSFORMS_PASSES_H
