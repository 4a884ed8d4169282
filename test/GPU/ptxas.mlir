// REQUIRES: ptxas
// RUN: gsa-compile %s --attention-query-tiles=false -o %t.ptx
// RUN: gsa-compile %s --attention-query-tiles=false --attention-tensor-cores -o %t.mma.ptx
// RUN: gsa-compile %s -o %t.tiles.ptx --manifest %t.tiles.json
// RUN: %ptxas -arch=sm_90a -v %t.tiles.ptx -o %t.tiles.cubin 2>&1 | FileCheck %s --check-prefix=WGTILES
// RUN: not grep -q mma.sync %t.tiles.ptx
// RUN: not grep -q ldmatrix %t.tiles.ptx
// RUN: grep -c wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 %t.tiles.ptx | FileCheck %s --check-prefix=WGMMA-S
// RUN: grep -c wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 %t.tiles.ptx | FileCheck %s --check-prefix=WGMMA-PV
// RUN: grep -c fence.proxy.async.shared::cta %t.tiles.ptx | FileCheck %s --check-prefix=FENCE
// RUN: FileCheck %s --check-prefix=DYNPTX < %t.tiles.ptx
// RUN: grep -c "cp.async.ca.shared.global" %t.tiles.ptx | FileCheck %s --check-prefix=ASYNCCOPIES
// RUN: grep -c "vote.sync.ballot" %t.tiles.ptx | FileCheck %s --check-prefix=BALLOTS
// RUN: gsa-compile %s --attention-async-positions=0 --attention-union-stream=0 -o %t.sync-positions.ptx
// RUN: %ptxas -arch=sm_90a -v %t.sync-positions.ptx -o %t.sync-positions.cubin 2>&1 | FileCheck %s --check-prefix=WGTILES
// RUN: grep -c fence.proxy.async.shared::cta %t.sync-positions.ptx | FileCheck %s --check-prefix=FENCE2
// RUN: not grep -q "cp.async.ca.shared.global" %t.sync-positions.ptx
// RUN: not grep -q "vote.sync.ballot" %t.sync-positions.ptx
// RUN: FileCheck %s --check-prefix=MANIFEST64 < %t.tiles.json
// RUN: gsa-compile %s --attention-split-share=3 --attention-key-chunk=32 -o %t.split.ptx
// RUN: %ptxas -arch=sm_90a -v %t.split.ptx -o %t.split.cubin 2>&1 | FileCheck %s --check-prefix=TILES
// RUN: grep -c mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 %t.split.ptx | FileCheck %s --check-prefix=TILEMMA
// RUN: grep -c ldmatrix.sync.aligned.m8n8.x4 %t.split.ptx | FileCheck %s --check-prefix=LDMATRIX
// RUN: grep -c wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 %t.split.ptx | FileCheck %s --check-prefix=WGMMA-S32
// RUN: gsa-compile %s --attention-wgmma=false -o %t.sync.ptx
// RUN: %ptxas -arch=sm_90a -v %t.sync.ptx -o %t.sync.cubin 2>&1 | FileCheck %s --check-prefix=TILES
// RUN: grep -c mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 %t.sync.ptx | FileCheck %s --check-prefix=SYNCMMA
// RUN: grep -c ldmatrix.sync.aligned.m8n8.x4 %t.sync.ptx | FileCheck %s --check-prefix=SYNCLDMATRIX
// RUN: not grep -q wgmma %t.sync.ptx
// RUN: gsa-compile %s --attention-stages=3 --attention-key-chunk=32 -o %t.dyn.ptx --manifest %t.dyn.json
// RUN: gsa-compile %s --attention-stages=3 --attention-key-chunk=32 --attention-dynamic-shared=false -o %t.static.ptx
// RUN: not grep -q __dynamic_shmem %t.static.ptx
// RUN: %ptxas -arch=sm_90a -v %t.dyn.ptx -o %t.dyn.cubin 2>&1 | FileCheck %s --check-prefix=WGTILES
// RUN: FileCheck %s --check-prefix=DYNPTX < %t.dyn.ptx
// RUN: FileCheck %s --check-prefix=DYNMANIFEST < %t.dyn.json
// RUN: %ptxas -arch=sm_90a -v %t.mma.ptx -o %t.mma.cubin 2>&1 | FileCheck %s
// RUN: grep -c mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 %t.mma.ptx | FileCheck %s --check-prefix=MMA
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s
// RUN: gsa-compile %s --attention-warps=8 --attention-max-registers=128 -o %t.w8.ptx
// RUN: %ptxas -arch=sm_90a -v %t.w8.ptx -o %t.w8.cubin 2>&1 | FileCheck %s --check-prefix=W8
// RUN: grep -c wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 %t.w8.ptx | FileCheck %s --check-prefix=WGMMA-S
// RUN: grep -c wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 %t.w8.ptx | FileCheck %s --check-prefix=WGMMA-PV
// RUN: FileCheck %s --check-prefix=W8PTX < %t.w8.ptx
// RUN: gsa-compile %s --attention-shared-queries --attention-max-registers=128 -o %t.sq.ptx
// RUN: %ptxas -arch=sm_90a -v %t.sq.ptx -o %t.sq.cubin > %t.sq.log 2>&1
// RUN: FileCheck %s --check-prefix=SQ < %t.sq.log
// RUN: not grep -q C7512 %t.sq.log
// RUN: grep -c "p, 1, 1, 0, 0;" %t.sq.ptx | FileCheck %s --check-prefix=WGMMA-S
// RUN: not grep -q "p, 1, 1, 0;" %t.sq.ptx

