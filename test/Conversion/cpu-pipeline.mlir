// RUN: gsa-opt %gsa_src/examples/gsa_core.mlir --gsa-cpu-pipeline | FileCheck %s
// RUN: gsa-opt %s --gsa-cpu-pipeline | FileCheck %s --check-prefix=CIFACE

// The whole CPU pipeline ends in the LLVM dialect: no gsa, scf, memref,
// arith or bufferization op is left, buffers come from malloc, and the
// temporaries (scores, statistics, accumulators) are freed.
// CHECK: llvm.func @free(!llvm.ptr)
// CHECK: llvm.func @malloc(i64) -> !llvm.ptr
// CHECK-LABEL: llvm.func @gsa_core(
// CHECK: llvm.call @malloc
// CHECK: llvm.intr.exp
// CHECK: llvm.intr.floor
// CHECK: llvm.intr.log
// CHECK: llvm.call @free
// CHECK-NOT: gsa.
// CHECK-NOT: scf.
// CHECK-NOT: memref.
// CHECK-NOT: bufferization.
// CHECK-NOT: arith.

// With llvm.emit_c_interface (what the runtime sets) the C wrapper that
// takes descriptor pointers is emitted too.
// CIFACE-LABEL: llvm.func @small(
// CIFACE-LABEL: llvm.func @_mlir_ciface_small(
// CIFACE-SAME: %arg0: !llvm.ptr, %arg1: !llvm.ptr, %arg2: !llvm.ptr
func.func @small(%qi: tensor<1x4x1x8xf32>, %ki: tensor<1x4x8xf32>) -> tensor<1x4x2xi32>
    attributes {llvm.emit_c_interface} {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x4x1x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 2]
      : (tensor<1x4x4xf32>) -> (tensor<1x4x2xi32>, tensor<1x4xi32>)
  return %idx : tensor<1x4x2xi32>
}
