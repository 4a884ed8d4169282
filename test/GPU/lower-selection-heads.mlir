// RUN: gsa-opt %s --gsa-lower-selection -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection="select-rows-per-tile=-1" -split-input-file | FileCheck %s --check-prefix=AUTO
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=4" -split-input-file | FileCheck %s --check-prefix=WG
// RUN: gsa-opt %s --gsa-lower-selection="select-tensor-cores=0" -split-input-file | FileCheck %s --check-prefix=CUDA

// Indexers of other than 4 heads on the tensor cores: the heads in groups
// of 4 (the 4 queries x 4 heads of an m16 tile), one mma chain per group
// and visit, the groups' head-pair sums added in the lane before the one
// xor-16 shuffle that completes a score. H_I = 8: two groups. The sampled
// selection (sample, stats with candidates, finish) applies as at H_I = 4.
// CHECK-LABEL: func.func @eight_heads
// CHECK: gpu.launch_func @gsa_kernels::@eight_heads_1_select_sample blocks in (%c13,
// CHECK: gpu.launch_func @gsa_kernels::@eight_heads_1_select_stats
// CHECK: gpu.launch_func @gsa_kernels::@eight_heads_1_select_finish
// The head weights of the tile's 8 rows x 8 heads and the 8 biases staged;
// a visit: group 0's chain (4 k-steps of d_I 64) and its 4 sigmoids (two
// head pairs, two keys), group 1's, then the shuffle.
// CHECK: gpu.func @eight_heads_1_select_sample
// CHECK-SAME: memref<64xf32, #gpu.address_space<workgroup>>
// CHECK-SAME: memref<8xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-4: mma.sync.aligned.m16n8k16
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-4: tanh.approx.f32
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-4: mma.sync.aligned.m16n8k16
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-4: tanh.approx.f32
// CHECK-NOT: mma.sync
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// The pipeline's automatic rows per tile (-1) takes one 4-query mma tile
// per CTA with more than one head group (each group adds a tile's A
// fragments to every thread): 25 tiles of L = 100.
// AUTO-LABEL: func.func @eight_heads
// AUTO: gpu.launch_func @gsa_kernels::@eight_heads_1_select_sample blocks in (%c25,
// AUTO: gpu.launch_func @gsa_kernels::@eight_heads_1_select_stats blocks in (%c25
// The stats sweep on wgmma: one product per head group and key chunk,
// both before the chunk's first shuffle.
// WG-LABEL: gpu.func @eight_heads_1_select_stats
// WG: wgmma.commit_group
// WG-NOT: gpu.shuffle
// WG: wgmma.commit_group
// WG: gpu.shuffle  xor %{{.*}}, %c16_i32
// On CUDA cores: the radix selection, no mma.
// CUDA-LABEL: func.func @eight_heads
// CUDA-NOT: select_sample
// CUDA: gpu.launch_func @gsa_kernels::@eight_heads_1_select_stats
// CUDA-NOT: mma.sync
// CUDA: gpu.func @eight_heads_1_select_topk
// CUDA-NOT: mma.sync
func.func @eight_heads(%qi: tensor<1x100x8x64xbf16>, %ki: tensor<1x100x64xbf16>,
                       %wi: tensor<1x100x8xbf16>, %bi: tensor<8xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %s = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    weighting {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x100x8x64xbf16>, tensor<1x100x64xbf16>, tensor<1x100x8xbf16>, tensor<8xbf16>)
    -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 16 in [4, 32]
    : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// H_I = 2: one group, padded to 4 heads. The padding heads weigh 0 and
// have bias 0 (staged as such: a select on head < 2), and their A
// fragments are 0, so they add nothing to a score (sum_h w_h act(..)).
// CHECK-LABEL: func.func @two_heads
// CHECK: gpu.func @two_heads_1_select_sample
// CHECK-SAME: memref<32xf32, #gpu.address_space<workgroup>>
// CHECK-SAME: memref<4xf32, #gpu.address_space<workgroup>>
// CHECK: %[[W:.*]] = gsa.sigmoid
// CHECK: %[[REAL:.*]] = arith.cmpi ult, %[[J:.*]], %c2
// CHECK: %[[PADDED:.*]] = arith.select %[[REAL]], %[[W]], %cst
// CHECK: memref.store %[[PADDED]], %arg11
// CHECK: %[[B:.*]] = arith.extf
// CHECK: %[[BREAL:.*]] = arith.cmpi ult, %{{.*}}, %c2
// CHECK: arith.select %[[BREAL]], %[[B]], %cst
// CHECK: gpu.barrier
// The A fragments of heads >= 2 are 0 (i32 selects of the loaded pairs).
// A lane's second head (j0 + 2) is a padding head in every lane: its
// sigmoids are left out, two per visit (one per key) instead of four.
// CHECK: %[[AREAL:.*]] = arith.cmpi ult, %{{.*}}, %c2
// CHECK: arith.select %[[AREAL]], %{{.*}}, %{{.*}} : i32
// CHECK-COUNT-4: mma.sync.aligned.m16n8k16
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-2: tanh.approx.f32
// CHECK-NOT: tanh.approx.f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// With 2 heads the automatic tiles stay 8 rows (one group).
// AUTO-LABEL: func.func @two_heads
// AUTO: gpu.launch_func @gsa_kernels::@two_heads_1_select_sample blocks in (%c13,
func.func @two_heads(%qi: tensor<1x100x2x64xbf16>, %ki: tensor<1x100x64xbf16>,
                     %wi: tensor<1x100x2xbf16>, %bi: tensor<2xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %s = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    weighting {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x100x2x64xbf16>, tensor<1x100x64xbf16>, tensor<1x100x2xbf16>, tensor<2xbf16>)
    -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 16 in [4, 32]
    : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// H_I 4 at d_I 128: one head group, but 32 A registers per mma tile (two
// units of 16): the automatic tiles take 4 rows as well (at 8 and 12 the
// sample and stats kernels spilled); 8 rows when asked for.
// AUTO-LABEL: func.func @wide_heads
// AUTO: gpu.launch_func @gsa_kernels::@wide_heads_1_select_sample blocks in (%c25,
// CHECK-LABEL: func.func @wide_heads
// CHECK: gpu.launch_func @gsa_kernels::@wide_heads_1_select_sample blocks in (%c13,
func.func @wide_heads(%qi: tensor<1x100x4x128xbf16>, %ki: tensor<1x100x128xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %s = gsa.indexer %qi, %ki
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x100x4x128xbf16>, tensor<1x100x128xbf16>) -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 16 in [4, 32]
    : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// H_I 3 with a user activation (not the sigmoid): head 3 is padding in
// the lanes whose second head it is, so the activation region sees a real
// head index (min(head, 2)) and the term is selected to 0 there - weight 0
// times an infinite or NaN activation would not be 0. The first head
// (0 or 1) is never padding: no guard before its activation.
// CHECK-LABEL: func.func @three_relu
// CHECK: gpu.func @three_relu_1_select_sample
// CHECK: mma.sync.aligned.m16n8k16
// CHECK-NOT: arith.cmpi ult, %{{.*}}, %c3
// CHECK: arith.maximumf
// CHECK: %[[REAL:.*]] = arith.cmpi ult, %[[HEAD:.*]], %c3
// CHECK: arith.minui %[[HEAD]], %c2
// CHECK: %[[ACT:.*]] = arith.maximumf
// CHECK: %[[TERM:.*]] = arith.mulf %{{.*}}, %[[ACT]] : f32
// CHECK: arith.select %[[REAL]], %[[TERM]], %{{.*}} : f32
func.func @three_relu(%qi: tensor<1x100x3x64xbf16>, %ki: tensor<1x100x64xbf16>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %s = gsa.indexer %qi, %ki
    activation {
    ^bb0(%x: f32, %h: index):
      %z = arith.constant 0.0 : f32
      %y = arith.maximumf %x, %z : f32
      gsa.yield %y : f32
    }
    : (tensor<1x100x3x64xbf16>, tensor<1x100x64xbf16>) -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 16 in [4, 32]
    : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}

// -----

// f32 inputs of 8 heads take the CUDA-core form (no fragments): the
// automatic tiles stay 8 rows there (13 tiles of L = 100), no mma.
// AUTO-LABEL: func.func @eight_heads_f32
// AUTO-NOT: select_sample
// AUTO: gpu.launch_func @gsa_kernels::@eight_heads_f32_1_select_stats blocks in (%c13,
// AUTO-NOT: mma.sync
// AUTO: gpu.func @eight_heads_f32_1_select_topk
func.func @eight_heads_f32(%qi: tensor<1x100x8x16xf32>, %ki: tensor<1x100x16xf32>)
    -> (tensor<1x100x32xi32>, tensor<1x100xi32>) {
  %s = gsa.indexer %qi, %ki
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x100x8x16xf32>, tensor<1x100x16xf32>) -> tensor<1x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 16 in [4, 32]
    : (tensor<1x100x100xf32>) -> (tensor<1x100x32xi32>, tensor<1x100xi32>)
  return %idx, %cnt : tensor<1x100x32xi32>, tensor<1x100xi32>
}
