// RUN: gsa-opt %s --gsa-stage-shared -split-input-file -verify-diagnostics

// gsa-stage-shared's located errors.

// A gather whose offset depends on a loop-carried value cannot be issued
// a chunk ahead.
func.func @carried_offset(%k: memref<1x64x2x64xbf16>, %keys: memref<4096xi32>) {
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    %r = scf.for %c = %c0 to %c4 step %c1 iter_args(%off = %c0) -> (index) {
      // expected-error @+1 {{gsa-stage-shared: the rows this gather reads are not a pure function of the loop's induction variable}}
      %kt = gsa.tile.gather_rows %k[%c0, %c0] rows %keys[%off] count %c32 : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
      %next = arith.addi %off, %c32 : index
      scf.yield %next : index
    }
    gpu.terminator
  }
  return
}

// -----

func.func @too_big(%k: memref<1x64x2x128xbf16>, %v: memref<1x64x2x128xbf16>, %keys: memref<4096xi32>) {
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    %c4 = arith.constant 4 : index
    %c64 = arith.constant 64 : index
    // expected-error @+1 {{gsa-stage-shared: 2 stages of this loop's chunks need 65536 bytes of shared memory, more than the 49152 of static shared memory}}
    scf.for %c = %c0 to %c4 step %c1 {
      %off = arith.muli %c, %c64 : index
      %kt = gsa.tile.gather_rows %k[%c0, %c0] rows %keys[%off] count %c64 : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<64x128xbf16>
      %vt = gsa.tile.gather_rows %v[%c0, %c0] rows %keys[%off] count %c64 : memref<1x64x2x128xbf16>, memref<4096xi32> -> tensor<64x128xbf16>
    }
    gpu.terminator
  }
  return
}

// -----

func.func @buffer_in_loop(%k: memref<1x64x2x64xbf16>, %keys: memref<4096xi32>) {
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    scf.for %c = %c0 to %c4 step %c1 {
      %off = arith.muli %c, %c32 : index
      %kk = memref.cast %keys : memref<4096xi32> to memref<4096xi32>
      // expected-error @+1 {{gsa-stage-shared: the buffers a gather reads must be defined outside its loop}}
      %kt = gsa.tile.gather_rows %k[%c0, %c0] rows %kk[%off] count %c32 : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
    }
    gpu.terminator
  }
  return
}
