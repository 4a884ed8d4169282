// RUN: gsa-opt %s --gsa-map-tensor-cores --canonicalize | FileCheck %s

// gsa-map-tensor-cores on a staged tile loop of one warp (16 rows: 4
// queries x G = 4 heads; d_k 64; 32-key chunks from shared rings). The
// tiles become the lanes' fragments: the loop carries 2 row maxima, 2
// partial row sums and 8 n-tiles x 4 accumulators, all f32.

// CHECK-LABEL: func.func @staged
// The constants of the softmax: the scale 1/8 (d_k 64), scale x log2e and
// -log2e.
// CHECK-DAG: %[[NEGLOG2E:[^ ]+]] = arith.constant -1.44269502 : f32
// CHECK-DAG: %[[SCALE:[^ ]+]] = arith.constant 1.250000e-01 : f32
// CHECK-DAG: %[[SCALELOG2E:[^ ]+]] = arith.constant 0.180336878 : f32
// CHECK-DAG: %[[ZERO:[^ ]+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[NEGINF:[^ ]+]] = arith.constant 0xFF800000 : f32
// CHECK: gpu.launch
// The query block: 4 k-steps x 4 packed pairs, loaded once.
// CHECK-COUNT-16: vector.load %{{.*}} : memref<32768xbf16>, vector<2xbf16>
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c1 iter_args({{.*}}) -> ({{(f32, ){35}f32}})
// S = Q K^T: per n-tile, two ldmatrix.x4 over the swizzled K slot, each
// feeding two k-steps.
// CHECK: memref.extract_aligned_pointer_as_index %[[KRING:arg[0-9]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>
// CHECK: arith.xori
// CHECK: nvvm.inline_ptx "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {$0, $1, $2, $3}, [$4];"
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// The scores (no score_mod): the accumulator as it is where the query's
// bit of the key's mask word is set, else -inf; the scale is left to the
// softmax.
// CHECK: %[[WORD:[^ ]+]] = memref.load %[[MRING:arg[0-9]+]][%{{.*}}, %{{.*}}] : memref<2x32xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[BIT:[^ ]+]] = arith.andi %[[WORD]], %{{.*}} : i32
// CHECK-NEXT: %[[MEMBER:[^ ]+]] = arith.cmpi ne, %[[BIT]], %c0_i32 : i32
// CHECK-NEXT: %[[S0:[^ ]+]] = arith.select %[[MEMBER]], %{{[0-9]+}}#0, %[[NEGINF]] : f32
// Row maxima over the lane's 8 scores of a row (a chain of 7), then over the quad; the
// maximum scaled once per row.
// CHECK: arith.maximumf %[[S0]], %{{.*}} : f32
// CHECK-COUNT-6: arith.maximumf
// CHECK-NEXT: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK-NEXT: arith.maximumf
// CHECK-NEXT: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK-NEXT: %[[MX:[^ ]+]] = arith.maximumf
// CHECK-NEXT: %[[MXS:[^ ]+]] = arith.mulf %[[MX]], %[[SCALE]] : f32
// CHECK-NEXT: %[[MNEW:[^ ]+]] = arith.maximumf %{{.*}}, %[[MXS]] : f32
// CHECK-NEXT: %[[EMPTY:[^ ]+]] = arith.cmpf oeq, %[[MNEW]], %[[NEGINF]] : f32
// The rescale factor, then -m log2e (0 for a row without members so far).
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// CHECK: %[[NML:[^ ]+]] = arith.mulf %[[MNEW]], %[[NEGLOG2E]] : f32
// CHECK-NEXT: %[[NMLSAFE:[^ ]+]] = arith.select %[[EMPTY]], %[[ZERO]], %[[NML]] : f32
// Each probability: one fma and one exp2, no select (2^-inf = 0).
// CHECK: %[[ARG0:[^ ]+]] = llvm.intr.fma(%[[S0]], %[[SCALELOG2E]], %[[NMLSAFE]]) : (f32, f32, f32) -> f32
// CHECK-NEXT: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;" ro(%[[ARG0]] : f32) -> f32
// CHECK-NEXT: arith.addf
// P V: probabilities packed as bf16 pairs (the A operand), V's B
// fragments by transposed ldmatrix.
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: vector.bitcast %{{.*}} : vector<2xbf16> to vector<1xi32>
// CHECK: nvvm.inline_ptx "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: scf.yield
// After the loop: the sums over the quad, 1 / l, the output gate, lse.
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK: arith.divf
// CHECK: scf.if
// CHECK: gsa.sigmoid
// CHECK: vector.store %{{.*}} : memref<32768xbf16>, vector<2xbf16>
// CHECK: nvvm.inline_ptx "lg2.approx.ftz.f32 $0, $1;"
// CHECK: memref.store %{{.*}} : memref<512xf32>
// CHECK-NOT: gsa.tile
func.func @staged(%q: memref<1x64x8x64xbf16>, %sizes: memref<16xi32>,
                  %go: memref<1x64x8x64xbf16>, %out: memref<1x64x8x64xbf16>,
                  %lse: memref<1x64x8xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c16, %gy = %c2, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1)
             workgroup(%kring : memref<2x32x64xbf16, #gpu.address_space<workgroup>>,
                       %vring : memref<2x32x64xbf16, #gpu.address_space<workgroup>>,
                       %mring : memref<2x32xi32, #gpu.address_space<workgroup>>) {
    %tile = gpu.block_id x
    %kvh = gpu.block_id y
    %b = gpu.block_id z
    %c0 = arith.constant 0 : index
    %c1i = arith.constant 1 : index
    %c2i = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c32i = arith.constant 32 : index
    %t0 = arith.muli %tile, %c4 : index
    %qt = gsa.tile.load_queries %q[%b, %t0, %kvh] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xbf16>
    %size32 = memref.load %sizes[%tile] : memref<16xi32>
    %size = arith.index_cast %size32 : i32 to index
    %n = arith.ceildivui %size, %c32i : index
    %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
    %l0 = arith.constant dense<0.0> : tensor<16xf32>
    %acc0 = arith.constant dense<0.0> : tensor<16x64xf32>
    %r:3 = scf.for %c = %c0 to %n step %c1i iter_args(%m = %m0, %l = %l0, %acc = %acc0)
        -> (tensor<16xf32>, tensor<16xf32>, tensor<16x64xf32>) {
      %slot = arith.remui %c, %c2i : index
      %kt = gsa.tile.shared_tile %kring[%slot] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
      %vt = gsa.tile.shared_tile %vring[%slot] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
      %mt = gsa.tile.shared_tile %mring[%slot] : memref<2x32xi32, #gpu.address_space<workgroup>> -> tensor<32xi32>
      %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x32xf32>
      %sc = gsa.tile.scores %s members(%mt) rows[%b, %t0, %kvh] scale(0.125) group 4 : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
      %p, %m2, %l2, %alpha = gsa.tile.online_softmax %sc, %m, %l : tensor<16x32xf32>, tensor<16xf32> -> tensor<16x32xbf16>
      %ra = gsa.tile.rescale %acc by %alpha : tensor<16x64xf32>, tensor<16xf32>
      %pv = gsa.tile.dot %p, %vt acc(%ra : tensor<16x64xf32>) : tensor<16x32xbf16>, tensor<32x64xbf16> -> tensor<16x64xf32>
      scf.yield %m2, %l2, %pv : tensor<16xf32>, tensor<16xf32>, tensor<16x64xf32>
    }
    gsa.tile.store_output %r#2, %r#0, %r#1 into %out, %lse[%b, %t0, %kvh] gate(%go : memref<1x64x8x64xbf16>) group 4 : tensor<16x64xf32>, tensor<16xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
    gpu.terminator
  }
  return
}
