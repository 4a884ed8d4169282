// RUN: gsa-opt %s -split-input-file -verify-diagnostics --pass-pipeline='builtin.module(gpu.module(convert-gpu-to-nvvm,gsa-grid-constant-params))' | FileCheck %s
// RUN: sed '/^\/\/ -----/,$d' %s > %t.mlir
// RUN: gsa-opt %t.mlir --pass-pipeline='builtin.module(gpu.module(convert-gpu-to-nvvm,gsa-grid-constant-params),nvvm-attach-target{chip=sm_90a features=+ptx80},gsa-serialize-kernels)' | FileCheck %s --check-prefix=PTX

// A kernel names its tensor-map arguments in gsa.tensor_map_args (the
// conversion to LLVM keeps function attributes, not unknown argument
// ones); after it, gsa-grid-constant-params makes each a 128-byte,
// 64-byte aligned byval argument marked as a grid constant, which the
// NVPTX backend keeps in parameter space (.param .align 64 .b8 [128],
// its address by cvta.param) - where cp.async.bulk.tensor reads the map.
// The other arguments and the marker itself are left alone / removed.
// CHECK-LABEL: llvm.func @copy
// CHECK-SAME: (%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr {llvm.align = 64 : i64, llvm.byval = !llvm.array<128 x i8>, nvvm.grid_constant})
// CHECK-SAME: attributes {gpu.kernel, nvvm.kernel} {
// PTX: .visible .entry copy(\0A\09.param .u64 .ptr .align 1 copy_param_0,\0A\09.param .align 64 .b8 copy_param_1[128]\0A)
// PTX-SAME: mov.b64 \09%rd[[P:[0-9]+]], copy_param_1;\0A\09cvta.param.u64 \09%rd{{[0-9]+}}, %rd[[P]];
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @copy(%out: !llvm.ptr, %map: !llvm.ptr) kernel attributes {gsa.tensor_map_args = array<i32: 1>} {
      %a = llvm.inline_asm has_side_effects "mov.b64 $0, $1;", "=l,l" %map : (!llvm.ptr) -> i64
      llvm.store %a, %out : i64, !llvm.ptr
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @kernels {
    // expected-error @+1 {{'llvm.func' op gsa.tensor_map_args names argument 0, which is not an !llvm.ptr argument of this kernel}}
    gpu.func @scalar(%n: i64) kernel attributes {gsa.tensor_map_args = array<i32: 0>} {
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @kernels {
    // expected-error @+1 {{gsa.tensor_map_args names argument 3}}
    gpu.func @missing(%p: !llvm.ptr) kernel attributes {gsa.tensor_map_args = array<i32: 3>} {
      gpu.return
    }
  }
}
