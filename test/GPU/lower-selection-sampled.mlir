// RUN: gsa-opt %s --gsa-lower-selection | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection="select-sampled=0" | FileCheck %s --check-prefix=RADIX
// RUN: gsa-opt %s --gsa-lower-selection="select-max-registers=96" | FileCheck %s --check-prefix=CAP
// RUN: gsa-opt %s --gsa-lower-selection | FileCheck %s --check-prefix=FIXED
// RUN: gsa-opt %s --gsa-lower-selection="select-sampled=0 select-wgmma-stages=4" | FileCheck %s --check-prefix=WGRADIX
// RUN: gsa-opt %s --gsa-lower-selection | FileCheck %s --check-prefix=SIZES
// RUN: gsa-opt %s --gsa-lower-selection="select-dense-tiles=0" | FileCheck %s --check-prefix=NODENSE
// RUN: gsa-opt %s --gsa-lower-selection | FileCheck %s --check-prefix=CLAMP

// The sampled selection (the default with the tensor-core indexer): B = 2,
// L = 100, k_max = 32, so the sample aims at 32 + 8 + 128 = 168 candidates
// per row and a row would keep at most 32 + 24 + 256 = 312 - but has no
// more than L = 100 keys: 100 per row (20000 for the 200 rows). The sample
// kernel writes each row's
// cut; the stats kernel reads it and collects candidate keys, positions and
// counts; after V_bar the finish kernel (one CTA per row: a 100 x 2 grid)
// selects among them and marks the rows it finished, which the radix topk
// kernel then leaves alone.
// CHECK-LABEL: func.func @select
// CHECK: memref.alloc() : memref<2x100xi32>
// CHECK: %[[CUTS:.*]] = memref.alloc() : memref<200xi32>
// CHECK: %[[KEYS:.*]] = memref.alloc() : memref<20000xi32>
// CHECK: %[[POS:.*]] = memref.alloc() : memref<20000xi32>
// CHECK: %[[COUNTS:.*]] = memref.alloc() : memref<200xi32>
// CHECK: %[[DONE:.*]] = memref.alloc() : memref<200xi32>
// The sample's histograms (8 rows x 2048 bins of i32) are the launch's
// dynamic shared memory.
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_sample blocks in (%c13, %c2, %c1) threads in (%c256
// CHECK-SAME: dynamic_shared_memory_size %c65536_i32
// CHECK-SAME: %[[CUTS]] : memref<200xi32>)
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats
// CHECK-SAME: %[[CUTS]] : memref<200xi32>, %[[KEYS]] : memref<20000xi32>, %[[POS]] : memref<20000xi32>, %[[COUNTS]] : memref<200xi32>)
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_vbar
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_finish blocks in (%c100, %c2
// CHECK-SAME: %[[KEYS]] : memref<20000xi32>, %[[POS]] : memref<20000xi32>, %[[COUNTS]] : memref<200xi32>, %[[DONE]] : memref<200xi32>
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_topk
// CHECK-SAME: %[[DONE]] : memref<200xi32>)

// The sample kernel: a min/max sweep and a histogram sweep, and a third
// (the histogram inside the chosen bin) only where a row's chosen bin is
// crowded; the sweeps' products on mma. The first carries each slot's
// smallest and largest key through its loops and publishes them once per
// warp and row (xor shuffles, then the shared atomics); the histograms
// count with shared atomics per visit into the dynamic shared memory.
// CHECK: gpu.func @select_1_select_sample
// CHECK: %[[DYN:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[HIST:.*]] = memref.view %[[DYN]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16384xi32, #gpu.address_space<workgroup>>
// The tile's staged head weights and bias (and the row minima and maxima)
// are written before a barrier that precedes their reads and the sweeps.
// CHECK: memref.store %{{.*}}, %[[WEIGHTS:.*]][%{{.*}}] : memref<32xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK-NOT: mma.sync
// CHECK: memref.load %[[WEIGHTS]][%{{.*}}] : memref<32xf32, #gpu.address_space<workgroup>>
// The key range: the head and tail chunks whole, then every eighth round
// of the sampled span (step 8). The sampled rounds carry the next round's
// key fragments (8 registers at d_I = 64), loaded before this round's
// products use the carried ones.
// CHECK: scf.for {{.*}} step %c1{{[_0-9]*}} iter_args{{.*}} -> (i32, i32, i32, i32)
// CHECK: vector.load %arg1[%{{.*}}] {{.*}} vector<16xbf16>
// CHECK: scf.for {{.*}} step %c8{{[_0-9]*}} iter_args{{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32)
// CHECK: vector.load %arg1[%{{.*}}] {{.*}} vector<16xbf16>
// CHECK: mma.sync
// CHECK: arith.minui
// CHECK: arith.maxui
// CHECK: scf.yield
// CHECK: gpu.shuffle xor
// CHECK: memref.atomic_rmw minu
// CHECK: memref.atomic_rmw maxu
// The histogram sweep: weight 1 for the head and tail keys, 16 for the
// sampled span's (its rounds carrying the next round's fragments too).
// CHECK: mma.sync
// CHECK: memref.atomic_rmw addi %c1_i32{{[_0-9]*}}, %[[HIST]]
// CHECK: scf.for {{.*}} iter_args{{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32)
// CHECK: vector.load %arg1[%{{.*}}] {{.*}} vector<16xbf16>
// CHECK: mma.sync
// CHECK: memref.atomic_rmw addi %c16_i32{{[_0-9]*}}, %[[HIST]]
// CHECK: gpu.barrier
// Warp w scans rows w, w + 8, ... (one row here) for the bin where the
// count from the top reaches the adaptive goal (168): 64 bins per lane, a
// shuffle scan of the lanes' sums, the owning lane's walk, its answer to
// every lane by max shuffles; a bin with more than 168 / 4 = 42 keys is
// crowded and flags the tile.
// CHECK: scf.for %[[ROW:.*]] = %{{.*}} to %c8{{[_0-9]*}} step %c8
// CHECK: arith.constant 168 : i32
// CHECK: scf.for {{.*}} to %c64{{[_0-9]*}} step {{.*}} -> (i32)
// CHECK: gpu.shuffle  up
// CHECK: scf.for {{.*}} to %c64{{[_0-9]*}} step {{.*}} -> (i32, i32, i32, i32)
// CHECK: gpu.shuffle  xor
// CHECK-NEXT: arith.maxsi
// CHECK: arith.constant 42 : i32
// CHECK: arith.cmpi sgt
// CHECK: memref.store {{.*}}[%[[ROW]]]
// CHECK: gpu.barrier
// The third sweep under the tile's flag: the histograms cleared, then
// counted again inside each crowded row's bin.
// CHECK: %[[FLAG:.*]] = memref.load %{{.*}}[%c0{{[_0-9]*}}] : memref<1xi32, #gpu.address_space<workgroup>>
// CHECK: %[[ANY:.*]] = arith.cmpi ne, %[[FLAG]]
// CHECK: scf.if %[[ANY]] {
// CHECK: memref.store %c0_i32{{[_0-9]*}}, %[[HIST]]
// CHECK: gpu.barrier
// CHECK: mma.sync
// CHECK: memref.atomic_rmw addi %c1_i32{{[_0-9]*}}, %[[HIST]]
// CHECK: memref.atomic_rmw addi %c16_i32{{[_0-9]*}}, %[[HIST]]
// CHECK: gpu.barrier
// CHECK: scf.for {{.*}} step %c8
// CHECK: gpu.shuffle  up
// CHECK: gpu.barrier
// CHECK: gpu.return
// The sigmoid activation folded into one tanh per head (no sigmoid op, no
// 0.5 * tanh + 0.5 left per head).
// CHECK: gpu.func @select_1_select_stats
// CHECK: tanh.approx.f32
// The inverse policy needs each row's variance: the bulk and the masked
// loop carry the two slots' f64 sums (the fixed policy's, FIXED below, do
// not).
// CHECK: scf.for {{.*}} -> (f64, f64, f64, f64, i32, i32, i32, i32, i32, i32, i32, i32, f32, f32)
// CHECK: scf.for {{.*}} -> (f64, f64, f64, f64, i32, i32, i32, i32, i32, i32, i32, i32)
// The finish kernel: the compact path or radix passes, then the bitmap
// write-out with its block prefix.
// CHECK: gpu.func @select_1_select_finish
// Without the wgmma statistics sweep (sm_90) no L2 bulk prefetch
// (select-tma.mlir has it).
// CHECK-NOT: cp.async.bulk.prefetch
// The compact path first, for rows whose positions fit one bitmap window
// (131072): a 2048-bin histogram of key - cut over the row's candidates,
// the block's search for the bin of the k-th largest (8 bins a thread), then -
// where that bin holds at most 512 candidates - a second sweep that sets
// the bits above the bin and lists the bin's keys and positions in shared
// memory, each listed candidate ranked against the others (a larger key,
// or an equal key at a larger position), and the write-out below.
// CHECK: %[[ONEWINDOW:.*]] = arith.cmpi ule, %{{.*}}, %c131072 : index
// CHECK-NEXT: scf.if %[[ONEWINDOW]] {
// CHECK: scf.for %{{.*}} = %thread_id_x to %c2048 step %c256
// CHECK: memref.store %c0_i32{{[_0-9]*}}, %[[FHIST:.*]][%{{.*}}] : memref<2048xi32, #gpu.address_space<workgroup>>
// The lead's -1 (no bin yet) before the barrier; then the keys 8 a thread
// (a step of 8 x 256).
// CHECK: memref.store %c-1_i32{{[_0-9]*}}, %{{.*}}[%c0{{[_0-9]*}}] : memref<4xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: scf.for %{{.*}} = %thread_id_x to %{{.*}} step %c2048
// CHECK-COUNT-8: memref.load %{{.*}} : memref<20000xi32>
// The bin of key - cut (a key below the cut, which the stats sweep never
// takes, would count in bin 0, not wrap around), clamped to the last.
// CHECK: %[[ATLEAST:.*]] = arith.maxui %{{.*}}, %[[CUT:.*]] : i32
// CHECK-NEXT: %[[ABOVECUT:.*]] = arith.subi %[[ATLEAST]], %[[CUT]] : i32
// CHECK: %[[SHIFTED:.*]] = arith.shrui %[[ABOVECUT]], %{{.*}} : i32
// CHECK-NEXT: arith.minui %[[SHIFTED]], %c2047_i32 : i32
// CHECK: memref.atomic_rmw addi %c1_i32{{[_0-9]*}}, %[[FHIST]]
// CHECK: gpu.barrier
// The k-th's bin found by the whole block: 8 bins a thread, a block scan
// (a warp scan, the warp totals through shared memory after a barrier),
// and the thread whose bins reach k walks them and writes the bin.
// CHECK-COUNT-8: memref.load %[[FHIST]]
// CHECK-NOT: memref.load %[[FHIST]]
// CHECK: gpu.shuffle  up
// CHECK: gpu.barrier
// CHECK: %[[ABOVE:.*]] = arith.subi %{{.*}}, %[[OWN:.*]] : i32
// CHECK-NEXT: %[[INCL:.*]] = arith.addi %[[ABOVE]], %[[OWN]] : i32
// CHECK-NEXT: %[[REACHES:.*]] = arith.cmpi sge, %[[INCL]], %[[GOAL:.*]] : i32
// CHECK-NEXT: %[[BELOW:.*]] = arith.cmpi slt, %[[ABOVE]], %[[GOAL]] : i32
// CHECK-NEXT: %[[MINE:.*]] = arith.andi %[[BELOW]], %[[REACHES]] : i1
// CHECK-NEXT: scf.if %[[MINE]] {
// CHECK-COUNT-8: arith.cmpi sge, %{{.*}}, %[[GOAL]] : i32
// CHECK: memref.store {{.*}} : memref<4xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: %[[SMALLBIN:.*]] = arith.cmpi sle, %{{.*}}, %c512_i32 : i32
// CHECK: %[[FOUND:.*]] = arith.cmpi sge, %[[BIN:.*]], %c0_i32{{[_0-9]*}} : i32
// CHECK: %[[BOTH:.*]] = arith.andi %[[FOUND]], %[[SMALLBIN]] : i1
// CHECK: %[[COMPACT:.*]] = arith.andi %[[BOTH]], %[[ONEWINDOW]] : i1
// CHECK: scf.if %[[COMPACT]] {
// CHECK: arith.cmpi ugt, %{{.*}}, %[[BIN]] : i32
// CHECK: memref.atomic_rmw ori
// CHECK: arith.cmpi eq, %{{.*}}, %[[BIN]] : i32
// CHECK: memref.atomic_rmw addi %c1_i32{{[_0-9]*}}, %{{.*}}[%c3{{[_0-9]*}}] : (i32, memref<4xi32, #gpu.address_space<workgroup>>) -> i32
// CHECK: memref.store {{.*}} : memref<512xi32, #gpu.address_space<workgroup>>
// CHECK: memref.store {{.*}} : memref<512xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: scf.for {{.*}} -> (index)
// CHECK-DAG: arith.cmpi ugt
// CHECK-DAG: arith.cmpi eq
// CHECK-DAG: arith.cmpi sgt
// CHECK: memref.atomic_rmw ori
// CHECK: llvm.intr.ctpop
// CHECK: "llvm.intr.cttz"
// The other rows: radix passes over the candidates with a warp scan of
// the histogram.
// CHECK: } else {
// CHECK: memref.atomic_rmw addi
// CHECK: gpu.shuffle  up
// The write-out: the taken positions set bits of the bitmap; the used
// words (1024 positions = 32 words per 32-word step, at most 4096) are
// shared evenly among the 8 warps in whole steps - warp w from word
// w x share x 32 - and read 32 at a time, lane l word 32s + l of step s
// (no bank conflicts): a popcount pass, the block's exclusive sum, the
// warp's base from lane 0, then per step a warp scan of the popcounts, the
// step's total from lane 31, and each lane's bits written from its offset.
// CHECK: memref.atomic_rmw ori
// CHECK: gpu.barrier
// CHECK: %[[USED:.*]] = arith.minui %c4096{{[_0-9]*}}, %{{.*}} : index
// CHECK: %[[WSTEPS:.*]] = arith.divui %[[USED]], %c32{{[_0-9]*}} : index
// CHECK: %[[ROUNDED:.*]] = arith.addi %[[WSTEPS]], %c7{{[_0-9]*}} : index
// CHECK: %[[SHARE:.*]] = arith.divui %[[ROUNDED]], %c8{{[_0-9]*}} : index
// CHECK: %[[SHAREWORDS:.*]] = arith.muli %[[SHARE]], %c32{{[_0-9]*}} : index
// CHECK: %[[FIRST:.*]] = arith.muli %{{.*}}, %[[SHAREWORDS]] : index
// CHECK: %[[STEPS:.*]] = arith.minui %[[SHARE]], %{{.*}} : index
// CHECK: scf.for %[[S:.*]] = %c0 to %[[STEPS]] step %{{.*}} iter_args(%{{.*}}) -> (i32) {
// CHECK-NEXT: %c32{{[_0-9]*}} = arith.constant 32 : index
// CHECK-NEXT: %[[IN:.*]] = arith.muli %[[S]], %c32{{[_0-9]*}} : index
// CHECK-NEXT: %[[LANEWORD:.*]] = arith.addi %[[IN]], %{{.*}} : index
// CHECK-NEXT: %[[W:.*]] = arith.addi %[[FIRST]], %[[LANEWORD]] : index
// CHECK-NEXT: %[[WORD:.*]] = memref.load %{{.*}}[%[[W]]] : memref<4096xi32
// CHECK-NEXT: llvm.intr.ctpop(%[[WORD]])
// CHECK: gpu.barrier
// CHECK: gpu.shuffle  idx %{{.*}}, %c0_i32
// CHECK: scf.for %{{.*}} = %c0 to %[[STEPS]] step %{{.*}} iter_args(%{{.*}}) -> (i32) {
// A step none of whose words holds a bit skips the scan.
// CHECK: nvvm.vote.sync  ballot
// CHECK: scf.if
// CHECK-COUNT-5: gpu.shuffle  up
// CHECK: gpu.shuffle  idx %{{.*}}, %c31_i32
// CHECK: "llvm.intr.cttz"(%{{.*}}) <{is_zero_poison = true}>
// CHECK: gpu.barrier
// CHECK: gpu.func @select_1_select_topk

// The radix passes skip the bits the row's keys share, from the stats
// kernel's key range (its smallest and largest key, radix-only run). With the stats
// sweep on wgmma its scores are summed in another order than the topk
// kernel's, so that range is not taken: the full 32 bits (0 xor ~0).
// WGRADIX: gpu.func @select_1_select_topk
// WGRADIX: %[[DIFF:.*]] = arith.xori %c0_i32{{[_0-9]*}}, %c-1_i32{{[_0-9]*}} : i32
// WGRADIX-NEXT: "llvm.intr.ctlz"(%[[DIFF]])
// The write-out stays inside the row's K slots whatever the keys.
// WGRADIX: %[[INSIDE:.*]] = arith.cmpi ult, %{{.*}}, %c32{{[_0-9]*}} : index
// WGRADIX-NEXT: %[[WRITE:.*]] = arith.andi %{{.*}}, %[[INSIDE]] : i1
// WGRADIX-NEXT: scf.if %[[WRITE]] {

// RADIX-LABEL: func.func @select
// RADIX-NOT: select_sample
// RADIX-NOT: select_finish
// RADIX: gpu.launch_func @gsa_kernels::@select_1_select_stats
// RADIX: gpu.launch_func @gsa_kernels::@select_1_select_vbar
// RADIX: gpu.launch_func @gsa_kernels::@select_1_select_topk
// RADIX: gpu.func @select_1_select_stats
// RADIX: scf.for {{.*}} -> (f64, f64, i32, i32, f64, f64, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32)
// RADIX: gpu.func @select_1_select_topk
// RADIX: %[[MN:.*]] = memref.load %{{.*}} : memref<200xi32>
// RADIX-NEXT: %[[MX:.*]] = memref.load %{{.*}} : memref<200xi32>
// RADIX-NEXT: %[[DIFF:.*]] = arith.xori %[[MN]], %[[MX]] : i32
// RADIX-NEXT: "llvm.intr.ctlz"(%[[DIFF]])

// CAP: gpu.func @select_1_select_sample
// CAP-SAME: nvvm.maxnreg = 96
// CAP: gpu.func @select_1_select_stats
// CAP-SAME: nvvm.maxnreg = 96
// The finish kernel keeps its own cap (48: five CTAs per SM), whatever the
// sweeps' cap.
// CAP: gpu.func @select_1_select_finish
// CAP-SAME: nvvm.maxnreg = 48
// CAP: gpu.func @select_1_select_topk
// CAP-SAME: nvvm.maxnreg = 96
// No load of the sample kernel leaves ki (here [1, 16384, 64]): each of its
// nine key-fragment loads (the head and tail chunks, the sampled rounds and
// the loads a round ahead, for the histogram, range and crowded-bin sweeps)
// reads a key clamped to L - 1 = 16383. The last round's warps past the
// sampled span take n-tiles past keyEnd - for the last tiles past L -, whose
// visits are masked; unclamped, those loads read up to 64 keys (8 KiB) past
// ki, which faulted wherever ki ended its allocation (gsa_bench.py at 64K).
// CLAMP-LABEL: gpu.func @select_fixed_sizes_2048_7_select_sample
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP: arith.minui %{{.*}}, %c16383{{(_[0-9]+)?}} : index
// CLAMP-NOT: vector.load %arg1[
// CLAMP: vector.load %arg1[{{.*}} : memref<1048576xbf16>, vector<16xbf16>
// CLAMP-NOT: vector.load %arg1[
// CLAMP-LABEL: gpu.func @select_fixed_sizes_2048_7_select_stats

func.func @select(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>,
                  %wi: tensor<2x100x4xbf16>, %bi: tensor<4xbf16>, %rv: tensor<f32>)
    -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>, tensor<2x100x4xbf16>, tensor<4xbf16>)
        -> tensor<2x100x100xf32>
  %idx, %cnt, %nv = gsa.adaptive_topk %I policy = inverse k = 16 in [4, 32]
      running_var(%rv) training
      : (tensor<2x100x100xf32>, tensor<f32>) -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>)
  return %idx, %cnt, %nv : tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>
}


