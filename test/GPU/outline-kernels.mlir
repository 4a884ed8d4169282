// RUN: gsa-opt %s --gsa-outline-kernels -split-input-file -verify-diagnostics | FileCheck %s

// gsa-outline-kernels: the named launch becomes a kernel of @gsa_kernels
// taking the buffers its body captured, with the known block size and
// 16-byte aligned workgroup buffers; a gpu.launch_func stays in its place.

// CHECK: module attributes {gpu.container_module}
// CHECK-LABEL: func.func @host
// CHECK-SAME: (%[[IN:.*]]: memref<256xf32>, %[[OUT:.*]]: memref<256xf32>)
// CHECK: gpu.launch_func @gsa_kernels::@host_copy blocks in (%c2, %c1, %c1) threads in (%c128, %c1, %c1) args(%[[IN]] : memref<256xf32>, %[[OUT]] : memref<256xf32>)
// CHECK-NOT: gpu.launch blocks
// CHECK: gpu.module @gsa_kernels
// CHECK: gpu.func @host_copy(%{{.*}}: memref<256xf32>, %{{.*}}: memref<256xf32>) workgroup(%{{.*}} : memref<128xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel attributes {known_block_size = array<i32: 128, 1, 1>
// CHECK: gpu.barrier
// CHECK: gpu.return
func.func @host(%in: memref<256xf32>, %out: memref<256xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c2, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1)
             workgroup(%buffer : memref<128xf32, #gpu.address_space<workgroup>>) {
    %c128i = arith.constant 128 : index
    %base = arith.muli %bx, %c128i : index
    %i = arith.addi %base, %tx : index
    %x = memref.load %in[%i] : memref<256xf32>
    memref.store %x, %buffer[%tx] : memref<128xf32, #gpu.address_space<workgroup>>
    gpu.barrier
    %y = memref.load %buffer[%tx] : memref<128xf32, #gpu.address_space<workgroup>>
    memref.store %y, %out[%i] : memref<256xf32>
    gpu.terminator
  } {gsa.kernel = "host_copy"}
  return
}

// -----

func.func @not_mapped(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{is still a block-level tile op: run gsa-stage-shared and gsa-map-tensor-cores before gsa-outline-kernels}}
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    gpu.terminator
  } {gsa.kernel = "not_mapped"}
  return
}
