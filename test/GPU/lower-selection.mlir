// RUN: gsa-opt %s --gsa-lower-selection="select-tensor-cores=0" -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection="select-rows-per-tile=4 select-tensor-cores=0" -split-input-file | FileCheck %s --check-prefix=TILE4
// RUN: gsa-opt %s --gsa-lower-selection -split-input-file | FileCheck %s --check-prefix=MMA

// The default: the fused indexer's products on the tensor cores (bf16,
// H_I = 4, d_I = 64): per 8-key n-tile, 4 k-steps of m16n8k16 per 16-row
// m-tile (4 queries x 4 heads), 2 m-tiles for 8 rows; no staged queries
// (the A fragments stay in registers), 64 keys per block iteration; one
// xor-16 shuffle adds the other two heads.
// MMA-LABEL: func.func @select(
// MMA: gpu.func @select_1_select_stats(
// MMA-NOT: memref<2048xf32, #gpu.address_space<workgroup>>
// MMA-SAME: memref<32xf32, #gpu.address_space<workgroup>>
// MMA: scf.for {{.*}} step %c64
// MMA-COUNT-8: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// MMA: gpu.shuffle xor %{{.*}}, %c16_i32
// MMA: gpu.func @select_1_select_topk(
// MMA: nvvm.vote.sync  ballot

// The CUDA-core form (select-tensor-cores=0, and any shape the tensor cores
// do not take):

// The tile size is a pass option: 4 rows per block gives ceil(100 / 4) = 25
// blocks per batch entry and 4 x 4 x 64 staged queries.
// TILE4-LABEL: func.func @select(
// TILE4: %[[C25:.*]] = arith.constant 25 : index
// TILE4: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%[[C25]],
// TILE4: gpu.func @select_1_select_stats(
// TILE4-SAME: memref<1024xf32, #gpu.address_space<workgroup>>

// An indexer whose only user is the selection is fused into the selection's
// kernels: no L x L score buffer exists. Training mode: stats, the batch's
// reference variance (one block), then the radix top-k; scratch for the
// per-row statistics, the selection's outputs as results.
// CHECK-LABEL: func.func @select(
// CHECK-NOT: memref<2x100x100xf32>
// CHECK-DAG: %[[MEAN:.*]] = memref.alloc() : memref<200xf64>
// CHECK-DAG: %[[VAR:.*]] = memref.alloc() : memref<200xf64>
// CHECK-DAG: %[[MIN:.*]] = memref.alloc() : memref<200xi32>
// CHECK-DAG: %[[MAX:.*]] = memref.alloc() : memref<200xi32>
// CHECK-DAG: %[[IDX:.*]] = memref.alloc() : memref<2x100x32xi32>
// CHECK-DAG: %[[CNT:.*]] = memref.alloc() : memref<2x100xi32>
//   grid: ceil(100 / 8) = 13 tiles of 8 rows, B = 2; 256 threads
// CHECK-DAG: %[[C13:.*]] = arith.constant 13 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%[[C13]], %[[C2]], %{{.*}}) threads in (%c256{{.*}}) args({{.*}}, %[[MEAN]] : memref<200xf64>, %[[VAR]] : memref<200xf64>, %[[MIN]] : memref<200xi32>, %[[MAX]] : memref<200xi32>)
// CHECK: %[[VBAR:.*]] = memref.alloc() : memref<1xf64>
// CHECK: %[[NEW:.*]] = memref.alloc() : memref<f32>
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_vbar blocks in (%c1{{.*}}, %c1{{.*}}, %c1{{.*}}) threads in (%c256{{.*}}) args(%[[VAR]] : memref<200xf64>, %[[VBAR]] : memref<1xf64>, %{{.*}} : memref<f32>, %[[NEW]] : memref<f32>)
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_topk {{.*}} args({{.*}}, %[[VBAR]] : memref<1xf64>, %{{.*}} : memref<6400xi32>, %{{.*}} : memref<200xi32>)
// CHECK: bufferization.to_tensor %[[IDX]]
// CHECK: bufferization.to_tensor %[[CNT]]
// CHECK: bufferization.to_tensor %[[NEW]]

