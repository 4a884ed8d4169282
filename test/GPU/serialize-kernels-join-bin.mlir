// RUN: gsa-opt %s --gsa-serialize-kernels="format=bin" -verify-diagnostics

// Only PTX texts join: the parts that gsa-split-kernel-modules made of one
// module cannot become one cubin object, so a binary format refuses them.
module attributes {gpu.container_module} {
  // expected-error @below {{gsa-serialize-kernels: the kernels of 'bins' are in separate modules (gsa-split-kernel-modules), which only PTX (isa) can join into one object}}
  gpu.module @bins__a [#nvvm.target<chip = "sm_90a">] attributes {gsa.joins = "bins"} {
    llvm.func @a() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
  gpu.module @bins__b [#nvvm.target<chip = "sm_90a">] attributes {gsa.joins = "bins"} {
    llvm.func @b() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
}
