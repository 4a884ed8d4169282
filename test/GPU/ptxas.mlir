// REQUIRES: ptxas
// RUN: gsa-compile %s -o %t.ptx
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s

// The emitted PTX assembles for sm_90a without spills.
// CHECK: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// CHECK: 0 bytes spill stores, 0 bytes spill loads
func.func @attend(%q: tensor<1x33x8x128xbf16>, %k: tensor<1x33x1x128xbf16>,
                  %v: tensor<1x33x1x128xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>, %gv: tensor<1x33x1x128xbf16>,
                  %go: tensor<1x33x8x128xbf16>)
    -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      : (tensor<1x33x8x128xbf16>, tensor<1x33x1x128xbf16>, tensor<1x33x1x128xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>, tensor<1x33x1x128xbf16>,
         tensor<1x33x8x128xbf16>) -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>
}
