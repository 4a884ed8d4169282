// RUN: gsa-opt %s --split-input-file --gsa-serialize-kernels -verify-diagnostics
// RUN: not gsa-opt %s --split-input-file --gsa-serialize-kernels="format=elf" 2>&1 | FileCheck %s --check-prefix=FORMAT

// FORMAT: gsa-serialize-kernels: unknown format 'elf' (isa, bin or fatbin)

module attributes {gpu.container_module} {
  // expected-error @below {{gsa-serialize-kernels: the module needs exactly one target attribute (gsa's pipeline attaches #nvvm.target)}}
  gpu.module @no_target {
    llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  // expected-error @below {{gsa-serialize-kernels: the module needs exactly one target attribute}}
  gpu.module @two_targets [#nvvm.target<chip = "sm_90a">, #nvvm.target<chip = "sm_80">] {
    llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
}
