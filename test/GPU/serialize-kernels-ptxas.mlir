// REQUIRES: ptxas
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=%ptxas" | FileCheck %s
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=%ptxas report-times=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=TIMES
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=/bin/false" | FileCheck %s --check-prefix=FAILED
// RUN: gsa-opt %s --gsa-serialize-kernels | FileCheck %s --check-prefix=FAILED
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=/bin/true" | FileCheck %s --check-prefix=FAILED
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=/bin/false report-times=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=WHY
// RUN: gsa-opt %s "--gsa-serialize-kernels=ptxas=/bin/true report-times=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EMPTY

// gsa-serialize-kernels with `ptxas`: each kernel's PTX assembled on its
// thread right after LLVM; the binary keeps the joined PTX and gets one
// cubin (an ELF image) per kernel, listing it.
// CHECK: gpu.binary @gsa_kernels
// CHECK-SAME: {gsa.cubins = [{image = "\7FELF{{[^"]*}}", kernels = ["first"]}, {image = "\7FELF{{[^"]*}}", kernels = ["second"]}]}
// CHECK-SAME: .visible .entry first(
// CHECK-SAME: .visible .entry second(

// report-times adds each kernel's ptxas time.
// TIMES-DAG: gsa-serialize-kernels: {{ *[0-9]+\.[0-9]}} ms first ({{.*}}, back end {{[0-9.]+}}, ptxas {{[0-9.]+}}){{$}}
// TIMES-DAG: gsa-serialize-kernels: {{ *[0-9]+\.[0-9]}} ms second ({{.*}}, back end {{[0-9.]+}}, ptxas {{[0-9.]+}}){{$}}

// A ptxas that fails, or writes no ELF image (/bin/true exits 0 and leaves
// its output file empty), or none: the PTX alone, for the runtime's ptxas
// or the driver's JIT; with report-times, why.
// FAILED: gpu.binary @gsa_kernels
// FAILED-NOT: gsa.cubins
// WHY: gsa-serialize-kernels: ptxas (/bin/false) failed with status 1
// EMPTY: gsa-serialize-kernels: ptxas (/bin/true) wrote no ELF image

module attributes {gpu.container_module} {
  gpu.module @gsa_kernels [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    llvm.func @first(%out: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
      %one = llvm.mlir.constant(1 : i32) : i32
      llvm.store %one, %out : i32, !llvm.ptr<1>
      llvm.return
    }
    llvm.func @second(%out: !llvm.ptr<1>, %x: i32) attributes {gpu.kernel, nvvm.kernel} {
      %three = llvm.mlir.constant(3 : i32) : i32
      %y = llvm.mul %x, %three : i32
      llvm.store %y, %out : i32, !llvm.ptr<1>
      llvm.return
    }
  }
}
