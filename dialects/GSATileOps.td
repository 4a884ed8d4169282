//===- GSATileOps.td - block-level ops of the staged GPU lowering -*- tablegen -*-===//
//
// The ops between the fused gsa ops and the GPU's instructions. `gsa-tile`
// writes them inside a gpu.launch: one thread block per tile of queries,
// whole-tile values (tensors) for the query block, the key / value rows of
// a chunk, the scores and the accumulators. `gsa-stage-shared` turns the
// chunk gathers into shared-memory rings filled by cp.async and read
// through `gsa.tile.shared_tile`; `gsa-map-tensor-cores` distributes every
// tile value over the warps' lanes (the mma.sync fragment layouts) and
// leaves only scalar code. A tile's rows are (query, head) pairs: row r of
// a tile at (batch, first_query, kv_head) is query first_query + r / group
// and query head kv_head * group + r % group (the GQA group of kv_head).
//
//===----------------------------------------------------------------------===//

#ifndef GSA_TILE_OPS_TD
#define GSA_TILE_OPS_TD

class GSA_TileOp<string mnemonic, list<Trait> traits = []>
    : GSA_Op<"tile." # mnemonic, traits> {
  let hasVerifier = 1;
}

def GSA_TileLoadQueriesOp : GSA_TileOp<"load_queries",
    [MemoryEffects<[MemRead]>]> {
  let summary = "the query rows of one tile: [queries x group heads, d_k]";
  let description = [{
    Row `r` is `q[batch, min(first_query + r / group, L - 1), kv_head *
    group + r % group, :]` (rows past the sequence repeat its last query;
    `gsa.tile.store_output` drops them).
  }];
  let arguments = (ins AnyStaticShapeMemRef:$q, Index:$batch,
                       Index:$first_query, Index:$kv_head,
                       ConfinedAttr<I64Attr, [IntPositive]>:$group);
  let results = (outs AnyStaticShapeTensor:$tile);
  let assemblyFormat = [{
    $q `[` $batch `,` $first_query `,` $kv_head `]` `group` $group attr-dict
    `:` type($q) `->` type($tile)
  }];
}

def GSA_TileGatherRowsOp : GSA_TileOp<"gather_rows",
    [MemoryEffects<[MemRead]>]> {
  let summary = "rows of K or V at positions read from a list, or consecutive rows";
  let description = [{
    With `positions`, row `j` is `source[batch, positions[offset + j],
    kv_head, :]`; with `consecutive` (no list), row `j` is `source[batch,
    offset + j, kv_head, :]` (a chunk of keys in sequence order: the
    indexer's sweep). Rows at or past `count` read the chunk's first row
    (position 0 with a list, `offset` without one): finite values that the
    consumer's masks exclude. So `positions[offset]` (with a list) or row
    `offset` (without one) must lie inside its buffer even where `count` is
    0 or the loop runs no chunk: `gsa-stage-shared`'s prologue issues the
    loop's first chunk unconditionally (the builders keep it so: a tile's
    union region starts inside the union buffer, an indexer span below L).
  }];
  let arguments = (ins AnyStaticShapeMemRef:$source, Index:$batch,
                       Index:$kv_head,
                       Optional<AnyStaticShapeMemRef>:$positions,
                       Index:$offset, Index:$count);
  let results = (outs AnyStaticShapeTensor:$tile);
  let assemblyFormat = [{
    $source `[` $batch `,` $kv_head `]`
    (`rows` $positions^) : (`consecutive`)?
    `[` $offset `]` `count` $count attr-dict `:` type($source)
    (`,` type($positions)^)? `->` type($tile)
  }];
}

def GSA_TileGatherWordsOp : GSA_TileOp<"gather_words",
    [MemoryEffects<[MemRead]>]> {
  let summary = "consecutive 32-bit words of a list (0 past count)";
  let arguments = (ins AnyStaticShapeMemRef:$source, Index:$offset,
                       Index:$count);
  let results = (outs AnyStaticShapeTensor:$tile);
  let assemblyFormat = [{
    $source `[` $offset `]` `count` $count attr-dict `:` type($source) `->`
    type($tile)
  }];
}

def GSA_TileSharedTileOp : GSA_TileOp<"shared_tile",
    [MemoryEffects<[MemRead]>]> {
  let summary = "slot `stage` of a shared-memory ring, read as a tile";
  let description = [{
    Written by `gsa-stage-shared`. With `swizzled`, the 16-byte piece `p` of
    row `j` is stored at piece `p ^ (j % 8)` of that row, so that the eight
    rows an ldmatrix phase reads fall in different banks.
  }];
  let arguments = (ins AnyStaticShapeMemRef:$ring, Index:$stage,
                       UnitAttr:$swizzled);
  let results = (outs AnyStaticShapeTensor:$tile);
  let assemblyFormat = [{
    $ring `[` $stage `]` (`swizzled` $swizzled^)? attr-dict `:` type($ring)
    `->` type($tile)
  }];
}

