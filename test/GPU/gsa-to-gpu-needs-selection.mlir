// RUN: gsa-opt %s --convert-gsa-to-gpu -split-input-file -verify-diagnostics
// RUN: gsa-opt %s --gsa-lower-selection --convert-gsa-to-gpu -split-input-file | FileCheck %s --implicit-check-not=gsa.sigmoid

// convert-gsa-to-gpu lowers attention only: the selection's ops must have
// gone through gsa-lower-selection first, which the pipeline runs before it.
// After both, no gsa op is left and every sigmoid, in every kernel, is one
// tanh.approx.
// CHECK-LABEL: func.func @select(
// CHECK-NOT: gsa.
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats
// CHECK: gpu.func @select_1_select_stats(
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
// CHECK: gpu.func @select_1_select_topk(
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

// -----

// Kernel names count the attention ops too (the selection's is op 2 here),
// whichever pass lowers them.
// CHECK-LABEL: func.func @mixed(
// CHECK: gpu.launch_func @gsa_kernels::@mixed_sparse_attention_0
// CHECK: gpu.launch_func @gsa_kernels::@mixed_2_select_stats
// CHECK-DAG: gpu.func @mixed_sparse_attention_0(
// CHECK-DAG: gpu.func @mixed_2_select_stats(
func.func @mixed(%q: tensor<1x40x4x64xbf16>, %k: tensor<1x40x1x64xbf16>,
                 %v: tensor<1x40x1x64xbf16>, %i0: tensor<1x40x8xi32>,
                 %c0: tensor<1x40xi32>, %qi: tensor<1x40x4x32xbf16>,
                 %ki: tensor<1x40x32xbf16>)
    -> (tensor<1x40x4x64xbf16>, tensor<1x40x8xi32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i0, %c0)
      : (tensor<1x40x4x64xbf16>, tensor<1x40x1x64xbf16>, tensor<1x40x1x64xbf16>,
         tensor<1x40x8xi32>, tensor<1x40xi32>) -> (tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>)
  // expected-error @+1 {{must be lowered by --gsa-lower-selection before --convert-gsa-to-gpu}}
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        gsa.yield %x : f32
      } : (tensor<1x40x4x32xbf16>, tensor<1x40x32xbf16>) -> tensor<1x40x40xf32>
  // expected-error @+1 {{must be lowered by --gsa-lower-selection before --convert-gsa-to-gpu}}
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [2, 8]
      : (tensor<1x40x40xf32>) -> (tensor<1x40x8xi32>, tensor<1x40xi32>)
  return %o, %idx : tensor<1x40x4x64xbf16>, tensor<1x40x8xi32>
}

// -----

// An indexer whose scores the program returns: its own kernel, writing them.
// CHECK-LABEL: func.func @scores(
// CHECK: gpu.launch_func @gsa_kernels::@scores_0_indexer
// CHECK: gpu.func @scores_0_indexer(
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
func.func @scores(%qi: tensor<1x40x4x32xbf16>, %ki: tensor<1x40x32xbf16>)
    -> tensor<1x40x40xf32> {
  // expected-error @+1 {{must be lowered by --gsa-lower-selection before --convert-gsa-to-gpu}}
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x40x4x32xbf16>, tensor<1x40x32xbf16>) -> tensor<1x40x40xf32>
  return %I : tensor<1x40x40xf32>
}
