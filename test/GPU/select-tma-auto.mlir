// RUN: gsa-opt %s --convert-gsa-to-gpu="select-wgmma-stages=6 select-tma=-1" | FileCheck %s
// RUN: gsa-opt %s --gsa-gpu-pipeline="select-tma=-1" --mlir-print-ir-after=convert-gsa-to-gpu -o /dev/null 2>&1 | FileCheck %s

// select-tma=-1 (the pipeline's default on sm_90a) picks how the stats
// sweep's TMA slots are released per op: where the sweep carries the row
// moments (an adaptive policy, or training) by per-slot "empty" barriers
// (select-tma=2: then two chunks per step fit the register cap), otherwise
// by the loop's CTA barrier (select-tma=1).

// The fixed policy at inference: no moments, the CTA barrier frees the
// slots - one "full" barrier per slot (one arrival), a CTA barrier at the
// head of the two-chunk step and none between its waits.
// CHECK: gpu.func @fixed_{{[0-9]+}}_select_stats(
// CHECK-COUNT-6: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c1_i32
// CHECK-NOT: mbarrier.init
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} {
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: mbarrier.arrive.shared::cta.b64 _, [$0];
// CHECK: gpu.return

// The inverse policy: moments, so per-slot "empty" barriers (8 arrivals, the
// warps), no CTA barrier in the two-chunk step, and each warp's lane 0
// releases the slot it has read.
// CHECK: gpu.func @inverse_{{[0-9]+}}_select_stats(
// CHECK-COUNT-12: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c{{1|8}}_i32
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} iter_args
// CHECK-NOT: gpu.barrier
// CHECK: mbarrier.try_wait.parity
// CHECK-NOT: gpu.barrier
// CHECK: mbarrier.arrive.shared::cta.b64 _, [$0];
// CHECK: gpu.return

func.func @fixed(%qi: tensor<1x300x4x64xbf16>, %ki: tensor<1x300x64xbf16>,
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

func.func @inverse(%qi: tensor<1x300x4x64xbf16>, %ki: tensor<1x300x64xbf16>,
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
  %idx, %cnt = gsa.adaptive_topk %I policy = inverse k = 16 in [8, 32]
      running_var(%rv)
      : (tensor<1x300x300xf32>, tensor<f32>) -> (tensor<1x300x32xi32>, tensor<1x300xi32>)
  return %idx, %cnt : tensor<1x300x32xi32>, tensor<1x300xi32>
}
