// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6" | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=4" | FileCheck %s --check-prefix=FOUR

// The wgmma statistics sweep over a ring of 6 slots takes two chunks per
// barrier where it carries no f64 moments (the fixed policy at inference):
// the prologue issues chunks 0-3 (stages - 2 groups); each iteration of the
// bulk loop steps by 2, waits with stages - 4 = 2 groups in flight, and
// after its one barrier issues chunks i + 4 and i + 5 (one group each)
// before both chunks' products.
// CHECK: gpu.func @select_1_select_stats
// CHECK-SAME: memref<24576xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}
// CHECK-COUNT-4: nvvm.cp.async.commit.group
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} {
// CHECK-NEXT: nvvm.cp.async.wait.group 2
// CHECK-NEXT: nvvm.inline_ptx "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK: nvvm.cp.async.commit.group
// CHECK-NOT: gpu.barrier
// CHECK: nvvm.cp.async.commit.group
// CHECK-NOT: gpu.barrier
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16
// CHECK-NOT: gpu.barrier
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16
// The masked loop: the second chunk only where it exists (scf.if).
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} {
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16
// CHECK: scf.if
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16
// CHECK: gpu.return

// A ring of 4: one chunk per barrier, 3 chunks ahead.
// FOUR: gpu.func @select_1_select_stats
// FOUR-COUNT-3: nvvm.cp.async.commit.group
// FOUR-NEXT: gpu.barrier
// FOUR: scf.for {{.*}} step %c1{{(_[0-9]+)?}} {
// FOUR-NEXT: nvvm.cp.async.wait.group 2
func.func @select(%qi: tensor<1x300x4x64xbf16>, %ki: tensor<1x300x64xbf16>,
                  %wi: tensor<1x300x4xbf16>, %bi: tensor<4xbf16>, %rv: tensor<f32>)
    -> (tensor<1x300x32xi32>, tensor<1x300xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x300x4x64xbf16>, tensor<1x300x64xbf16>, tensor<1x300x4xbf16>, tensor<4xbf16>)
        -> tensor<1x300x300xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [16, 32]
      running_var(%rv)
      : (tensor<1x300x300xf32>, tensor<f32>) -> (tensor<1x300x32xi32>, tensor<1x300xi32>)
  return %idx, %cnt : tensor<1x300x32xi32>, tensor<1x300xi32>
}
