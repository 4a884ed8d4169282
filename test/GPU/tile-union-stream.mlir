// RUN: gsa-opt %s --gsa-tile="split-share=0 union-stream=1" --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-tile="split-share=0" --canonicalize | FileCheck %s --check-prefix=RESCAN

// The union kernel of gsa-tile (16-query tiles: G = 256 / 16 = 16 lanes
// per query, two queries per warp). The selection kernels write ascending
// lists, so each group streams its query's list once over the union
// windows: a cursor and the last consumed entry are carried from window to
// window; within a window, an scf.while consumes runs of 16 entries while
// any lane of the warp still has entries below the window's end (a
// warp-wide ballot: the loop's shuffles and ballots need the whole warp),
// checks each consumed entry against its predecessor (the lane before, or
// the carried last entry), marks the visible ones (bitmap and query mask,
// shared atomics) and advances by the group's first entry at or past the
// window's end (a ballot of the stop lanes, shifted to the group's bits).
// Past the last window a second stream only checks the order. A tile with
// a list out of order (a flag in shared memory) is built again by the
// per-window rescan of every entry.

// CHECK-LABEL: func.func @attend
// CHECK: gpu.launch {{.*}} threads({{.*}}) in ({{.*}} = %c256{{.*}} workgroup({{.*}}, %[[FLAG:[^ ]+]] : memref<1xi32, #gpu.address_space<workgroup>>)
// CHECK: memref.store %c0_i32, %[[FLAG]][%c0]
// CHECK: %[[WIN:[^ ]+]]:3 = scf.for %[[W0:[^ ]+]] = %c0 to %{{.*}} step %c16384 iter_args(%[[BASE:[^ ]+]] = %c0, %[[CURSOR:[^ ]+]] = %c0, %[[LAST:[^ ]+]] = %c-2147483648_i32) -> (index, index, i32)
// CHECK: gpu.barrier
// CHECK: %[[STREAM:[^ ]+]]:3 = scf.while (%[[CUR:[^ ]+]] = %[[CURSOR]], %[[PREV:[^ ]+]] = %[[LAST]], %{{.*}} = %true) : (index, i32, i1) -> (index, i32, i1)
// CHECK: %[[GOING:[^ ]+]] = nvvm.vote.sync ballot %c-1_i32, %{{.*}} -> i32
// CHECK: %[[ANY:[^ ]+]] = arith.cmpi ne, %[[GOING]], %c0_i32 : i32
// CHECK: scf.condition(%[[ANY]])
// CHECK: } do {
// Entries past the count read as INT32_MAX (a stop).
// CHECK: scf.if
// CHECK: memref.load
// CHECK: scf.yield %c2147483647_i32
// CHECK: %[[STOPS:[^ ]+]] = nvvm.vote.sync ballot %c-1_i32, %{{.*}} -> i32
// CHECK: %[[MINE:[^ ]+]] = arith.shrui %[[STOPS]], %{{.*}} : i32
// CHECK: arith.andi %[[MINE]], %c65535_i32 : i32
// CHECK: llvm.intr.cttz
// CHECK: gpu.shuffle up %{{.*}}, %c1_i32, %c32_i32 : i32
// The order check: a consumed entry below its predecessor flags the tile.
// CHECK: arith.cmpi slt
// CHECK: scf.if
// CHECK-NEXT: memref.store %c1_i32, %[[FLAG]][%c0]
// CHECK: scf.if
// CHECK: memref.atomic_rmw ori
// CHECK: memref.atomic_rmw ori
// The group's last consumed entry: lane first - 1 of the group.
// CHECK: gpu.shuffle idx
// CHECK: scf.yield
// CHECK: gpu.barrier
// CHECK: llvm.intr.ctpop
// CHECK: scf.yield %{{.*}}, %[[STREAM]]#0, %[[STREAM]]#1 : index, index, i32
// Past the last window: the order check alone (no atomics).
// CHECK: scf.while (%{{.*}} = %[[WIN]]#1, %{{.*}} = %[[WIN]]#2, %{{.*}} = %true)
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.barrier
// CHECK: %[[UNORDERED:[^ ]+]] = memref.load %[[FLAG]][%c0]
// CHECK: %[[OUT:[^ ]+]] = arith.cmpi ne, %[[UNORDERED]], %c0_i32 : i32
// CHECK: %[[TOTAL:[^ ]+]] = scf.if %[[OUT]] -> (index) {
// The rescan: every window from every entry of each of the 16 queries.
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c16384 iter_args(%{{.*}} = %c0) -> (index)
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c1
// CHECK: memref.atomic_rmw ori
// CHECK: memref.atomic_rmw ori
// CHECK: } else {
// CHECK-NEXT: scf.yield %[[WIN]]#0 : index
// CHECK: arith.index_cast %[[TOTAL]] : index to i32
// CHECK: } {gsa.kernel = "attend_sparse_attention_0_query_tiles"}
// By default (union-stream=0): the per-window rescan alone (no order flag, no stream).
// RESCAN-LABEL: func.func @attend
// RESCAN: gpu.launch {{.*}} threads({{.*}}) in ({{.*}} = %c256{{.*}} workgroup(%{{.*}} : memref<512xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<8192xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<8xi32, #gpu.address_space<workgroup>>) {
// RESCAN-NOT: scf.while
// RESCAN-NOT: nvvm.vote.sync
// RESCAN: scf.for %{{.*}} = %c0 to %{{.*}} step %c16384 iter_args(%{{.*}} = %c0) -> (index)
// RESCAN: scf.for %{{.*}} = %c0 to %c16 step %c1
// RESCAN: memref.atomic_rmw ori
// RESCAN: } {gsa.kernel = "attend_sparse_attention_0_query_tiles"}
func.func @attend(%q: tensor<1x33x8x64xbf16>, %k: tensor<1x33x2x64xbf16>,
                  %v: tensor<1x33x2x64xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>)
    -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x33x8x64xbf16>, tensor<1x33x2x64xbf16>, tensor<1x33x2x64xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>) -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>
}
