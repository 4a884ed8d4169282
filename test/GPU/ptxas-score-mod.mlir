// REQUIRES: ptxas, libdevice
// RUN: gsa-compile %s -o %t.ptx
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s

// fp16, output gate only, GQA group of 8, d_k = 64, and a score_mod whose
// tanh comes from libdevice (linked into the module): assembles for sm_90a
// with no unresolved call and no spills.
// CHECK: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// CHECK: 0 bytes spill stores, 0 bytes spill loads
// CHECK-NOT: error
func.func @attend(%q: tensor<2x17x8x64xf16>, %k: tensor<2x17x1x64xf16>,
                  %v: tensor<2x17x1x64xf16>, %idx: tensor<2x17x4xi32>,
                  %cnt: tensor<2x17xi32>, %go: tensor<2x17x8x64xf16>)
    -> (tensor<2x17x8x64xf16>, tensor<2x17x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt) output_gate(%go)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %cap = arith.constant 20.0 : f32
        %x = arith.divf %s, %cap : f32
        %th = math.tanh %x : f32
        %y = arith.mulf %th, %cap : f32
        gsa.yield %y : f32
      } : (tensor<2x17x8x64xf16>, tensor<2x17x1x64xf16>, tensor<2x17x1x64xf16>,
           tensor<2x17x4xi32>, tensor<2x17xi32>, tensor<2x17x8x64xf16>)
        -> (tensor<2x17x8x64xf16>, tensor<2x17x8xf32>)
  return %o, %lse : tensor<2x17x8x64xf16>, tensor<2x17x8xf32>
}
