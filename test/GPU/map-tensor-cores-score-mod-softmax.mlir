// RUN: gsa-opt %s --gsa-tile="split-share=0" --gsa-stage-shared --gsa-map-tensor-cores=wgmma=1 --canonicalize | FileCheck %s

// With a score_mod the scores cannot leave their scale to the softmax (the
// mod takes the scaled score): gsa-map-tensor-cores multiplies by the scale
// (1/8 at d_k 64) before the mod, and the online softmax's fma takes log2e
// alone. (Without a score_mod: map-tensor-cores.mlir.)
// CHECK-LABEL: func.func @attend
// CHECK-DAG: %[[LOG2E:[^ ]+]] = arith.constant 1.44269502 : f32
// CHECK-DAG: %[[THREE:[^ ]+]] = arith.constant 3.000000e+00 : f32
// CHECK-DAG: %[[SCALE:[^ ]+]] = arith.constant 1.250000e-01 : f32
// CHECK-DAG: %[[NEGINF:[^ ]+]] = arith.constant 0xFF800000 : f32
// CHECK: %[[SCALED:[^ ]+]] = arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK-NEXT: %[[MODDED:[^ ]+]] = arith.addf %[[SCALED]], %[[THREE]] : f32
// CHECK: %[[S0:[^ ]+]] = arith.select %{{.*}}, %[[MODDED]], %[[NEGINF]] : f32
// The row maximum over the quad is not scaled again (the next op takes it
// as it is); each probability is fma(x, log2e, -m log2e) and one exp2.
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
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %c = arith.constant 3.0 : f32
        %r = arith.addf %s, %c : f32
        gsa.yield %r : f32
      }
      : (tensor<1x64x8x64xbf16>, tensor<1x64x2x64xbf16>, tensor<1x64x2x64xbf16>,
         tensor<1x64x16xi32>, tensor<1x64xi32>) -> (tensor<1x64x8x64xbf16>, tensor<1x64x8xf32>)
  return %o, %lse : tensor<1x64x8x64xbf16>, tensor<1x64x8xf32>
}
