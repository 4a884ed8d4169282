// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores --gsa-outline-kernels --convert-gsa-to-gpu | FileCheck %s
// RUN: not gsa-opt %s --convert-gsa-to-gpu 2>&1 | FileCheck %s --check-prefix=PERQUERY

// G = 16 (more than the per-query kernel takes): 1 query per warp, 4-query
// tiles (L = 9 -> 3 tiles of at most 4 x 8 = 32 entries).
// CHECK-LABEL: func.func @group_of_sixteen
// CHECK: memref.alloc() : memref<96xi32>
// CHECK: gpu.launch_func @gsa_kernels::@group_of_sixteen_sparse_attention_0_query_tiles
// CHECK: gpu.launch_func @gsa_kernels::@group_of_sixteen_sparse_attention_0 blocks in (%c3
func.func @group_of_sixteen(%q: tensor<1x9x16x128xbf16>, %k: tensor<1x9x1x128xbf16>,
                            %v: tensor<1x9x1x128xbf16>, %idx: tensor<1x9x8xi32>,
                            %cnt: tensor<1x9xi32>)
    -> (tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x9x16x128xbf16>, tensor<1x9x1x128xbf16>, tensor<1x9x1x128xbf16>,
         tensor<1x9x8xi32>, tensor<1x9xi32>) -> (tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>)
  return %o, %lse : tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>
}

// Without query tiles the per-query kernel refuses the group, with a
// located error (errors.mlir checks it under -verify-diagnostics).
// PERQUERY: error: 'gsa.sparse_attention' op GPU kernel keeps the query heads of a GQA group in registers and supports n_h / n_kv <= 8, but it is 16
