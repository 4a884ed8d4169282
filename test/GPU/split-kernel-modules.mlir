// RUN: gsa-opt %s --split-input-file --gsa-split-kernel-modules | FileCheck %s
// RUN: gsa-opt %s --split-input-file --gsa-gpu-pipeline --mlir-print-ir-after=gsa-split-kernel-modules -o /dev/null 2>&1 | FileCheck %s --check-prefix=PIPELINE

// gsa-split-kernel-modules: each kernel of a module that holds only kernels
// moves into a module of its own, named after both, with the module's
// attributes and gsa.joins naming it; the launches follow.
// CHECK-NOT: gpu.module @gsa_kernels {
// CHECK: gpu.module @gsa_kernels__first attributes {gsa.joins = "gsa_kernels", gsa.tag = 7 : i64} {
// CHECK-NEXT: gpu.func @first(
// CHECK-NOT: gpu.func
// CHECK: gpu.module @gsa_kernels__second attributes {gsa.joins = "gsa_kernels", gsa.tag = 7 : i64} {
// CHECK-NEXT: gpu.func @second(
// A module with a function beside its kernels, and a module of one
// kernel, stay as they are.
// CHECK: gpu.module @with_helper {
// CHECK-NEXT: gpu.func @helper(
// CHECK: gpu.func @third(
// CHECK: gpu.func @fourth(
// CHECK: gpu.module @single {
// CHECK-NEXT: gpu.func @fifth(
// CHECK-LABEL: func.func @launches
// CHECK: gpu.launch_func  @gsa_kernels__first::@first
// CHECK: gpu.launch_func  @gsa_kernels__second::@second
// CHECK: gpu.launch_func  @gsa_kernels__first::@first
// CHECK: gpu.launch_func  @with_helper::@third
// CHECK: gpu.launch_func  @single::@fifth

// In the GPU pipeline (after convert-gsa-to-gpu): the selection's kernels,
// one module each.
// PIPELINE: gpu.launch_func  @gsa_kernels__select_1_select_sample::@select_1_select_sample
// PIPELINE: gpu.launch_func  @gsa_kernels__select_1_select_stats::@select_1_select_stats
// PIPELINE: gpu.module @gsa_kernels__select_1_select_sample attributes {gsa.joins = "gsa_kernels"}
// PIPELINE: gpu.module @gsa_kernels__select_1_select_stats attributes {gsa.joins = "gsa_kernels"}

module attributes {gpu.container_module} {
  gpu.module @gsa_kernels attributes {gsa.tag = 7} {
    gpu.func @first(%out: memref<4xi32>) kernel {
      gpu.return
    }
    gpu.func @second(%out: memref<4xi32>) kernel {
      gpu.return
    }
  }
  gpu.module @with_helper {
    gpu.func @helper(%x: i32) -> i32 {
      gpu.return %x : i32
    }
    gpu.func @third(%out: memref<4xi32>) kernel {
      gpu.return
    }
    gpu.func @fourth(%out: memref<4xi32>) kernel {
      gpu.return
    }
  }
  gpu.module @single {
    gpu.func @fifth(%out: memref<4xi32>) kernel {
      gpu.return
    }
  }
  func.func @launches(%out: memref<4xi32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @gsa_kernels::@first blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%out : memref<4xi32>)
    gpu.launch_func @gsa_kernels::@second blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%out : memref<4xi32>)
    gpu.launch_func @gsa_kernels::@first blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%out : memref<4xi32>)
    gpu.launch_func @with_helper::@third blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%out : memref<4xi32>)
    gpu.launch_func @single::@fifth blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%out : memref<4xi32>)
    return
  }
}

// -----

// The program the PIPELINE run lowers: an indexer fused into its selection.
func.func @select(%qi: tensor<1x64x4x64xbf16>, %ki: tensor<1x64x64xbf16>,
                  %wi: tensor<1x64x4xbf16>, %bi: tensor<4xbf16>)
    -> (tensor<1x64x16xi32>, tensor<1x64xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x64x4x64xbf16>, tensor<1x64x64xbf16>, tensor<1x64x4xbf16>, tensor<4xbf16>)
        -> tensor<1x64x64xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [4, 16]
      : (tensor<1x64x64xf32>) -> (tensor<1x64x16xi32>, tensor<1x64xi32>)
  return %idx, %cnt : tensor<1x64x16xi32>, tensor<1x64xi32>
}
