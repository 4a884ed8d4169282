// RUN: gsa-opt %s --gsa-map-tensor-cores -split-input-file -verify-diagnostics

// gsa-map-tensor-cores' located errors.

func.func @unstaged(%k: memref<1x64x2x64xbf16>, %keys: memref<4096xi32>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{gsa-map-tensor-cores: row gathers must be staged in shared memory first (run gsa-stage-shared)}}
    %kt = gsa.tile.gather_rows %k[%c0, %c0] rows %keys[%c0] count %c32 : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
    gpu.terminator
  }
  return
}

// -----

func.func @rows_per_warp(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{gsa-map-tensor-cores: a tile of 1 warps has 16 rows and d_k a multiple of 16, but this one is 32x64}}
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<32x64xbf16>
    gpu.terminator
  }
  return
}

// -----

func.func @foreign_user(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    // expected-error @+1 {{gsa-map-tensor-cores: cannot map this op on a tile value}}
    %x = tensor.extract %qt[%c0, %c0] : tensor<16x64xbf16>
    gpu.terminator
  }
  return
}

// -----

func.func @unstaged_rhs(%q: memref<1x64x8x64xbf16>, %k: memref<1x64x2x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    // expected-error @+1 {{gsa-map-tensor-cores: rhs must be a shared-memory tile here (run gsa-stage-shared first)}}
    %s = gsa.tile.dot %qt, %qt transpose_rhs : tensor<16x64xbf16>, tensor<16x64xbf16> -> tensor<16x16xf32>
    gpu.terminator
  }
  return
}

// -----

func.func @tile_through_if(%q: memref<1x64x8x64xbf16>, %cond: i1) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    // expected-error @+1 {{gsa-map-tensor-cores: tiles flow only through gsa.tile ops and scf.for; this op returns a tile it cannot map}}
    %r = scf.if %cond -> (tensor<16xf32>) {
      %m0 = arith.constant dense<0.0> : tensor<16xf32>
      scf.yield %m0 : tensor<16xf32>
    } else {
      %m1 = arith.constant dense<1.0> : tensor<16xf32>
      scf.yield %m1 : tensor<16xf32>
    }
    %c0 = arith.constant 0 : index
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    gpu.terminator
  }
  return
}

// -----

func.func @group_of_three(%q: memref<1x64x6x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c96 = arith.constant 96 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c96, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{gsa-map-tensor-cores: a warp's 16 rows hold whole queries only for a group dividing 16, but the group is 3}}
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 3 : memref<1x64x6x64xbf16> -> tensor<48x64xbf16>
    gpu.terminator
  }
  return
}

// -----

func.func @scalar_tile_constant(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{gsa-map-tensor-cores: a tile constant must be an f32 splat of rank 1 (rows) or 2 (a tile)}}
    %z = arith.constant dense<0.0> : tensor<f32>
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    gpu.terminator
  }
  return
}

// -----

// Scores without a score_mod leave their scale to the online softmax, so
// no other op may read them.
func.func @scores_to_rescale(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1)
             workgroup(%kring : memref<2x32x64xbf16, #gpu.address_space<workgroup>>,
                       %mring : memref<2x32xi32, #gpu.address_space<workgroup>>) {
    %c0 = arith.constant 0 : index
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    %kt = gsa.tile.shared_tile %kring[%c0] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
    %mt = gsa.tile.shared_tile %mring[%c0] : memref<2x32xi32, #gpu.address_space<workgroup>> -> tensor<32xi32>
    %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x32xf32>
    %sc = gsa.tile.scores %s members(%mt) rows[%c0, %c0, %c0] scale(0.125) group 4 : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
    %f = arith.constant dense<1.0> : tensor<16xf32>
    // expected-error @+1 {{gsa-map-tensor-cores: acc is a scores tile, which only gsa.tile.online_softmax reads}}
    %r = gsa.tile.rescale %sc by %f : tensor<16x32xf32>, tensor<16xf32>
    gpu.terminator
  }
  return
}

// -----

// Nor may a loop carry them (its flattened values would lose the scale).
func.func @scores_through_loop(%q: memref<1x64x8x64xbf16>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1)
             workgroup(%kring : memref<2x32x64xbf16, #gpu.address_space<workgroup>>,
                       %mring : memref<2x32xi32, #gpu.address_space<workgroup>>) {
    %c0 = arith.constant 0 : index
    %c2 = arith.constant 2 : index
    %qt = gsa.tile.load_queries %q[%c0, %c0, %c0] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    %kt = gsa.tile.shared_tile %kring[%c0] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
    %mt = gsa.tile.shared_tile %mring[%c0] : memref<2x32xi32, #gpu.address_space<workgroup>> -> tensor<32xi32>
    %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x32xf32>
    %sc = gsa.tile.scores %s members(%mt) rows[%c0, %c0, %c0] scale(0.125) group 4 : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
    %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
    %l0 = arith.constant dense<0.0> : tensor<16xf32>
    // expected-error @+1 {{gsa-map-tensor-cores: carried tile #0 is a scores tile, which only gsa.tile.online_softmax reads}}
    %r:3 = scf.for %i = %c0 to %c2 step %c1 iter_args(%t = %sc, %m = %m0, %l = %l0) -> (tensor<16x32xf32>, tensor<16xf32>, tensor<16xf32>) {
      %p, %m2, %l2, %a = gsa.tile.online_softmax %t, %m, %l : tensor<16x32xf32>, tensor<16xf32> -> tensor<16x32xbf16>
      scf.yield %t, %m2, %l2 : tensor<16x32xf32>, tensor<16xf32>, tensor<16xf32>
    }
    gpu.terminator
  }
  return
}
