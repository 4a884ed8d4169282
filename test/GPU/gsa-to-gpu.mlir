// RUN: gsa-opt %s --convert-gsa-to-gpu="attention-pregate-values=0" | FileCheck %s
// RUN: gsa-opt %s --convert-gsa-to-gpu | FileCheck %s --check-prefix=PREGATE
// RUN: gsa-opt %s --convert-gsa-to-gpu="attention-rows-in-flight=1" | FileCheck %s --check-prefix=ONE
// RUN: not gsa-opt %s --convert-gsa-to-gpu="attention-rows-in-flight=9" 2>&1 | FileCheck %s --check-prefix=BAD

// The per-query attention kernel (attention-query-tiles=0; the query-tile
// kernels are in gsa-to-gpu-query-tiles.mlir).
// By default the value gate runs first, once per key row: v' = v *
// sigmoid(gv) into a buffer of v's shape (scratch for the runtime), 8
// elements per thread (2 x 64 x 2 x 128 / 2048 = 16 blocks); the attention
// kernel then takes v' and no gate.
// PREGATE: %[[GATED:.*]] = memref.alloc() : memref<32768xbf16>
// PREGATE: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_value_gate blocks in (%c16{{.*}}) threads in (%c256{{.*}}) args(%{{.*}} : memref<32768xbf16>, %{{.*}} : memref<32768xbf16>, %[[GATED]] : memref<32768xbf16>)
// PREGATE: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 {{.*}} args(%{{.*}} : memref<131072xbf16>, %{{.*}} : memref<32768xbf16>, %[[GATED]] : memref<32768xbf16>, %{{.*}} : memref<2048xi32>, %{{.*}} : memref<128xi32>, %{{.*}} : memref<131072xbf16>, %{{.*}} : memref<131072xbf16>, %{{.*}} : memref<1024xf32>)
// PREGATE: gpu.func @attend_sparse_attention_0_value_gate(
// PREGATE: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
// PREGATE: gpu.func @attend_sparse_attention_0(
// PREGATE-NOT: tanh.approx
// PREGATE: scf.for
// PREGATE: gpu.return
// One row in flight: the loop steps by the 4 warps.
// ONE: scf.for %{{.*}} step %c4{{.*}} iter_args
// BAD: error: 'gsa.sparse_attention' op the attention kernel takes 1 to 8 rows in flight per warp, but attention-rows-in-flight = 9

// The op becomes a launch on flat buffers: grid (L, n_kv, B), 4 warps per
// block; the kernel walks the selected set once per (t, kv head) for the
// whole GQA group (8 / 2 = 4 query heads), the 4 warps splitting the set.
// CHECK: module attributes {gpu.container_module}
// CHECK-LABEL: func.func @attend(
// CHECK: %[[Q:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0, 1, 2, 3]] : memref<2x64x8x128xbf16> into memref<131072xbf16>
// CHECK: %[[O:.*]] = memref.alloc() : memref<2x64x8x128xbf16>
// CHECK: %[[LSE:.*]] = memref.alloc() : memref<2x64x8xf32>
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK-DAG: %[[C128:.*]] = arith.constant 128 : index
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks in (%[[C64]], %{{.*}}, %{{.*}}) threads in (%[[C128]], %{{.*}}, %{{.*}}) args(%[[Q]] : memref<131072xbf16>
// CHECK: bufferization.to_tensor %[[O]] restrict writable
// CHECK: gpu.module @gsa_kernels
// CHECK: gpu.func @attend_sparse_attention_0(%{{.*}}: memref<131072xbf16>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<2048xi32>, %{{.*}}: memref<128xi32>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<131072xbf16>, %{{.*}}: memref<131072xbf16>, %{{.*}}: memref<1024xf32>)
//   shared memory for the 4 warps' partial states of the 4 heads: m, l, acc
// CHECK-SAME: workgroup(%[[SM:.*]] : memref<16xf32, #gpu.address_space<workgroup>>, %[[SL:.*]] : memref<16xf32, #gpu.address_space<workgroup>>, %[[SACC:.*]] : memref<2048xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK-DAG: %[[TID:.*]] = gpu.thread_id  x
// CHECK-DAG: %[[T:.*]] = gpu.block_id  x
// CHECK: %[[WARP:.*]] = arith.divui %[[TID]], %c32
//   warps split the selected set, 4 rows in flight per warp (step 4 x 4);
//   state per head: m, l, 128 / 32 = 4 accumulators
// CHECK: scf.for %{{.*}} = %[[WARP]] to %{{.*}} step %c16{{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
//   the 4 rows' positions checked and their K/V/gate rows loaded first
// CHECK-COUNT-4: arith.cmpi sle, %{{.*}}, %[[T]] : index
//   G2: one tanh.approx sigmoid per value element, shared by the 4 heads
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
// CHECK: llvm.intr.fma
//   4 rows x 4 heads reductions in lockstep
// CHECK-COUNT-16: gpu.shuffle xor %{{.*}}, %c16_i32{{.*}}, %c32_i32
// CHECK: gpu.shuffle xor %{{.*}}, %c8_i32
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// CHECK: memref.store %{{.*}}, %[[SACC]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[SM]]
// CHECK: memref.load %[[SACC]]
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: nvvm.inline_ptx "lg2.approx.ftz.f32 $0, $1;"
// CHECK: gpu.return
// CHECK-NOT: gsa.
func.func @attend(%q: tensor<2x64x8x128xbf16>, %k: tensor<2x64x2x128xbf16>,
                  %v: tensor<2x64x2x128xbf16>, %idx: tensor<2x64x16xi32>,
                  %cnt: tensor<2x64xi32>, %gv: tensor<2x64x2x128xbf16>,
                  %go: tensor<2x64x8x128xbf16>)
    -> (tensor<2x64x8x128xbf16>, tensor<2x64x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      : (tensor<2x64x8x128xbf16>, tensor<2x64x2x128xbf16>, tensor<2x64x2x128xbf16>,
         tensor<2x64x16xi32>, tensor<2x64xi32>, tensor<2x64x2x128xbf16>,
         tensor<2x64x8x128xbf16>) -> (tensor<2x64x8x128xbf16>, tensor<2x64x8xf32>)
  return %o, %lse : tensor<2x64x8x128xbf16>, tensor<2x64x8xf32>
}
