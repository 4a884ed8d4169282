// REQUIRES: ptxas
// RUN: gsa-compile %s -o %t.ptx --manifest %t.json
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS
// RUN: FileCheck %s --input-file=%t.ptx --check-prefix=PTX
// RUN: FileCheck %s --input-file=%t.json --check-prefix=MANIFEST
// RUN: gsa-compile %s --indexer-tma=0 -o %t.cpasync.ptx
// RUN: %ptxas -arch=sm_90a %t.cpasync.ptx -o %t.cpasync.cubin
// RUN: FileCheck %s --input-file=%t.cpasync.ptx --check-prefix=CPASYNC
// RUN: gsa-compile %s --indexer-key-span=0 -o %t.rows.ptx --manifest %t.rows.json
// RUN: FileCheck %s --input-file=%t.rows.json --check-prefix=ROWS
// RUN: gsa-compile %s --indexer-query-tiles=false -o %t.old.ptx
// RUN: FileCheck %s --input-file=%t.old.ptx --check-prefix=OLD
// RUN: %ptxas -arch=sm_90a %t.old.ptx -o %t.old.cubin

// The standalone indexer through the whole GPU pipeline (gsa-tile,
// gsa-stage-shared, gsa-map-tensor-cores, outlining, NVVM, PTX): at
// B = 1, L = 5000 (a ragged last tile), H_I = 4, d_I = 64, bf16, each
// 64-key chunk's product is four m64n64k16 wgmma steps from a staged,
// swizzled key ring (two 8 KiB slots of shared memory, each chunk one
// TMA box on its slot's mbarrier - ki's tensor map a 128-byte grid-constant
// parameter), the sigmoids are tanh.approx, the head sum two shuffles per
// value, the scores leave as 8-byte stores and the -inf past a tile's last
// query as 16-byte ones (L % 4 == 0). No spills.
// PTXAS: Compiling entry function 'scores_indexer_0' for 'sm_90a'
// PTXAS-NEXT: Function properties
// PTXAS-NEXT: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// PTX: .entry scores_indexer_0(
// PTX: .param .align 64 .b8 scores_indexer_0_param_{{[0-9]+}}[128]
// PTX: mbarrier.init.shared::cta.b64
// PTX: mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r{{[0-9]+}}], 8192;
// PTX: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX: mbarrier.try_wait.parity.shared::cta.b64
// PTX-COUNT-4: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// PTX: tanh.approx.f32
// PTX: shfl.sync.bfly.b32 {{.*}}, 4, 31, -1;
// PTX: shfl.sync.bfly.b32 {{.*}}, 8, 31, -1;
// PTX: st.global.v2.{{[bf]}}32
// PTX: st.global.v4.{{[bf]}}32 {{.*}}{0fFF800000, 0fFF800000, 0fFF800000, 0fFF800000};
// The grid: 5000 / 16 queries = 313 tiles of 128 threads, each row in 5
// spans of 1024 keys.
// MANIFEST: "grid": [
// MANIFEST-NEXT: 1565,
// MANIFEST-NEXT: 1,
// Whole rows: 313 blocks.
// ROWS: "grid": [
// ROWS-NEXT: 313,
// ROWS-NEXT: 1,
// MANIFEST: "kernel": "scores_indexer_0"
// MANIFEST: "tensor_map": {
// MANIFEST-NEXT: "arg": 1
// With indexer-tma=0 the chunks arrive by 16-byte cp.async, no barrier.
// CPASYNC: .entry scores_indexer_0(
// CPASYNC-NOT: mbarrier
// CPASYNC: cp.async.cg.shared.global
// CPASYNC-NOT: cp.async.bulk.tensor
// Without the query tiles: gsa-lower-selection's CUDA-core kernel.
// OLD: .entry scores_0_indexer(
// OLD-NOT: wgmma
// OLD-NOT: mma.sync
func.func @scores(%qi: tensor<1x5000x4x64xbf16>, %ki: tensor<1x5000x64xbf16>,
                  %wi: tensor<1x5000x4xbf16>, %bi: tensor<4xbf16>) -> tensor<1x5000x5000xf32> {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x5000x4x64xbf16>, tensor<1x5000x64xbf16>, tensor<1x5000x4xbf16>, tensor<4xbf16>)
        -> tensor<1x5000x5000xf32>
  return %I : tensor<1x5000x5000xf32>
}
