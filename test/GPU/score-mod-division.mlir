// RUN: gsa-opt %s --gsa-gpu-pipeline | FileCheck %s
// RUN: gsa-opt %s --gsa-gpu-pipeline="attention-wgmma=0 attention-key-chunk=64" | FileCheck %s --check-prefix=SYNC

// A score_mod that divides (a tanh soft cap with a distance bias) on wgmma
// tiles, 64-key chunks. IEEE division (div.rn.f32) has a slow path that
// ptxas (CUDA 13.0) makes a subroutine call whose scratch registers are
// ones the kernel's wgmma also uses; with it the outputs were wrong
// (bench/device/score_mod_check.py, docs/gpu-path.md). gsa-map-tensor-cores
// gives the kernels it maps onto wgmma div.full.f32 instead; mma.sync
// kernels keep div.rn.f32.
// GQA group 4 (16 queries x 4 heads = one warpgroup), d_k 64.
// CHECK: gpu.binary @gsa_kernels
// CHECK-SAME: wgmma.mma_async.sync.aligned.m64n64k16
// CHECK-NOT: div.rn.f32
// CHECK-SAME: div.full.f32
// CHECK-NOT: div.rn.f32
// SYNC: gpu.binary @gsa_kernels
// SYNC-NOT: wgmma
// SYNC-SAME: div.rn.f32
func.func @attend(%q: tensor<2x40x8x64xbf16>, %k: tensor<2x40x2x64xbf16>,
                  %v: tensor<2x40x2x64xbf16>, %idx: tensor<2x40x16xi32>,
                  %cnt: tensor<2x40xi32>)
    -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %d = arith.subi %t, %kv : index
        %di = arith.index_cast %d : index to i32
        %df = arith.sitofp %di : i32 to f32
        %c = arith.constant 0.02 : f32
        %bias = arith.mulf %df, %c : f32
        %cap = arith.constant 3.0 : f32
        %x = arith.divf %s, %cap : f32
        %th = math.tanh %x : f32
        %capped = arith.mulf %th, %cap : f32
        %y = arith.subf %capped, %bias : f32
        gsa.yield %y : f32
      } : (tensor<2x40x8x64xbf16>, tensor<2x40x2x64xbf16>, tensor<2x40x2x64xbf16>,
           tensor<2x40x16xi32>, tensor<2x40xi32>)
        -> (tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>)
  return %o, %lse : tensor<2x40x8x64xbf16>, tensor<2x40x8xf32>
}

