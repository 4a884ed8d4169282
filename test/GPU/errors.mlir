// RUN: gsa-opt %s --gsa-lower-selection --convert-gsa-to-gpu -split-input-file -verify-diagnostics

func.func @dynamic(%q: tensor<1x?x4x64xf16>, %k: tensor<1x?x1x64xf16>, %v: tensor<1x?x1x64xf16>,
                   %idx: tensor<1x?x8xi32>, %cnt: tensor<1x?xi32>) {
  // expected-error @+1 {{needs static shapes on the GPU path (the runtime specialises the program per shape before lowering)}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x?x4x64xf16>, tensor<1x?x1x64xf16>, tensor<1x?x1x64xf16>, tensor<1x?x8xi32>, tensor<1x?xi32>)
        -> (tensor<1x?x4x64xf16>, tensor<1x?x4xf32>)
  return
}

// -----

// f32 operands cannot run over query tiles; the per-query kernel keeps at
// most 8 query heads of a group in registers. (16 heads of bf16 lower over
// query tiles: gsa-to-gpu-query-tiles.mlir.)
func.func @group(%q: tensor<1x8x16x64xf32>, %k: tensor<1x8x1x64xf32>, %v: tensor<1x8x1x64xf32>,
                 %idx: tensor<1x8x8xi32>, %cnt: tensor<1x8xi32>) {
  // expected-error @+1 {{GPU kernel keeps the query heads of a GQA group in registers and supports n_h / n_kv <= 8, but it is 16}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x8x16x64xf32>, tensor<1x8x1x64xf32>, tensor<1x8x1x64xf32>, tensor<1x8x8xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x16x64xf32>, tensor<1x8x16xf32>)
  return
}

// -----

func.func @head_dim(%q: tensor<1x8x4x48xf16>, %k: tensor<1x8x1x48xf16>, %v: tensor<1x8x1x48xf16>,
                    %idx: tensor<1x8x8xi32>, %cnt: tensor<1x8xi32>) {
  // expected-error @+1 {{GPU kernel needs d_k to be a multiple of 32 and at most 256, but d_k = 48}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x8x4x48xf16>, tensor<1x8x1x48xf16>, tensor<1x8x1x48xf16>, tensor<1x8x8xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x48xf16>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @indexer_dim(%qi: tensor<1x8x2x160xf32>, %ki: tensor<1x8x160xf32>) -> tensor<1x8x8xf32> {
  // expected-error @+1 {{GPU indexer keeps a key's indexer row in registers and supports d_I <= 128, but d_I = 160}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x160xf32>, tensor<1x8x160xf32>) -> tensor<1x8x8xf32>
  return %I : tensor<1x8x8xf32>
}

// -----

func.func @dynamic_scores(%I: tensor<1x?x?xf32>) -> (tensor<1x?x8xi32>, tensor<1x?xi32>) {
  // expected-error @+1 {{needs static shapes on the GPU path}}
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 4 in [2, 8]
      : (tensor<1x?x?xf32>) -> (tensor<1x?x8xi32>, tensor<1x?xi32>)
  return %idx, %cnt : tensor<1x?x8xi32>, tensor<1x?xi32>
}
