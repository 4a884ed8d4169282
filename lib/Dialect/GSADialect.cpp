//===- GSADialect.cpp - the gsa dialect ------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace gsa;

#include "gsa/Dialect/GSADialect.cpp.inc"
#include "gsa/Dialect/GSAEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "gsa/Dialect/GSAAttrs.cpp.inc"

void GSADialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "gsa/Dialect/GSAAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "gsa/Dialect/GSAOps.cpp.inc"
      >();
}

Type gsa::getComputeType(MLIRContext *ctx) { return Float32Type::get(ctx); }