def GSA_TileDotOp : GSA_TileOp<"dot", [Pure]> {
  let summary = "lhs . rhs (+ acc) with f32 accumulation";
  let description = [{
    `lhs` is [M, K]; `rhs` is [N, K] with `transpose_rhs` (scores: a chunk
    of key rows) and [K, N] without (values); the result and `acc` are
    [M, N] f32. Operands are bf16 or f16, both of one type.
  }];
  let arguments = (ins AnyStaticShapeTensor:$lhs, AnyStaticShapeTensor:$rhs,
                       Optional<AnyStaticShapeTensor>:$acc,
                       UnitAttr:$transpose_rhs);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs (`acc` `(` $acc^ `:` type($acc) `)`)? (`transpose_rhs` $transpose_rhs^)?
    attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def GSA_TileScoresOp : GSA_TileOp<"scores",
    [RecursiveMemoryEffects, RecursivelySpeculatable]> {
  let summary = "scaled, modified and masked attention scores of a chunk";
  let description = [{
    `result[r, j] = score_mod(scale * acc[r, j], batch, head(r), query(r),
    positions[j])` where bit `r / group` of `members[j]` is set (the query
    selected key `j`), `-inf` elsewhere. Without a `score_mod` region the
    scaled score is kept and `positions` is not needed.
  }];
  let arguments = (ins AnyStaticShapeTensor:$acc,
                       AnyStaticShapeTensor:$members,
                       Optional<AnyStaticShapeTensor>:$positions,
                       Index:$batch, Index:$first_query, Index:$kv_head,
                       F32Attr:$scale,
                       ConfinedAttr<I64Attr, [IntPositive]>:$group);
  let results = (outs AnyStaticShapeTensor:$result);
  let regions = (region AnyRegion:$score_mod);
  let assemblyFormat = [{
    $acc `members` `(` $members `)` (`positions` `(` $positions^ `:`
    type($positions) `)`)? `rows` `[` $batch `,` $first_query `,` $kv_head
    `]` `scale` `(` $scale `)` `group` $group attr-dict-with-keyword
    (`score_mod` $score_mod^)? `:` type($acc) `,` type($members) `->`
    type($result)
  }];
}

def GSA_TileOnlineSoftmaxOp : GSA_TileOp<"online_softmax",
    [Pure, AllTypesMatch<["max", "sum", "new_max", "new_sum", "rescale"]>]> {
  let summary = "one chunk of a streaming softmax";
  let description = [{
    Per row: `new_max = max(max, max_j scores)`, `rescale = exp(max -
    new_max)` (1 while the row is empty), `probs = exp(scores - new_max)`
    (0 for `-inf` scores, rounded to the probabilities' element type) and
    `new_sum = sum * rescale + sum_j probs`.
  }];
  let arguments = (ins AnyStaticShapeTensor:$scores,
                       AnyStaticShapeTensor:$max, AnyStaticShapeTensor:$sum);
  let results = (outs AnyStaticShapeTensor:$probs,
                      AnyStaticShapeTensor:$new_max,
                      AnyStaticShapeTensor:$new_sum,
                      AnyStaticShapeTensor:$rescale);
  let assemblyFormat = [{
    $scores `,` $max `,` $sum attr-dict `:` type($scores) `,` type($max)
    `->` type($probs)
  }];
}

def GSA_TileRescaleOp : GSA_TileOp<"rescale",
    [Pure, AllTypesMatch<["acc", "result"]>]> {
  let summary = "every row of an accumulator times its factor";
  let arguments = (ins AnyStaticShapeTensor:$acc,
                       AnyStaticShapeTensor:$factor);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = [{
    $acc `by` $factor attr-dict `:` type($acc) `,` type($factor)
  }];
}

def GSA_TileStoreOutputOp : GSA_TileOp<"store_output",
    [MemoryEffects<[MemRead, MemWrite]>, AllTypesMatch<["max", "sum"]>]> {
  let summary = "a tile's normalised, gated output rows and their lse";
  let description = [{
    For every row whose query is inside the sequence:
    `out[batch, query, head] = acc / sum * sigmoid(gate[batch, query, head])`
    (0 for an empty row) and `lse[batch, query, head] = max + log(sum)`
    (`-inf` for an empty row).
  }];
  let arguments = (ins AnyStaticShapeTensor:$acc, AnyStaticShapeTensor:$max,
                       AnyStaticShapeTensor:$sum, AnyStaticShapeMemRef:$out,
                       AnyStaticShapeMemRef:$lse, Index:$batch,
                       Index:$first_query, Index:$kv_head,
                       Optional<AnyStaticShapeMemRef>:$gate,
                       ConfinedAttr<I64Attr, [IntPositive]>:$group);
  let assemblyFormat = [{
    $acc `,` $max `,` $sum `into` $out `,` $lse `[` $batch `,` $first_query
    `,` $kv_head `]` (`gate` `(` $gate^ `:` type($gate) `)`)? `group` $group
    attr-dict `:` type($acc) `,` type($max) `,` type($out) `,` type($lse)
  }];
}

def GSA_TileIndexerHeadsOp : GSA_TileOp<"indexer_heads",
    [MemoryEffects<[MemRead]>, AttrSizedOperandSegments,
     AllTypesMatch<["weight", "bias"]>]> {
  let summary = "each indexer row's head weight and bias";
  let description = [{
    For the rows of an indexer tile (query `first_query + r / heads`, head
    `r % heads`): `weight[r] = weighting(weights[batch, query, head], head)`
    (1 without `weights`) and `bias[r] = bias_list[head]` (0 without a
    bias); queries past the sequence read its last one. Without `weights`
    the `weighting` region must be empty.
  }];
  let arguments = (ins Optional<AnyStaticShapeMemRef>:$weights,
                       Optional<AnyStaticShapeMemRef>:$bias_list,
                       Index:$batch, Index:$first_query,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads);
  let results = (outs AnyStaticShapeTensor:$weight,
                      AnyStaticShapeTensor:$bias);
  let regions = (region AnyRegion:$weighting);
  let assemblyFormat = [{
    (`weights` `(` $weights^ `:` type($weights) `)`)?
    (`bias` `(` $bias_list^ `:` type($bias_list) `)`)?
    `rows` `[` $batch `,` $first_query `]` `heads` $heads
    attr-dict-with-keyword (`weighting` $weighting^)? `:` type($weight)
  }];
}

def GSA_TileIndexerScoresOp : GSA_TileOp<"indexer_scores",
    [RecursiveMemoryEffects, RecursivelySpeculatable,
     AllTypesMatch<["weight", "bias"]>]> {
  let summary = "a chunk's causal indexer scores, summed over the heads";
  let description = [{
    `acc` holds `qi . ki` for the tile's (query, head) rows (row `r`: query
    `first_query + r / heads`, head `r % heads`) and a chunk of keys
    starting at `first_key`. Per query `q` and key `j`:

        result[q, j] = sum_h weight[q heads + h]
                           * activation(scale * acc[q heads + h, j]
                                        + bias[q heads + h], h)

    where key `first_key + j` is at most the query's position, `-inf`
    elsewhere (SPEC section 1). The `activation` region takes `(%x: f32,
    %head: index)` and yields one `f32`.
  }];
  let arguments = (ins AnyStaticShapeTensor:$acc, AnyStaticShapeTensor:$weight,
                       AnyStaticShapeTensor:$bias, Index:$first_query,
                       Index:$first_key, F32Attr:$scale,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads);
  let results = (outs AnyStaticShapeTensor:$result);
  let regions = (region SizedRegion<1>:$activation);
  let assemblyFormat = [{
    $acc `weights` `(` $weight `)` `bias` `(` $bias `)` `rows` `[`
    $first_query `]` `keys` `[` $first_key `]` `scale` `(` $scale `)`
    `heads` $heads attr-dict-with-keyword `activation` $activation `:`
    type($acc) `,` type($weight) `->` type($result)
  }];
}

def GSA_TileStoreScoresOp : GSA_TileOp<"store_scores",
    [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "a [queries, keys] tile of scores into the score matrix";
  let description = [{
    `scores[batch, first_query + q, first_key + j] = tile[q, j]` for the
    entries inside the sequence (rows and columns past `L` dropped).
  }];
  let arguments = (ins AnyStaticShapeTensor:$tile, AnyStaticShapeMemRef:$scores,
                       Index:$batch, Index:$first_query, Index:$first_key);
  let assemblyFormat = [{
    $tile `into` $scores `[` $batch `,` $first_query `,` $first_key `]`
    attr-dict `:` type($tile) `,` type($scores)
  }];
}

#endif // GSA_TILE_OPS_TD
