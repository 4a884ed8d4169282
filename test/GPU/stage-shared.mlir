// RUN: gsa-opt %s --gsa-stage-shared --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-stage-shared=stages=3 --canonicalize | FileCheck %s --check-prefix=THREE
// RUN: not gsa-opt %s --gsa-stage-shared=stages=5 2>&1 | FileCheck %s --check-prefix=BADSTAGES
// RUN: gsa-opt %s --gsa-stage-shared=async-positions=1 --canonicalize | FileCheck %s --check-prefix=ASYNC
// RUN: gsa-opt %s '--gsa-stage-shared=async-positions=1 stages=3' --canonicalize | FileCheck %s --check-prefix=ASYNC3
// RUN: gsa-opt %s --gsa-stage-shared=tma=1 --canonicalize | FileCheck %s --check-prefix=LISTED

// tma takes consecutive rows only: rows gathered by position stay 16-byte
// cp.async copies, with no tensor map and no barrier.
// LISTED-NOT: gsa.tensor_map
// LISTED: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// LISTED-NOT: mbarrier
// LISTED-NOT: cp.async.bulk.tensor

// gsa-stage-shared on a tile loop (as gsa-tile writes it; 64-column bf16
// rows = 8 pieces of 16 bytes, 32-row chunks, 128 threads). Each gather
// gets a ring of two slots in workgroup memory; the K and V gathers read
// the same rows, so they share the position loads. Prologue: chunk 0 into
// slot 0, one commit group. In the loop: chunk c + 1 into the other slot
// (when there is one), commit, wait until one group is left in flight
// (chunk c has landed), barrier; the body reads slot c % 2 through
// gsa.tile.shared_tile, and a barrier ends it.

// CHECK-LABEL: func.func @tile_loop
// CHECK: gpu.launch
// CHECK-SAME: workgroup(%[[KRING:[^ ,)]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>, %[[VRING:[^ ,)]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>, %[[MRING:[^ ,)]+]] : memref<2x32xi32, #gpu.address_space<workgroup>>)
// Prologue (2 x 128 threads = 32 rows x 8 pieces): position, swizzle, copies.
// Piece p of row j lands in 128-byte column block p / 8 (32 rows x 64
// elements = 2048 apart), row j (64 elements), slot (p % 8) ^ (j % 8).
// CHECK: %[[POS:[^ ,)]+]] = memref.load %arg3[
// CHECK-NEXT: %[[KEY:[^ ]+]] = arith.select %{{.*}}, %[[POS]], %c0_i32 : i32
// CHECK: %[[BLOCK:[^ ]+]] = arith.shrui %[[P:[^ ,]+]], %c3
// CHECK-NEXT: %[[INBLOCK:[^ ]+]] = arith.andi %[[P]], %c7
// CHECK-NEXT: %[[ROWMOD:[^ ]+]] = arith.andi %[[J:[^ ,]+]], %c7
// CHECK-NEXT: %[[SLOTP:[^ ]+]] = arith.xori %[[INBLOCK]], %[[ROWMOD]]
// CHECK-NEXT: %[[SLOTE:[^ ]+]] = arith.muli %[[SLOTP]], %c8
// CHECK-NEXT: %[[ROWE:[^ ]+]] = arith.muli %[[J]], %c64
// CHECK-NEXT: %[[INROW:[^ ]+]] = arith.addi %[[ROWE]], %[[SLOTE]]
// CHECK-NEXT: %[[BLOCKE:[^ ]+]] = arith.muli %[[BLOCK]], %c2048
// CHECK-NEXT: %[[SWZ:[^ ]+]] = arith.addi %[[BLOCKE]], %[[INROW]]
// The sources hold fewer than 2^31 bytes, so the copy's offsets are 32-bit
// bytes: the key (its i32 position, 0 past the count) times the row stride
// (2 KV heads x 64 x 2 bytes = 256) plus the rest; the slot's offset plus
// the swizzled piece's; each 64-bit source address one add.
// CHECK: %[[KEYBYTES:[^ ]+]] = arith.muli %[[KEY]], %c256_i32 : i32
// CHECK-NEXT: %[[SRC:[^ ]+]] = arith.addi %[[KEYBYTES]], %{{.*}} : i32
// CHECK-NEXT: %[[SWZB:[^ ]+]] = arith.muli %[[SWZ]], %c2 : index
// CHECK-NEXT: %[[DST:[^ ]+]] = arith.index_castui %[[SWZB]] : index to i32
// CHECK-NEXT: %[[KBASE:[^ ]+]] = memref.extract_aligned_pointer_as_index %[[KRING]]
// CHECK-NEXT: %[[KBASE32:[^ ]+]] = arith.index_castui %[[KBASE]] : index to i32
// CHECK-NEXT: %[[KSRC:[^ ]+]] = memref.extract_aligned_pointer_as_index %arg1
// CHECK-NEXT: %[[SRC64:[^ ]+]] = arith.extui %[[SRC]] : i32 to i64
// CHECK-NEXT: %[[KSRC64:[^ ]+]] = arith.index_castui %[[KSRC]] : index to i64
// CHECK-NEXT: %[[KADDR:[^ ]+]] = arith.addi %[[KSRC64]], %[[SRC64]] : i64
// CHECK-NEXT: %[[KDST:[^ ]+]] = arith.addi %[[KBASE32]], %[[DST]] : i32
// CHECK-NEXT: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;" ro(%[[KDST]], %[[KADDR]] : i32, i64)
// CHECK: memref.extract_aligned_pointer_as_index %[[VRING]]
// CHECK: memref.extract_aligned_pointer_as_index %arg2
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK-COUNT-2: nvvm.inline_ptx "cp.async.cg.shared.global
// The masks: plain loads and stores by the first 32 threads.
// CHECK: scf.if
// CHECK: memref.load %arg4
// CHECK: memref.store %{{.*}}, %[[MRING]]
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for %[[C:[^ ,)]+]] = %c0{{.*}} to %[[N:[^ ,)]+]] step %c1{{.*}} iter_args
// CHECK: %[[SLOT:[^ ,)]+]] = arith.remui %{{.*}}, %c2
// CHECK: %[[NEXT:[^ ,)]+]] = arith.addi %[[C]], %c1
// CHECK: arith.cmpi slt, %[[NEXT]], %[[N]]
// CHECK: scf.if
// In the loop the slot's byte offset (32 rows x 64 x 2 bytes each) joins
// the 32-bit destination.
// CHECK: arith.muli %{{.*}}, %c4096_i32 : i32
// CHECK-COUNT-4: nvvm.inline_ptx "cp.async.cg.shared.global
// CHECK: nvvm.cp.async.commit.group
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK-NEXT: gpu.barrier
// CHECK: %[[KT:[^ ,)]+]] = gsa.tile.shared_tile %[[KRING]][%[[SLOT]]] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
// CHECK: %[[VT:[^ ,)]+]] = gsa.tile.shared_tile %[[VRING]][%[[SLOT]]] swizzled
// CHECK: %[[MT:[^ ,)]+]] = gsa.tile.shared_tile %[[MRING]][%[[SLOT]]] : memref<2x32xi32, #gpu.address_space<workgroup>> -> tensor<32xi32>
// CHECK-NOT: gsa.tile.gather
// CHECK: gsa.tile.dot %{{.*}}, %[[KT]] transpose_rhs
// CHECK: gsa.tile.scores %{{.*}} members(%[[MT]])
// CHECK: gsa.tile.dot %{{.*}}, %[[VT]] acc(
// CHECK: gpu.barrier
// CHECK-NEXT: scf.yield
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: gsa.tile.store_output