// The emitted PTX assembles for sm_90a without spills, also with the
// attention on tensor cores: 2 n-tiles x 8 k-steps of Q K^T and 16 d-tiles
// of P V per block of 16 selected rows.
// MMA: 32
// CHECK: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// CHECK: 0 bytes spill stores, 0 bytes spill loads

// Attention over query tiles (one KV head of 8 query heads: 8-query
// tiles). By default the tile (4 warps: one warpgroup) runs its products
// on wgmma - 8 k-steps of m64n32k16 for Q K^T and 2 of m64n128k16 for P V,
// B from the swizzled slots by descriptor, one proxy fence after each
// cp.async wait (after the prologue - the union positions arrive by
// 4-byte cp.async a ring ahead -, in the loop and after it; without
// async-positions only the last two), the union kernel streaming its lists
// (warp ballots) - and no tile splits: no
// mma.sync or ldmatrix at all. With `--attention-split-share=3` the tiles
// that share little also get 4-query half tiles (2 warps, not a
// warpgroup): their union kernel and attention, on mma.sync - per 32-key
// chunk 4 n-tiles x 8 k-steps of Q K^T and 2 k-steps x 16 d-tiles of P V,
// B fragments by 16 + 16 ldmatrix.x4 (non-transposed for K, transposed
// for V). With `--attention-wgmma=false` both attention kernels are on
// mma.sync (and the tiles split by default). Every kernel assembles
// without spills.
// By default (wgmma) the chunks have 64 keys: 8 k-steps of m64n64k16 for
// Q K^T and 4 of m64n128k16 for P V, the K and v' rings (2 x 32 KiB) in
// the launch's dynamic shared memory - an external 1024-byte aligned
// declaration, the size in the launch manifest. Likewise three stages of
// 32-key chunks (2 x 24 KiB, which with the masks' ring exceed the 48 KiB
// of static memory); without dynamic shared memory those keep everything
// static and leave the masks unstaged.
// MANIFEST64: "kernel": "attend_sparse_attention_0_query_tiles"
// MANIFEST64: "shared": 0
// MANIFEST64: "kernel": "attend_sparse_attention_0"
// MANIFEST64: "shared": 65536
// DYNPTX: .extern .shared .align 1024 .b8 __dynamic_shmem__0[];
// DYNPTX-NOT: __dynamic_shmem__0 has been demoted
// DYNMANIFEST: "kernel": "attend_sparse_attention_0_query_tiles"
// DYNMANIFEST: "shared": 0
// DYNMANIFEST: "kernel": "attend_sparse_attention_0"
// DYNMANIFEST: "shared": 49152
// WGTILES-DAG: Compiling entry function 'attend_sparse_attention_0_query_tiles' for 'sm_90a'
// WGTILES-DAG: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// WGTILES-NOT: _half
// WGTILES-NOT: {{[1-9][0-9]*}} bytes spill
// TILES-DAG: Compiling entry function 'attend_sparse_attention_0_query_tiles' for 'sm_90a'
// TILES-DAG: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// TILES-DAG: Compiling entry function 'attend_sparse_attention_0_half_query_tiles' for 'sm_90a'
// TILES-DAG: Compiling entry function 'attend_sparse_attention_0_half' for 'sm_90a'
// TILES-NOT: {{[1-9][0-9]*}} bytes spill

// With 8 warps (two warpgroups, 16 queries x 8 heads = 128 rows) each
// warpgroup runs its 64 rows' products on wgmma from the same slots, and
// `--attention-max-registers` caps the tile kernel's registers (.maxnreg;
// the union and value-gate kernels stay uncapped). This cap is for the
// test, not a recommendation: at 128 registers the 8-warp kernel spills and
// ptxas serialises its wgmma (uncapped it needs ~190-198; perf-log).
// W8PTX: .entry attend_sparse_attention_0_value_gate(
// W8PTX-NOT: .maxnreg
// W8PTX: .entry attend_sparse_attention_0_query_tiles(
// W8PTX-NOT: .maxnreg
// W8PTX: .entry attend_sparse_attention_0(
// W8PTX: .maxntid 256, 1, 1
// W8PTX-NEXT: .maxnreg 128
// W8: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// W8: Used 128 registers

// With `--attention-shared-queries` Q K^T reads the query block from
// shared memory (both operands by descriptor: the 8 k-steps end in "0,
// 0;"), and the 32 A registers it no longer holds let the kernel fit 128
// registers (4 warps) with no spill and no wgmma serialisation (C7512).
// SQ: Compiling entry function 'attend_sparse_attention_0' for 'sm_90a'
// SQ-NEXT: Function properties for attend_sparse_attention_0
// SQ-NEXT: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// SQ-NEXT: Used 128 registers, used 1 barriers, 18432 bytes smem
// TILEMMA: 64
// LDMATRIX: 32
// WGMMA-S: 8
// WGMMA-PV: 4
// WGMMA-S32: 8
// FENCE: 3
// FENCE2: 2
// ASYNCCOPIES: {{[1-9][0-9]*}}
// BALLOTS: {{[1-9][0-9]*}}
// SYNCMMA: 128
// SYNCLDMATRIX: 64
func.func @attend(%q: tensor<1x33x8x128xbf16>, %k: tensor<1x33x1x128xbf16>,
                  %v: tensor<1x33x1x128xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>, %gv: tensor<1x33x1x128xbf16>,
                  %go: tensor<1x33x8x128xbf16>)
    -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      : (tensor<1x33x8x128xbf16>, tensor<1x33x1x128xbf16>, tensor<1x33x1x128xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>, tensor<1x33x1x128xbf16>,
         tensor<1x33x8x128xbf16>) -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>
}
