// RUN: gsa-opt %s --split-input-file --gsa-gpu-pipeline | FileCheck %s

// Integer division by a value known only at run time (`(t - kv) // (h + 1)`
// from the DSL) is a subroutine call in ptxas's code, as div.rn.f32's slow
// path is, and on wgmma tiles it gave wrong outputs (score_mod_check.py's
// "index division", d_k 64, 2026-12-04; right on mma.sync). It has no
// call-free PTX form, so gsa-map-tensor-cores keeps such a launch on
// mma.sync. GQA group 4 (16 queries x 4 heads = one warpgroup), d_k 64:
// without the division these tiles run on wgmma (second case).
// CHECK-LABEL: gpu.binary @gsa_kernels
// CHECK-NOT: wgmma.mma_async
// CHECK-SAME: mma.sync.aligned.m16n8k16
// CHECK-NOT: wgmma.mma_async
// CHECK-SAME: div.s64
// CHECK-NOT: wgmma.mma_async
func.func @attend(%q: tensor<2x40x8x64xbf16>, %k: tensor<2x40x2x64xbf16>,
                  %v: tensor<2x40x2x64xbf16>, %idx: tensor<2x40x16xi32>,
                  %cnt: tensor<2x40xi32>)
    -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %d = arith.subi %t, %kv : index
        %one = arith.constant 1 : index
        %h1 = arith.addi %h, %one : index
        %bucket = arith.floordivsi %d, %h1 : index
        %bi = arith.index_cast %bucket : index to i32
        %bf = arith.sitofp %bi : i32 to f32
        %c = arith.constant 0.01 : f32
        %bias = arith.mulf %bf, %c : f32
        %y = arith.subf %s, %bias : f32
        gsa.yield %y : f32
      } : (tensor<2x40x8x64xbf16>, tensor<2x40x2x64xbf16>, tensor<2x40x2x64xbf16>,
           tensor<2x40x16xi32>, tensor<2x40xi32>)
        -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>)
  return %o, %lse : tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>
}

// -----

// A constant divisor compiles to shifts and multiplies: wgmma stays.
// CHECK-LABEL: gpu.binary @gsa_kernels
// CHECK-SAME: wgmma.mma_async.sync.aligned.m64n64k16
func.func @attend_by_constant(%q: tensor<2x40x8x64xbf16>, %k: tensor<2x40x2x64xbf16>,
                              %v: tensor<2x40x2x64xbf16>, %idx: tensor<2x40x16xi32>,
                              %cnt: tensor<2x40xi32>)
    -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %d = arith.subi %t, %kv : index
        %c64 = arith.constant 64 : index
        %bucket = arith.floordivsi %d, %c64 : index
        %bi = arith.index_cast %bucket : index to i32
        %bf = arith.sitofp %bi : i32 to f32
        %c = arith.constant 0.01 : f32
        %bias = arith.mulf %bf, %c : f32
        %y = arith.subf %s, %bias : f32
        gsa.yield %y : f32
      } : (tensor<2x40x8x64xbf16>, tensor<2x40x2x64xbf16>, tensor<2x40x2x64xbf16>,
           tensor<2x40x16xi32>, tensor<2x40xi32>)
        -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>)
  return %o, %lse : tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>
}
