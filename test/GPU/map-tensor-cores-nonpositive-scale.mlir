// RUN: gsa-opt %s --gsa-tile="split-share=0" --gsa-stage-shared --gsa-map-tensor-cores=wgmma=1 --canonicalize | FileCheck %s

// Without a score_mod the softmax folds a positive scale into the fma in
// front of each exp2 (map-tensor-cores.mlir). A scale <= 0 would turn the
// scaled maximum into the unscaled minimum, so gsa-map-tensor-cores keeps
// the multiply on every score (before the membership select) and the fma
// takes log2e alone; the row maximum is then not scaled again.
// CHECK-LABEL: func.func @attend
// CHECK-DAG: %[[LOG2E:[^ ]+]] = arith.constant 1.44269502 : f32
// CHECK-DAG: %[[SCALE:[^ ]+]] = arith.constant -1.250000e-01 : f32
// CHECK-DAG: %[[NEGINF:[^ ]+]] = arith.constant 0xFF800000 : f32
// CHECK: %[[SCALED:[^ ]+]] = arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK: %[[S0:[^ ]+]] = arith.select %{{.*}}, %[[SCALED]], %[[NEGINF]] : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK-NEXT: %[[MX:[^ ]+]] = arith.maximumf
// CHECK-NEXT: %[[MNEW:[^ ]+]] = arith.maximumf %{{.*}}, %[[MX]] : f32
// CHECK-NEXT: arith.cmpf oeq, %[[MNEW]], %[[NEGINF]] : f32
// CHECK: %[[ARG:[^ ]+]] = llvm.intr.fma(%[[S0]], %[[LOG2E]], %{{.*}}) : (f32, f32, f32) -> f32
// CHECK-NEXT: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;" ro(%[[ARG]] : f32) -> f32
func.func @attend(%q: tensor<1x64x8x64xbf16>, %k: tensor<1x64x2x64xbf16>,
                  %v: tensor<1x64x2x64xbf16>, %idx: tensor<1x64x16xi32>,
                  %cnt: tensor<1x64xi32>)
    -> (tensor<1x64x8x64xbf16>, tensor<1x64x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt) scale(-0.125)
      : (tensor<1x64x8x64xbf16>, tensor<1x64x2x64xbf16>, tensor<1x64x2x64xbf16>,
         tensor<1x64x16xi32>, tensor<1x64xi32>) -> (tensor<1x64x8x64xbf16>, tensor<1x64x8xf32>)
  return %o, %lse : tensor<1x64x8x64xbf16>, tensor<1x64x8xf32>
}
