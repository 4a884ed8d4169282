// RUN: gsa-opt %s --convert-gsa-to-gpu -verify-diagnostics
// RUN: gsa-opt %s --gsa-lower-selection --convert-gsa-to-gpu | FileCheck %s

// convert-gsa-to-gpu lowers attention only: the selection's ops must have
// gone through gsa-lower-selection first, which the pipeline runs before it.
// After both, no gsa op is left and every sigmoid is one tanh.approx.
// CHECK-LABEL: func.func @select(
// CHECK-NOT: gsa.
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats
// CHECK: gpu.func @select_1_select_stats(
// CHECK-NOT: gsa.sigmoid
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
func.func @select(%qi: tensor<1x40x4x32xbf16>, %ki: tensor<1x40x32xbf16>)
    -> (tensor<1x40x8xi32>, tensor<1x40xi32>) {
  // expected-error @+1 {{must be lowered by --gsa-lower-selection before --convert-gsa-to-gpu}}
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x40x4x32xbf16>, tensor<1x40x32xbf16>) -> tensor<1x40x40xf32>
  // expected-error @+1 {{must be lowered by --gsa-lower-selection before --convert-gsa-to-gpu}}
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [2, 8]
      : (tensor<1x40x40xf32>) -> (tensor<1x40x8xi32>, tensor<1x40xi32>)
  return %idx, %cnt : tensor<1x40x8xi32>, tensor<1x40xi32>
}
