// RUN: gsa-opt %s -split-input-file --gsa-lower-selection="select-wgmma-stages=3" | FileCheck %s

// The wgmma statistics sweep with the paper's sigmoid activation and
// scale / 2 a power of two (here the default 1 / sqrt(d_I) = 1/8): scale
// and bias move into the products. The queries are scaled by 1/16 once
// (exact), a fifth k-step adds bias / 2 against a block of ones, and the
// tanh takes the accumulators as they are: per (query, key, head) no fma
// in front of the sigmoid.
// The sample's cut per row: the key of +0.0 (2^31) is stored as -0.0's
// (2^31 - 1), the one cut at which the stats sweep's float test (below)
// would take a key under the cut.
// CHECK-LABEL: gpu.func @select_1_select_sample
// CHECK: %[[PLUSZERO:.*]] = arith.cmpi eq, %[[SAMPLECUT:.*]], %c-2147483648_i32{{[_0-9]*}} : i32
// CHECK-NEXT: %{{.*}} = arith.select %[[PLUSZERO]], %c2147483647_i32{{[_0-9]*}}, %[[SAMPLECUT]] : i32
// CHECK-LABEL: gpu.func @select_1_select_stats
// The ones block: 64 keys x 64 columns, 1024-byte aligned like the ring.
// CHECK-SAME: %[[ONES:[a-z0-9]+]] : memref<4096xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}
// Filled before the staging barrier: key row r's column 0 (its first
// 16-byte piece, at piece r % 8 of the 128-byte swizzle) is 1, the rest 0.
// CHECK: scf.for %[[I:.*]] = %thread_id_x to %c4096 step %c256 {
// CHECK: %[[IS:.*]] = arith.cmpi eq, %[[I]], %{{.*}} : index
// CHECK: %[[V:.*]] = arith.select %[[IS]], %cst{{[_0-9]*}}, %cst{{[_0-9]*}} : bf16
// CHECK: memref.store %[[V]], %[[ONES]][%[[I]]]
// The A fragments times 1/16 in f32, rounded back to bf16.
// CHECK: arith.constant 6.250000e-02 : f32
// The row's cut key as the f32 it stands for, once per row: the sign bit
// flipped (a non-negative score's key) or every bit (a negative one's),
// and -inf for the keys below -inf's (0x007fffff).
// CHECK: %[[CUTKEY:.*]] = memref.load %{{.*}} : memref<100xi32>
// CHECK: %[[CUTBITS:.*]] = arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[BELOWINF:.*]] = arith.cmpi ult, %[[CUTKEY]], %c8388607_i32 : i32
// CHECK-NEXT: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT: %[[CUT:.*]] = arith.select %[[BELOWINF]], %[[NEGINF]], %[[CUTBITS]] : f32
// In the bulk loop: five k-steps, the fifth's B descriptor from the ones
// block, its A the bias registers.
// CHECK: scf.for
// CHECK: %[[PRODUCTS:.*]] = llvm.inline_asm has_side_effects {{.*}}{$47, $48, $49, $50}, $51, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}{$52, $53, $54, $55}, $56, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;
// CHECK: %[[ACC0:.*]] = llvm.extractvalue %[[PRODUCTS]][0]
// CHECK: %[[ACC2:.*]] = llvm.extractvalue %[[PRODUCTS]][2]
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;" ro(%[[ACC2]] : f32)
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;" ro(%[[ACC0]] : f32)
// One shuffle per visit (8 per chunk, before the visits' candidate tests):
// the lane's key pair stays, the other one goes.
// CHECK-COUNT-8: gpu.shuffle xor
// CHECK-NOT: gpu.shuffle xor
// The candidate test is one float compare of the score with that cut; the
// chunk's eight visits are tested as one first (the largest score, maxnum,
// against the cut: one branch per chunk on the common path), and the order
// key is formed on a visit's taken branch only.
// CHECK: %[[M1:.*]] = arith.maxnumf %[[SCORE:.*]], %{{.*}} : f32
// CHECK-COUNT-6: arith.maxnumf
// CHECK-NEXT: %[[ANY:.*]] = arith.cmpf oge, %{{.*}}, %[[CUT]] : f32
// CHECK-NEXT: scf.if %[[ANY]] {
// CHECK-NEXT: %[[TAKE:.*]] = arith.cmpf oge, %[[SCORE]], %[[CUT]] : f32
// CHECK-NEXT: scf.if %[[TAKE]] {
// CHECK-NEXT: arith.bitcast %[[SCORE]] : f32 to i32
// CHECK-NEXT: arith.constant 31 : i32
// CHECK-NEXT: arith.shrsi
// CHECK: gpu.return
func.func @select(%qi: tensor<1x100x4x64xbf16>, %ki: tensor<1x100x64xbf16>,
                  %wi: tensor<1x100x4xbf16>, %bi: tensor<4xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<1x100x4x64xbf16>, tensor<1x100x64xbf16>, tensor<1x100x4xbf16>, tensor<4xbf16>)
        -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// scale 0.1: 0.05 x the queries would round, so the products stay four