// Three stages: chunks 0 and 1 ahead (the second only if it exists), chunk
// c + 2 into slot (c + 2) % 3, wait until two groups are left in flight.
// THREE: workgroup(%{{.*}} : memref<3x32x64xbf16, #gpu.address_space<workgroup>>
// THREE: nvvm.cp.async.commit.group
// THREE: arith.cmpi sgt, %[[N:[^ ,)]+]], %c1 : index
// THREE: scf.if
// THREE: nvvm.cp.async.commit.group
// THREE: scf.for %[[C:[^ ,)]+]] = %c0{{.*}} to %[[N]]
// THREE: arith.remui %{{.*}}, %c3
// THREE: arith.addi %[[C]], %c2
// THREE: nvvm.cp.async.commit.group
// THREE-NEXT: nvvm.cp.async.wait.group 2
// THREE-NEXT: gpu.barrier

// BADSTAGES: error: gsa-stage-shared: stages must be 2 to 4, but is 5

// async-positions: the rows' positions get a ring of their own (4 slots of
// 32: stages + 1 rounded up to a power of two), filled by 4-byte cp.async
// two chunks ahead of the rows that use them; the masks arrive by
// zero-filling 4-byte copies (source size 4 below the count, else 0).
// ASYNC: workgroup({{.*}}, %[[MRING:[^ ,)]+]] : memref<2x32xi32, #gpu.address_space<workgroup>>, %[[PRING:[^ ,)]+]] : memref<128xi32, #gpu.address_space<workgroup>>)
// Prologue: chunk 0's rows still read their positions from global memory.
// ASYNC: memref.load %arg3[
// ASYNC: memref.load %arg3[
// ASYNC: scf.if
// ASYNC: %[[LIVE:[^ ]+]] = arith.cmpi slt, %{{.*}}, %[[SIZE:[^ ,)]+]] : index
// ASYNC: %[[BYTES:[^ ]+]] = arith.select %[[LIVE]], %c4_i32, %c0_i32 : i32
// ASYNC: memref.extract_aligned_pointer_as_index %arg4
// ASYNC: memref.extract_aligned_pointer_as_index %[[MRING]]
// ASYNC: nvvm.inline_ptx "cp.async.ca.shared.global [$0], [$1], 4, $2;" ro(%{{.*}}, %{{.*}}, %[[BYTES]] : i32, i64, i32)
// The first group also copies the positions of chunks 1 and 2 (slots 1 and
// 2, where those chunks exist), then the prologue waits for it.
// ASYNC: arith.cmpi sgt, %[[N:[^ ,)]+]], %c1 : index
// ASYNC: memref.extract_aligned_pointer_as_index %arg3
// ASYNC: memref.extract_aligned_pointer_as_index %[[PRING]]
// ASYNC: nvvm.inline_ptx "cp.async.ca.shared.global [$0], [$1], 4, $2;" ro(%{{.*}}, %{{.*}}, %c4_i32 : i32, i64, i32)
// ASYNC: arith.cmpi sgt, %[[N]], %c2 : index
// ASYNC: memref.extract_aligned_pointer_as_index %[[PRING]]
// ASYNC: nvvm.cp.async.commit.group
// ASYNC-NEXT: nvvm.cp.async.wait.group 0
// ASYNC-NEXT: gpu.barrier
// In the loop: chunk c + 1's rows take their positions from slot (c + 1) % 4
// of the ring - no global load in front of their copies -, and chunk c +
// 3's positions are copied into slot (c + 3) % 4.
// ASYNC: scf.for %[[C:[^ ,)]+]] = %c0 to %[[N]] step %c1
// ASYNC: %[[NEXT:[^ ,)]+]] = arith.addi %[[C]], %c1
// ASYNC: arith.cmpi slt, %[[NEXT]], %[[N]]
// ASYNC: scf.if
// ASYNC: arith.remui %[[NEXT]], %c4
// ASYNC-NOT: memref.load %arg3
// ASYNC: memref.load %[[PRING]][
// ASYNC-NOT: memref.load %arg3
// ASYNC: nvvm.inline_ptx "cp.async.cg.shared.global
// ASYNC: memref.load %[[PRING]][
// ASYNC: nvvm.inline_ptx "cp.async.ca.shared.global [$0], [$1], 4, $2;"
// ASYNC: %[[FAR:[^ ,)]+]] = arith.addi %[[C]], %c3
// ASYNC: arith.cmpi slt, %[[FAR]], %[[N]]
// ASYNC: arith.remui %[[FAR]], %c4
// ASYNC: memref.extract_aligned_pointer_as_index %[[PRING]]
// ASYNC: nvvm.cp.async.commit.group
// ASYNC-NEXT: nvvm.cp.async.wait.group 1
// ASYNC-NEXT: gpu.barrier