// The stats kernel: 8 rows' queries (8 x 4 x 64), weights and bias staged
// in shared memory, f64 sums per row, 64-bit values shuffled as two halves.
// CHECK: gpu.func @select_1_select_stats(
// CHECK-SAME: workgroup({{.*}}memref<2048xf32, #gpu.address_space<workgroup>>{{.*}}memref<32xf32, #gpu.address_space<workgroup>>{{.*}}memref<4xf32, #gpu.address_space<workgroup>>
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK: gpu.barrier
// CHECK: scf.for {{.*}} step %c256{{.*}} iter_args({{.*}}) -> (f64, f64, i32, i32,
// CHECK: llvm.intr.fma
// (The activation region inlined: convert-gsa-to-gpu makes its gsa.sigmoid
// one tanh.approx in every kernel.)
// CHECK: gsa.sigmoid {{.*}} : f32
// CHECK: arith.minui
// CHECK: arith.maxui
// CHECK: gpu.shuffle xor {{.*}} : i32
// The topk kernel: 256-bin histograms per row, atomics in shared memory,
// ballots and lane masks for the ordered write-out.
// CHECK: gpu.func @select_1_select_topk(
// CHECK-SAME: memref<2048xi32, #gpu.address_space<workgroup>>
// CHECK: llvm.intr.ctlz
// CHECK: memref.atomic_rmw addi
// CHECK: nvvm.read.ptx.sreg.lanemask.lt
// CHECK: nvvm.vote.sync  ballot
// CHECK: llvm.intr.ctpop
func.func @select(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>,
                  %wi: tensor<2x100x4xbf16>, %bi: tensor<4xbf16>, %rv: tensor<f32>)
    -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>, tensor<2x100x4xbf16>, tensor<4xbf16>)
        -> tensor<2x100x100xf32>
  %idx, %cnt, %nv = gsa.adaptive_topk %I policy = inverse k = 16 in [4, 32]
      running_var(%rv) training
      : (tensor<2x100x100xf32>, tensor<f32>) -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>)
  return %idx, %cnt, %nv : tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>
}

// -----

// An indexer whose scores the program returns gets its own kernel writing
// them; the selection then reads the score matrix. Inference mode reads
// V_bar from the running variance: no vbar kernel.
// CHECK-LABEL: func.func @scores_too(
// CHECK: %[[I:.*]] = memref.alloc() : memref<1x40x40xf32>
// CHECK: gpu.launch_func @gsa_kernels::@scores_too_0_indexer blocks in (%c5{{.*}}, %c1{{.*}}, %c1{{.*}})
// CHECK-NOT: select_vbar
// CHECK: gpu.launch_func @gsa_kernels::@scores_too_1_select_stats {{.*}} args(%{{.*}} : memref<1600xf32>
// CHECK: gpu.launch_func @gsa_kernels::@scores_too_1_select_topk {{.*}} args(%{{.*}} : memref<1600xf32>, {{.*}}, %{{.*}} : memref<f32>, %{{.*}} : memref<320xi32>, %{{.*}} : memref<40xi32>)
// CHECK: gpu.func @scores_too_0_indexer(
//   DSA: relu activation inlined, no weights (weight 1), causal -inf fill
// CHECK: arith.maximumf
// CHECK: arith.constant 0xFF800000 : f32
func.func @scores_too(%qi: tensor<1x40x2x32xf16>, %ki: tensor<1x40x32xf16>, %rv: tensor<f32>)
    -> (tensor<1x40x40xf32>, tensor<1x40x8xi32>, tensor<1x40xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %zero = arith.constant 0.0 : f32
        %r = arith.maximumf %x, %zero : f32
        gsa.yield %r : f32
      } : (tensor<1x40x2x32xf16>, tensor<1x40x32xf16>) -> tensor<1x40x40xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = proportional k = 4 in [2, 8]
      running_var(%rv)
      : (tensor<1x40x40xf32>, tensor<f32>) -> (tensor<1x40x8xi32>, tensor<1x40xi32>)
  return %I, %idx, %cnt : tensor<1x40x40xf32>, tensor<1x40x8xi32>, tensor<1x40xi32>
}