// k-steps and the epilogue keeps its fma (x scale / 2 + bias / 2) in front
// of each tanh; no ones block.
// CHECK-LABEL: gpu.func @select_1_select_stats
// CHECK-NOT: memref<4096xbf16
// CHECK-SAME: kernel attributes
// CHECK: %[[PRODUCTS:.*]] = llvm.inline_asm has_side_effects {{.*}}{$47, $48, $49, $50}, $51, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;
// CHECK: %[[ACC2:.*]] = llvm.extractvalue %[[PRODUCTS]][2]
// CHECK: %[[X:.*]] = llvm.intr.fma(%[[ACC2]], %{{.*}}, %{{.*}}) : (f32, f32, f32) -> f32
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;" ro(%[[X]] : f32)
// CHECK: gpu.return
func.func @select(%qi: tensor<1x100x4x64xbf16>, %ki: tensor<1x100x64xbf16>,
                  %wi: tensor<1x100x4xbf16>, %bi: tensor<4xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi) scale(0.1)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<1x100x4x64xbf16>, tensor<1x100x64xbf16>, tensor<1x100x4xbf16>, tensor<4xbf16>)
        -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// Without a bias: the queries still carry scale / 2 and the tanh takes the
// accumulators, but there is no bias step and no ones block.
// CHECK-LABEL: gpu.func @select_1_select_stats
// CHECK-NOT: memref<4096xbf16
// CHECK-SAME: kernel attributes
// CHECK: arith.constant 6.250000e-02 : f32
// CHECK: %[[PRODUCTS:.*]] = llvm.inline_asm has_side_effects {{.*}}{$47, $48, $49, $50}, $51, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;
// CHECK: %[[ACC2:.*]] = llvm.extractvalue %[[PRODUCTS]][2]
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;" ro(%[[ACC2]] : f32)
// CHECK: gpu.return
func.func @select(%qi: tensor<1x100x4x64xbf16>, %ki: tensor<1x100x64xbf16>,
                  %wi: tensor<1x100x4xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<1x100x4x64xbf16>, tensor<1x100x64xbf16>, tensor<1x100x4xbf16>)
        -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// f16 inputs: q x 1/16 could turn subnormal in f16 (and a larger scale
// overflow), so nothing moves: four k-steps and the fma in front of the
// tanh.
// CHECK-LABEL: gpu.func @select_1_select_stats
// CHECK-NOT: memref<4096xf16
// CHECK-SAME: kernel attributes
// CHECK: %[[PRODUCTS:.*]] = llvm.inline_asm has_side_effects {{.*}}m64n64k16.f32.f16.f16 {{.*}}{$47, $48, $49, $50}, $51, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;
// CHECK: %[[ACC2:.*]] = llvm.extractvalue %[[PRODUCTS]][2]
// CHECK: %[[X:.*]] = llvm.intr.fma(%[[ACC2]], %{{.*}}, %{{.*}}) : (f32, f32, f32) -> f32
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;" ro(%[[X]] : f32)
// CHECK: gpu.return
func.func @select(%qi: tensor<1x100x4x64xf16>, %ki: tensor<1x100x64xf16>,
                  %wi: tensor<1x100x4xf16>, %bi: tensor<4xf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<1x100x4x64xf16>, tensor<1x100x64xf16>, tensor<1x100x4xf16>, tensor<4xf16>)
        -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}
