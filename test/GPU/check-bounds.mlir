// RUN: gsa-opt %s --gsa-check-bounds | FileCheck %s
// RUN: gsa-opt %s | FileCheck %s --check-prefix=OFF

// gsa-check-bounds: every memref / vector access of a kernel first checks
// its indices against its memref's extents (unsigned: a negative index is
// outside too), and where one is outside prints the kernel, the access and
// its location, the index and the extent, then traps. A vector access
// needs its whole vector inside the last dimension; a dynamic extent comes
// from memref.dim; shared memory is checked like global memory; functions
// that are not kernels are left alone.

// CHECK-LABEL: gpu.func @kern
// CHECK-SAME: (%[[A:[^:]+]]: memref<100xf32>, %[[B:[^:]+]]: memref<?x8xbf16>, %[[I:[^:]+]]: index, %[[J:[^:]+]]: index)
// The load: 0 <= i < 100.
// CHECK: %[[C100:.*]] = arith.constant 100 : index
// CHECK-NEXT: %[[IN:.*]] = arith.cmpi ult, %[[I]], %[[C100]] : index
// CHECK-NEXT: %[[TRUE:.*]] = arith.constant true
// CHECK-NEXT: %[[OUT:.*]] = arith.xori %[[IN]], %[[TRUE]] : i1
// CHECK-NEXT: scf.if %[[OUT]] {
// CHECK: %[[IDX:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK-NEXT: %[[EXT:.*]] = arith.index_cast %[[C100]] : index to i64
// CHECK-NEXT: gpu.printf "gsa-check-bounds: kernel kern, memref.load at {{.*}}check-bounds.mlir:[[@LINE+46]]:10: index %lld (+ 0 elements) of dimension 0 outside [0, %lld) (block %u, thread %u)\0A", %[[IDX]], %[[EXT]], %{{.*}}, %{{.*}} : i64, i64, i32, i32
// CHECK-NEXT: llvm.intr.trap
// CHECK-NEXT: }
// CHECK-NEXT: memref.load %[[A]][%[[I]]] : memref<100xf32>
// The store: its own check of j.
// CHECK: arith.cmpi ult, %[[J]], %{{.*}} : index
// CHECK: gpu.printf "gsa-check-bounds: kernel kern, memref.store at
// CHECK: memref.store %{{.*}}, %[[A]][%[[J]]] : memref<100xf32>
// The vector load: i < dim 0 (dynamic), then j and j + 1 < 8.
// CHECK: %[[DIM:.*]] = memref.dim %[[B]], %{{.*}} : memref<?x8xbf16>
// CHECK-NEXT: arith.cmpi ult, %[[I]], %[[DIM]] : index
// CHECK: %[[C8:.*]] = arith.constant 8 : index
// CHECK-NEXT: %[[FIRST:.*]] = arith.cmpi ult, %[[J]], %[[C8]] : index
// CHECK-NEXT: %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[LAST:.*]] = arith.addi %[[J]], %[[C1]] : index
// CHECK-NEXT: %[[LASTIN:.*]] = arith.cmpi ult, %[[LAST]], %[[C8]] : index
// CHECK-NEXT: arith.andi %[[FIRST]], %[[LASTIN]] : i1
// CHECK: gpu.printf "gsa-check-bounds: kernel kern, vector.load at {{.*}}: index %lld (+ 1 elements) of dimension 1 outside
// CHECK: vector.load %[[B]][%[[I]], %[[J]]]
// A 3 x 4 vector spans both dimensions: j + 2 < dim 0, i + 3 < 8.
// CHECK: %[[DIM2:.*]] = memref.dim %[[B]], %{{.*}} : memref<?x8xbf16>
// CHECK-NEXT: %[[F0:.*]] = arith.cmpi ult, %[[J]], %[[DIM2]] : index
// CHECK-NEXT: %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT: %[[L0:.*]] = arith.addi %[[J]], %[[C2]] : index
// CHECK: gpu.printf "gsa-check-bounds: kernel kern, vector.load at {{.*}}: index %lld (+ 2 elements) of dimension 0 outside
// CHECK: %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT: arith.addi %[[I]], %[[C3]] : index
// CHECK: gpu.printf "gsa-check-bounds: kernel kern, vector.load at {{.*}}: index %lld (+ 3 elements) of dimension 1 outside
// CHECK: vector.load %[[B]][%[[J]], %[[I]]] : memref<?x8xbf16>, vector<3x4xbf16>
// The atomic on shared memory.
// CHECK: arith.constant 32 : index
// CHECK: gpu.printf "gsa-check-bounds: kernel kern, memref.atomic_rmw at
// CHECK: memref.atomic_rmw addi
// CHECK: gpu.return
// The helper (not a kernel): unchecked.
// CHECK-LABEL: gpu.func @helper
// CHECK-NOT: gpu.printf
// CHECK: gpu.return

// Without the pass: no check anywhere.
// OFF-NOT: gsa-check-bounds
// OFF-NOT: llvm.intr.trap

gpu.module @k {
  gpu.func @kern(%a: memref<100xf32>, %b: memref<?x8xbf16>, %i: index, %j: index)
      workgroup(%s: memref<32xi32, #gpu.address_space<workgroup>>) kernel {
    %x = memref.load %a[%i] : memref<100xf32>
    memref.store %x, %a[%j] : memref<100xf32>
    %v = vector.load %b[%i, %j] : memref<?x8xbf16>, vector<2xbf16>
    %w = vector.load %b[%j, %i] : memref<?x8xbf16>, vector<3x4xbf16>
    %one = arith.constant 1 : i32
    %old = memref.atomic_rmw addi %one, %s[%j] : (i32, memref<32xi32, #gpu.address_space<workgroup>>) -> i32
    gpu.return
  }
  gpu.func @helper(%a: memref<100xf32>, %i: index) -> f32 {
    %x = memref.load %a[%i] : memref<100xf32>
    gpu.return %x : f32
  }
}
