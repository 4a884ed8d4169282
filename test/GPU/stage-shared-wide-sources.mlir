// RUN: gsa-opt %s --gsa-stage-shared --canonicalize | FileCheck %s

// gsa-stage-shared with K and V of 2^31 bytes each (8M keys x 2 KV heads x
// 64 x bf16): a byte offset into them does not fit 32 bits, so the copies
// keep index (64-bit) arithmetic: the key's element offset
// ((b L + key) NKV + kvHead) d_k + piece x 8, in bytes from the base. (Below
// 2^31 bytes the offsets are i32: stage-shared.mlir.)
// CHECK-LABEL: func.func @tile_loop
// CHECK: %[[POS:[^ ,)]+]] = memref.load %arg3[
// CHECK-NEXT: %[[KEY32:[^ ]+]] = arith.select %{{.*}}, %[[POS]], %c0_i32 : i32
// CHECK: %[[KEY:[^ ]+]] = arith.index_cast %[[KEY32]] : i32 to index
// CHECK: arith.addi %{{.*}}, %[[KEY]] : index
// CHECK: %[[KBASE:[^ ]+]] = memref.extract_aligned_pointer_as_index %arg1
// CHECK-NEXT: %[[KBYTES:[^ ]+]] = arith.muli %{{.*}}, %c2 : index
// CHECK-NEXT: %[[KADDR:[^ ]+]] = arith.addi %[[KBASE]], %[[KBYTES]] : index
// CHECK-NEXT: arith.index_castui %[[KADDR]] : index to i64
// CHECK-NOT: arith.extui %{{.*}} : i32 to i64
// CHECK: gsa.tile.store_output
func.func @tile_loop(%q: memref<1x64x8x64xbf16>, %k: memref<1x8388608x2x64xbf16>,
                     %v: memref<1x8388608x2x64xbf16>, %keys: memref<4096xi32>,
                     %masks: memref<4096xi32>, %sizes: memref<4xi32>,
                     %out: memref<1x64x8x64xbf16>, %lse: memref<1x64x8xf32>) {
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
    %qt = gsa.tile.load_queries %q[%b, %t0, %kvh] group 4 : memref<1x64x8x64xbf16> -> tensor<64x64xbf16>
    %base = arith.muli %tile, %c1024 : index
    %size32 = memref.load %sizes[%tile] : memref<4xi32>
    %size = arith.index_cast %size32 : i32 to index
    %n = arith.ceildivui %size, %c32 : index
    %m0 = arith.constant dense<0xFF800000> : tensor<64xf32>
    %l0 = arith.constant dense<0.0> : tensor<64xf32>
    %acc0 = arith.constant dense<0.0> : tensor<64x64xf32>
    %r:3 = scf.for %c = %c0 to %n step %c1i iter_args(%m = %m0, %l = %l0, %acc = %acc0)
        -> (tensor<64xf32>, tensor<64xf32>, tensor<64x64xf32>) {
      %start = arith.muli %c, %c32 : index
      %off = arith.addi %base, %start : index
      %count = arith.subi %size, %start : index
      %kt = gsa.tile.gather_rows %k[%b, %kvh] rows %keys[%off] count %count : memref<1x8388608x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
      %vt = gsa.tile.gather_rows %v[%b, %kvh] rows %keys[%off] count %count : memref<1x8388608x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
      %mt = gsa.tile.gather_words %masks[%off] count %count : memref<4096xi32> -> tensor<32xi32>
      %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<64x64xbf16>, tensor<32x64xbf16> -> tensor<64x32xf32>
      %sc = gsa.tile.scores %s members(%mt) rows[%b, %t0, %kvh] scale(0.125) group 4 : tensor<64x32xf32>, tensor<32xi32> -> tensor<64x32xf32>
      %p, %m2, %l2, %alpha = gsa.tile.online_softmax %sc, %m, %l : tensor<64x32xf32>, tensor<64xf32> -> tensor<64x32xbf16>
      %ra = gsa.tile.rescale %acc by %alpha : tensor<64x64xf32>, tensor<64xf32>
      %pv = gsa.tile.dot %p, %vt acc(%ra : tensor<64x64xf32>) : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
      scf.yield %m2, %l2, %pv : tensor<64xf32>, tensor<64xf32>, tensor<64x64xf32>
    }
    gsa.tile.store_output %r#2, %r#0, %r#1 into %out, %lse[%b, %t0, %kvh] group 4 : tensor<64x64xf32>, tensor<64xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
    gpu.terminator
  }
  return
}
