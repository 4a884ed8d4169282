// REQUIRES: ptxas
// RUN: gsa-compile %s -o %t.ptx
// RUN: grep -c ".extern .shared .align 1024 .b8 __dynamic_shmem__0\[\];" %t.ptx | FileCheck %s --check-prefix=DECLS
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s

// Two attentions at d_k 128: two tile kernels, each with its 64 KiB of
// K / v' rings in dynamic shared memory. gsa-serialize-kernels compiles
// them as separate parts, each declaring the dynamic shared memory array;
// the joined PTX repeats that extern declaration and still assembles.
// DECLS: 2
// CHECK-DAG: Compiling entry function 'two_sparse_attention_0' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'two_sparse_attention_1' for 'sm_90a'
// CHECK-NOT: error
func.func @two(%q: tensor<1x80x4x128xbf16>, %k: tensor<1x80x1x128xbf16>,
               %v: tensor<1x80x1x128xbf16>, %idx: tensor<1x80x16xi32>,
               %cnt: tensor<1x80xi32>)
    -> (tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>, tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x80x4x128xbf16>, tensor<1x80x1x128xbf16>, tensor<1x80x1x128xbf16>,
         tensor<1x80x16xi32>, tensor<1x80xi32>) -> (tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>)
  %o2, %lse2 = gsa.sparse_attention %o, %k, %v select(%idx, %cnt)
      : (tensor<1x80x4x128xbf16>, tensor<1x80x1x128xbf16>, tensor<1x80x1x128xbf16>,
         tensor<1x80x16xi32>, tensor<1x80xi32>) -> (tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>)
  return %o, %lse, %o2, %lse2 : tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>, tensor<1x80x4x128xbf16>, tensor<1x80x4xf32>
}
