// RUN: gsa-opt %s --convert-gsa-to-gpu | FileCheck %s

// The op becomes a launch on flat buffers: grid (L, n_kv, B), 4 warps per
// block; the kernel walks the selected set once per (t, kv head) for the
// whole GQA group (8 / 2 = 4 query heads, one per warp).
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
// CHECK: gpu.func @attend_sparse_attention_0(%{{.*}}: memref<131072xbf16>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<2048xi32>, %{{.*}}: memref<128xi32>, %{{.*}}: memref<32768xbf16>, %{{.*}}: memref<131072xbf16>, %{{.*}}: memref<131072xbf16>, %{{.*}}: memref<1024xf32>) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK-DAG: %[[T:.*]] = gpu.block_id  x
// CHECK-DAG: %[[KVH:.*]] = gpu.block_id  y
//   warps take the group's heads round-robin, 4 at a time
// CHECK: scf.for %{{.*}} = %{{.*}} to %c4 step %c4
//   online softmax state: m, l and 128 / 32 = 4 accumulators per lane
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32)
// CHECK: arith.cmpi sle, %{{.*}}, %[[T]] : index
// CHECK: llvm.intr.fma
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32, %c32_i32{{.*}} : f32
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
//   G2 and G1 sigmoids as tanh.approx
// CHECK: nvvm.inline_ptx "tanh.approx.f32 $0, $1;"
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
