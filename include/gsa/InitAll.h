//===- InitAll.h - everything a gsa compiler instance registers -*- C++ -*-===//

#ifndef GSA_INITALL_H
#define GSA_INITALL_H

#include "mlir/IR/DialectRegistry.h"

namespace gsa {

/// Inserts the gsa dialect, the upstream dialects the pipelines go through,
/// and the external models (bufferization, conversion interfaces) they need.
void registerCompilerDialects(mlir::DialectRegistry &registry);

} // namespace gsa

#endif // GSA_INITALL_H