// Three stages: the first group copies chunks 2 and 3's positions, the
// second (chunk 1's rows, from global positions) chunk 4's; the prologue
// waits until one group is left in flight; the loop copies chunk c + 5's.
// ASYNC3: memref<128xi32, #gpu.address_space<workgroup>>)
// ASYNC3: arith.cmpi sgt, %[[N:[^ ,)]+]], %c2 : index
// ASYNC3: arith.cmpi sgt, %[[N]], %c3 : index
// ASYNC3: nvvm.cp.async.commit.group
// ASYNC3: arith.cmpi sgt, %[[N]], %c1 : index
// ASYNC3: memref.load %arg3[
// ASYNC3: arith.cmpi sgt, %[[N]], %c4 : index
// ASYNC3: nvvm.cp.async.commit.group
// ASYNC3-NEXT: nvvm.cp.async.wait.group 1
// ASYNC3-NEXT: gpu.barrier
// ASYNC3: scf.for %[[C:[^ ,)]+]] = %c0 to %[[N]]
// ASYNC3-NOT: memref.load %arg3
// ASYNC3: arith.addi %[[C]], %c5
// ASYNC3: nvvm.cp.async.commit.group
// ASYNC3-NEXT: nvvm.cp.async.wait.group 2
func.func @tile_loop(%q: memref<1x64x8x64xbf16>, %k: memref<1x64x2x64xbf16>,
                     %v: memref<1x64x2x64xbf16>, %keys: memref<4096xi32>,
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
      %kt = gsa.tile.gather_rows %k[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
      %vt = gsa.tile.gather_rows %v[%b, %kvh] rows %keys[%off] count %count : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
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
