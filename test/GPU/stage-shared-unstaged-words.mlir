// RUN: gsa-opt %s --gsa-stage-shared=stages=3 --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-stage-shared=stages=3 --gsa-map-tensor-cores --canonicalize | FileCheck %s --check-prefix=MAPPED
// RUN: gsa-opt %s '--gsa-stage-shared=stages=3 async-positions=1' --canonicalize | FileCheck %s --check-prefix=NORING

// d_k 128, 32-key chunks, three stages: the K and v' rings take the whole
// 48 KiB (3 x 2 x 8 KiB), so the chunk's query masks are not staged: the
// words gather stays, and gsa-map-tensor-cores reads each key's mask from
// the list where the scores need it (0 past the chunk's count).

// With async-positions there is no room for the position ring either: the
// loop is staged as without it (the rows' positions loaded where the rows
// are issued, no 4-byte copies, no wait after the prologue).
// NORING: workgroup(%{{.*}} : memref<3x32x128xbf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<3x32x128xbf16, #gpu.address_space<workgroup>>) {
// NORING-NOT: cp.async.ca.shared.global
// NORING: nvvm.cp.async.commit.group
// NORING-NOT: nvvm.cp.async.wait.group
// NORING: scf.for
// NORING: memref.load %arg3[
// NORING-NOT: cp.async.ca.shared.global
// NORING: nvvm.cp.async.wait.group 2

// CHECK-LABEL: func.func @tile_loop
// CHECK: workgroup(%{{.*}} : memref<3x32x128xbf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<3x32x128xbf16, #gpu.address_space<workgroup>>)
// CHECK: nvvm.cp.async.wait.group 2
// CHECK: gsa.tile.shared_tile
// CHECK: %[[MT:.*]] = gsa.tile.gather_words %arg4[%{{.*}}] count %{{.*}} : memref<4096xi32> -> tensor<32xi32>
// CHECK: gsa.tile.scores %{{.*}} members(%[[MT]])

// MAPPED-LABEL: func.func @tile_loop
// MAPPED-NOT: gsa.tile
// MAPPED: scf.for
// MAPPED: arith.cmpi slt
// MAPPED: memref.load %arg4[%{{.*}}] : memref<4096xi32>
// MAPPED: arith.select %{{.*}}, %{{.*}}, %c0_i32 : i32
func.func @tile_loop(%q: memref<1x64x8x128xbf16>, %k: memref<1x64x2x128xbf16>,
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
  }
  return
}