// The fixed policy's budget is known (clamp(8, 4, 32) = 8): the candidates
// are sized for it, the sample kernel's target 8 + 8/2 + 128 = 140 and the
// capacity 2 x 140 + 256 + 3 x 8 / 4 = 542 per row - but no row has more
// than L = 100 keys: 100 per row (20000 for the 200 rows).
// FIXED-LABEL: func.func @select_fixed
// FIXED: %[[FKEYS:.*]] = memref.alloc() : memref<20000xi32>
// FIXED: memref.alloc() : memref<20000xi32>
// FIXED: gpu.launch_func @gsa_kernels::@select_fixed_3_select_sample
// FIXED-SAME: : memref<200xi32>)
// FIXED: gpu.launch_func @gsa_kernels::@select_fixed_3_select_stats
// FIXED-SAME: %[[FKEYS]] : memref<20000xi32>
// Collecting, the stats sweep keeps the row's largest key by a shared
// atomic on the taken branch: no smallest / largest key per visit (RADIX,
// above, carries them). The fixed policy's budget reads no mean or
// variance and nothing trains here, so the loops carry no f64 sums either
// (RADIX's inverse policy does): only the key fragments loaded ahead. The
// bulk loop (under an scf.if: only where it has chunks) is
// software-pipelined: it also carries the two slots' scores of the chunk
// whose candidates the next iteration takes; then the masked loop.
// A sample tile whose real rows all see at most `capacity` keys (keyEnd =
// min(t0 + rows, L) <= 100: the capacity is capped at L, so here every
// tile) stores the cut 0 and skips its sweeps.
// FIXED: gpu.func @select_fixed_3_select_sample
// FIXED: %[[KEYEND:.*]] = arith.minui %{{.*}}, %c100{{[_0-9]*}} : index
// FIXED: %[[SAMPLED:.*]] = arith.cmpi ugt, %[[KEYEND]], %c100{{[_0-9]*}} : index
// FIXED: %[[WHOLE:.*]] = arith.cmpi eq, %[[SAMPLED]], %false
// FIXED-NEXT: scf.if %[[WHOLE]] {
// FIXED: memref.store %c0_i32, %arg4
// FIXED: scf.if %[[SAMPLED]] {
// FIXED: arith.constant 140 : i32
// FIXED: gpu.func @select_fixed_3_select_stats
// FIXED: %[[KEYEND2:.*]] = arith.minui %{{.*}}, %c100{{[_0-9]*}} : index
// FIXED: %[[DENSE:.*]] = arith.cmpi ule, %[[KEYEND2]], %c100{{[_0-9]*}} : index
// FIXED-NOT: f64, f64
// FIXED: scf.for {{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32, f32, f32)
// FIXED: scf.for {{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32)
// FIXED: memref.atomic_rmw maxu
// FIXED-NEXT: arith.constant 1 : i32
// FIXED-NEXT: memref.atomic_rmw addi
// A dense tile (the else branch) sweeps its chunks masked and stores
// every visible key at its own position's slot: no atomics.
// FIXED: } else {
// FIXED: scf.for {{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32) {
// FIXED-NOT: memref.atomic_rmw
// FIXED: scf.if %{{.*}} {
// FIXED-NEXT: memref.store %{{.*}}, %arg9[%[[AT:.*]]] : memref<20000xi32>
// FIXED-NEXT: arith.index_cast
// FIXED-NEXT: memref.store %{{.*}}, %arg10[%[[AT]]] : memref<20000xi32>
// A row without candidates records the largest unsigned key as its largest
// (the topk kernel then starts its radix passes at the top bit), so no
// kernel relies on the sample's cut lying at or below one of its keys; a
// dense tile's row counts its t + 1 keys, its range unknown here (the
// finish finds it).
// FIXED: %[[COUNT:.*]] = memref.load %{{.*}}[%thread_id_x]
// FIXED-NEXT: arith.constant 0 : i32
// FIXED-NEXT: %[[LARGEST:.*]] = memref.load %{{.*}}[%thread_id_x]
// FIXED: %[[NONE:.*]] = arith.cmpi eq, %[[COUNT]], %c0_i32
// FIXED-NEXT: %[[MAX:.*]] = arith.select %[[NONE]], %c-1_i32{{.*}}, %[[LARGEST]] : i32
// FIXED: %[[ALL:.*]] = arith.select %[[DENSE]], %{{.*}}, %[[COUNT]] : i32
// FIXED: arith.select %[[DENSE]], %c-1_i32{{.*}}, %[[MAX]] : i32
// FIXED-NEXT: memref.store %[[ALL]]
// select-dense-tiles=0: the sample sweeps every tile (its condition the
// constant true) and the stats kernel has no dense sweep: one masked loop.
// NODENSE: gpu.func @select_fixed_3_select_sample
// NODENSE: %[[ALWAYS:.*]] = arith.constant true
// NODENSE: scf.if %[[ALWAYS]] {
// NODENSE: gpu.func @select_fixed_3_select_stats
// NODENSE: scf.for {{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32) {
// NODENSE-NOT: scf.for {{.*}} -> (i32, i32, i32, i32, i32, i32, i32, i32) {
// NODENSE: gpu.func @select_fixed_3_select_finish
// A row with the cut 0 gets its key range from a sweep of its keys (8
// loads a thread and iteration) before the histogram.
// FIXED: gpu.func @select_fixed_3_select_finish
// FIXED: %[[CUT:.*]] = memref.load %arg4[%{{.*}}] : memref<200xi32>
// FIXED-NEXT: %[[CUT0:.*]] = arith.cmpi eq, %[[CUT]], %c0_i32
// FIXED-NEXT: scf.if %[[CUT0]] {
// FIXED: scf.for {{.*}} -> (i32, i32) {
// FIXED-COUNT-8: memref.load %arg5
// FIXED: memref.atomic_rmw minu
// FIXED: memref.atomic_rmw maxu
func.func @select_fixed(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>,
                        %wi: tensor<2x100x4xbf16>, %bi: tensor<4xbf16>)
    -> (tensor<2x100x32xi32>, tensor<2x100xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>, tensor<2x100x4xbf16>, tensor<4xbf16>)
        -> tensor<2x100x100xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [4, 32]
      : (tensor<2x100x100xf32>) -> (tensor<2x100x32xi32>, tensor<2x100xi32>)
  return %idx, %cnt : tensor<2x100x32xi32>, tensor<2x100xi32>
}

