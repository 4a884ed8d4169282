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

// -----

// A kernel on wgmma that still holds an instruction ptxas turns into a
// subroutine call (here an i64 division by a kernel argument: div.s64) is
// refused: such calls gave wrong outputs in wgmma kernels, and
// gsa-map-tensor-cores avoids every one it knows (a lowering bug if seen).
// The inline PTX stands in for a wgmma product.
module attributes {gpu.container_module} {
  // expected-error @below {{gsa-serialize-kernels: kernel 'on_wgmma' runs on wgmma and holds `div.s64`, which ptxas makes a subroutine call}}
  gpu.module @calls_in_wgmma [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    llvm.func @on_wgmma(%out: !llvm.ptr<1>, %x: i64, %y: i64) attributes {gpu.kernel, nvvm.kernel} {
      llvm.inline_asm has_side_effects "// wgmma.mma_async stand-in", "" : () -> ()
      %q = llvm.sdiv %x, %y : i64
      llvm.store %q, %out : i64, !llvm.ptr<1>
      llvm.return
    }
  }
}

// -----

// The same division in a kernel without wgmma is compiled (no diagnostic),
// and so is a wgmma kernel dividing by a constant (a multiply and shifts).
module attributes {gpu.container_module} {
  gpu.module @calls_elsewhere [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    llvm.func @no_wgmma(%out: !llvm.ptr<1>, %x: i64, %y: i64) attributes {gpu.kernel, nvvm.kernel} {
      %q = llvm.sdiv %x, %y : i64
      llvm.store %q, %out : i64, !llvm.ptr<1>
      llvm.return
    }
    llvm.func @wgmma_by_constant(%out: !llvm.ptr<1>, %x: i64) attributes {gpu.kernel, nvvm.kernel} {
      llvm.inline_asm has_side_effects "// wgmma.mma_async stand-in", "" : () -> ()
      %c = llvm.mlir.constant(7 : i64) : i64
      %q = llvm.sdiv %x, %c : i64
      llvm.store %q, %out : i64, !llvm.ptr<1>
      llvm.return
    }
  }
}

// -----

// The parts of one binary (gsa-split-kernel-modules) must share a target.
module attributes {gpu.container_module} {
  gpu.module @parts__a [#nvvm.target<chip = "sm_90a">] attributes {gsa.joins = "parts"} {
    llvm.func @a() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
  // expected-error @below {{gsa-serialize-kernels: the parts of 'parts' have different targets}}
  gpu.module @parts__b [#nvvm.target<chip = "sm_80">] attributes {gsa.joins = "parts"} {
    llvm.func @b() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
}
