//===- GSAAttrs.td - attributes of the gsa dialect ---------*- tablegen -*-===//

#ifndef GSA_ATTRS_TD
#define GSA_ATTRS_TD

include "GSADialect.td"
include "mlir/IR/EnumAttr.td"

// How the adaptive top-k turns a row's variance into a budget k_t
// (SPEC section 2). The paper's text and formula disagree; both are offered.
def GSA_PolicyInverse      : I32EnumAttrCase<"inverse", 0>;
def GSA_PolicyProportional : I32EnumAttrCase<"proportional", 1>;
def GSA_PolicyFixed        : I32EnumAttrCase<"fixed", 2>;
def GSA_PolicyCustom       : I32EnumAttrCase<"custom", 3>;

def GSA_SelectionPolicy : I32EnumAttr<"SelectionPolicy",
    "budget policy of the adaptive top-k selection",
    [GSA_PolicyInverse, GSA_PolicyProportional, GSA_PolicyFixed,
     GSA_PolicyCustom]> {
  let cppNamespace = "::gsa";
  let genSpecializedAttr = 0;
}

def GSA_SelectionPolicyAttr : EnumAttr<GSA_Dialect, GSA_SelectionPolicy,
                                       "policy"> {
  let assemblyFormat = "$value";
}

#endif // GSA_ATTRS_TD