// The fixed policy's candidate sizes where L does not cap them: k = 1024,
// target 1024 + 512 + 128 = 1664 and capacity 2 x 1664 + 256 + 3 x 1024 / 4
// = 4352 per row (35651584 for 8192 rows); k = 2048 (measured at 128K),
// target 3200 and capacity 6656 + 1536 = 8192 (134217728 for 16384 rows).
// SIZES-LABEL: func.func @select_fixed_sizes(
// SIZES: memref.alloc() : memref<35651584xi32>
// SIZES-LABEL: func.func @select_fixed_sizes_2048(
// SIZES: memref.alloc() : memref<134217728xi32>
// SIZES: gpu.func @select_fixed_sizes_{{[0-9]+}}_select_sample
// SIZES: arith.constant 1664 : i32
// SIZES: gpu.func @select_fixed_sizes_2048_{{[0-9]+}}_select_sample
// SIZES: arith.constant 3200 : i32
func.func @select_fixed_sizes(%qi: tensor<1x8192x4x64xbf16>, %ki: tensor<1x8192x64xbf16>)
    -> (tensor<1x8192x2048xi32>, tensor<1x8192xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x8192x4x64xbf16>, tensor<1x8192x64xbf16>) -> tensor<1x8192x8192xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 1024 in [256, 2048]
      : (tensor<1x8192x8192xf32>) -> (tensor<1x8192x2048xi32>, tensor<1x8192xi32>)
  return %idx, %cnt : tensor<1x8192x2048xi32>, tensor<1x8192xi32>
}
func.func @select_fixed_sizes_2048(%qi: tensor<1x16384x4x64xbf16>, %ki: tensor<1x16384x64xbf16>)
    -> (tensor<1x16384x2048xi32>, tensor<1x16384xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x16384x4x64xbf16>, tensor<1x16384x64xbf16>) -> tensor<1x16384x16384xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 2048 in [256, 2048]
      : (tensor<1x16384x16384xf32>) -> (tensor<1x16384x2048xi32>, tensor<1x16384xi32>)
  return %idx, %cnt : tensor<1x16384x2048xi32>, tensor<1x16384xi32>
}
