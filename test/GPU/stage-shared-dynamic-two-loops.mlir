// RUN: gsa-opt %s --gsa-stage-shared="stages=3 dynamic-shared=1" --canonicalize | FileCheck %s

// Two staged loops in one launch, both with rings beyond the 48 KiB of
// static shared memory: 48-key chunks (3 stages x 2 rings x 24 KiB = 72
// KiB) and then 32-key chunks (48 KiB). Each loop's rings are views from
// offset 0 of the launch's dynamic shared memory (the loops run one after
// the other, each draining its copies); the launch takes the larger size.

// CHECK-LABEL: func.func @two_loops
// CHECK: gpu.launch {{.*}} dynamic_shared_memory_size %c73728_i32
// CHECK-DAG: memref.view %{{.*}}[%c36864][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x48x128xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.view %{{.*}}[%c24576][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x32x128xbf16, #gpu.address_space<workgroup>>

func.func @two_loops(%q: memref<1x64x8x128xbf16>, %k: memref<1x64x2x128xbf16>,
                     %v: memref<1x64x2x128xbf16>, %keys: memref<4096xi32>,
                     %masks: memref<4096xi32>, %sizes: memref<4xi32>,
                     %out: memref<1x64x8x128xbf16>, %lse: memref<1x64x8xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c2, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %tile = gpu.block_id x
    %kvh = gpu.block_id y
    %b = gpu.block_id z
    %c0 = arith.constant 0 : index
    %c1i = arith.constant 1 : index
    %c16 = arith.constant 16 : index
    %c32 = arith.constant 32 : index
    %c1024 = arith.constant 1024 : index
    %t0 = arith.muli %tile, %c16 : index
    %qt = gsa.tile.load_queries %q[%b, %t0, %kvh] group 4 : memref<1x64x8x128xbf16> -> tensor<64x128xbf16>
    %base = arith.muli %tile, %c1024 : index
    %size32 = memref.load %sizes[%tile] : memref<4xi32>
    %size = arith.index_cast %size32 : i32 to index
    %n = arith.ceildivui %size, %c32 : index
    %m0 = arith.constant dense<0xFF800000> : tensor<64xf32>
    %l0 = arith.constant dense<0.0> : tensor<64xf32>
    %acc0 = arith.constant dense<0.0> : tensor<64x128xf32>
    %c48 = arith.constant 48 : index
    %n48 = arith.ceildivui %size, %c48 : index
    %r48:3 = scf.for %c = %c0 to %n48 step %c1i iter_args(%m = %m0, %l = %l0, %acc = %acc0)
        -> (tensor<64xf32>, tensor<64xf32>, tensor<64x128xf32>) {
      %start = arith.muli %c, %c48 : index
      %off = arith.addi %base, %start : index
      %count = arith.subi %size, %start : index
      %kt = gsa.tile.gather_rows %k[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<48x128xbf16>
      %vt = gsa.tile.gather_rows %v[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<48x128xbf16>
      %mt = gsa.tile.gather_words %masks[%off] count %count : memref<4096xi32> -> tensor<48xi32>
      %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<64x128xbf16>, tensor<48x128xbf16> -> tensor<64x48xf32>
      %sc = gsa.tile.scores %s members(%mt) rows[%b, %t0, %kvh] scale(0.125) group 4 : tensor<64x48xf32>, tensor<48xi32> -> tensor<64x48xf32>
      %p, %m2, %l2, %alpha = gsa.tile.online_softmax %sc, %m, %l : tensor<64x48xf32>, tensor<64xf32> -> tensor<64x48xbf16>
      %ra = gsa.tile.rescale %acc by %alpha : tensor<64x128xf32>, tensor<64xf32>
      %pv = gsa.tile.dot %p, %vt acc(%ra : tensor<64x128xf32>) : tensor<64x48xbf16>, tensor<48x128xbf16> -> tensor<64x128xf32>
      scf.yield %m2, %l2, %pv : tensor<64xf32>, tensor<64xf32>, tensor<64x128xf32>
    }
    gsa.tile.store_output %r48#2, %r48#0, %r48#1 into %out, %lse[%b, %t0, %kvh] group 4 : tensor<64x128xf32>, tensor<64xf32>, memref<1x64x8x128xbf16>, memref<1x64x8xf32>
    %r:3 = scf.for %c = %c0 to %n step %c1i iter_args(%m = %m0, %l = %l0, %acc = %acc0)
        -> (tensor<64xf32>, tensor<64xf32>, tensor<64x128xf32>) {
      %start = arith.muli %c, %c32 : index
      %off = arith.addi %base, %start : index
      %count = arith.subi %size, %start : index
      %kt = gsa.tile.gather_rows %k[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<32x128xbf16>
      %vt = gsa.tile.gather_rows %v[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<32x128xbf16>
      %mt = gsa.tile.gather_words %masks[%off] count %count : memref<4096xi32> -> tensor<32xi32>
      %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<64x128xbf16>, tensor<32x128xbf16> -> tensor<64x32xf32>
      %sc = gsa.tile.scores %s members(%mt) rows[%b, %t0, %kvh] scale(0.125) group 4 : tensor<64x32xf32>, tensor<32xi32> -> tensor<64x32xf32>
      %p, %m2, %l2, %alpha = gsa.tile.online_softmax %sc, %m, %l : tensor<64x32xf32>, tensor<64xf32> -> tensor<64x32xbf16>
      %ra = gsa.tile.rescale %acc by %alpha : tensor<64x128xf32>, tensor<64xf32>
      %pv = gsa.tile.dot %p, %vt acc(%ra : tensor<64x128xf32>) : tensor<64x32xbf16>, tensor<32x128xbf16> -> tensor<64x128xf32>
      scf.yield %m2, %l2, %pv : tensor<64xf32>, tensor<64xf32>, tensor<64x128xf32>
    }
    gsa.tile.store_output %r#2, %r#0, %r#1 into %out, %lse[%b, %t0, %kvh] group 4 : tensor<64x128xf32>, tensor<64xf32>, memref<1x64x8x128xbf16>, memref<1x64x8xf32>
    gpu.terminator
  } {gsa.kernel = "two"}
  return
}
