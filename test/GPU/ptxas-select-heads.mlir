// REQUIRES: ptxas
// RUN: gsa-compile %s -o %t.ptx
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s --check-prefix=SPILL
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s --check-prefix=REGS
// RUN: FileCheck %s --input-file=%t.ptx --check-prefix=WGMMA

// A selection whose fused indexer has 8 heads (two head groups on the
// tensor cores) through the whole pipeline for sm_90a: the sampled
// selection's kernels assemble without spills (the pipeline's automatic
// tiles: 4 rows for sample and top-k, the stats sweep on wgmma with 128
// registers, two CTAs per SM).
// CHECK-DAG: Compiling entry function 'eight_heads_1_select_sample' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'eight_heads_1_select_stats' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'eight_heads_1_select_finish' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'eight_heads_1_select_topk' for 'sm_90a'
// SPILL-NOT: {{[1-9][0-9]*}} bytes spill
// The stats kernel above the 80-register cap of one unit, at most 128
// (two units of A fragments; ptxas allocates 127 or 128 depending on the
// sweep's code around the loop, e.g. the dense tiles' second sweep).
// REGS: Compiling entry function 'eight_heads_1_select_stats'
// REGS-NEXT: Function properties
// REGS-NEXT: bytes spill
// REGS-NEXT: Used 1{{[0-2][0-9]}} registers
// The stats sweep's chunk: one wgmma product per head group before the
// chunk's first score is completed (the xor-16 shuffle).
// WGMMA-LABEL: .entry eight_heads_1_select_stats
// WGMMA: wgmma.commit_group.sync.aligned
// WGMMA-NOT: shfl.sync.bfly.b32 {{.*}}, 16, 31
// WGMMA: wgmma.commit_group.sync.aligned
// WGMMA: shfl.sync.bfly.b32 {{.*}}, 16, 31
func.func @eight_heads(%qi: tensor<1x5000x8x64xbf16>, %ki: tensor<1x5000x64xbf16>,
                       %wi: tensor<1x5000x8xbf16>, %bi: tensor<8xbf16>)
    -> (tensor<1x5000x2048xi32>, tensor<1x5000xi32>) {
  %s = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    weighting {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x5000x8x64xbf16>, tensor<1x5000x64xbf16>, tensor<1x5000x8xbf16>, tensor<8xbf16>)
    -> tensor<1x5000x5000xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = fixed k = 2048 in [256, 2048]
    : (tensor<1x5000x5000xf32>) -> (tensor<1x5000x2048xi32>, tensor<1x5000xi32>)
  return %idx, %cnt : tensor<1x5000x2048xi32>, tensor<1x5000xi32>
}
