//===- GSAPasses.td - passes of the gsa compiler -----------*- tablegen -*-===//

#ifndef GSA_PASSES_TD
#define GSA_PASSES_TD

include "mlir/Pass/PassBase.td"

def GSADecompose : Pass<"gsa-decompose"> {
  let summary = "expand gsa.gated_sparse_attention into indexer, adaptive_topk "
                "and sparse_attention";
  let description = [{
    Rewrites every `gsa.gated_sparse_attention` into the three fused ops it
    is made of, moving its regions and attributes to the op that uses them.
    The score matrix between `gsa.indexer` and `gsa.adaptive_topk` is a
    tensor value here; the backends decide whether it is ever materialised.
  }];
  let dependentDialects = ["::gsa::GSADialect"];
}


def ConvertGSAToLoops : Pass<"convert-gsa-to-loops"> {
  let summary = "lower the gsa fused ops to scf loops on memrefs (CPU reference)";
  let description = [{
    The reference lowering: every `gsa.indexer`, `gsa.adaptive_topk` and
    `gsa.sparse_attention` becomes loop nests (`scf`, `arith`, `math`,
    `memref`) that follow SPEC.md to the letter, with the user's regions
    inlined at their call sites. Operands enter through
    `bufferization.to_buffer`, results leave through
    `bufferization.to_tensor restrict`, so One-Shot Bufferize finishes the
    job. `gsa.sigmoid` becomes `1 / (1 + exp(-x))`.

    Selection computes, per row, the population variance in f64, the budget
    `k_t`, and the exact k-th largest score by bisection over the bits of an
    order-preserving integer key (32 counting passes, no sort, no memory
    beyond the outputs); ties go to the larger position.

    Run `gsa-decompose` first: a remaining `gsa.gated_sparse_attention` is an
    error.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}


def GSALowerSelection : Pass<"gsa-lower-selection", "::mlir::ModuleOp"> {
  let summary = "lower gsa.adaptive_topk (with the indexer it fuses) and "
                "gsa.indexer to tiled GPU kernels and their launches";
  let description = [{
    The selection pass of the GPU path. Every `gsa.adaptive_topk` becomes a
    set of kernels in `gpu.module @gsa_kernels` and their
    `gpu.launch_func`s, in order; a `gsa.indexer` whose only user is the
    selection is fused into them (its scores are recomputed per sweep, the
    L x L matrix is never built), any other indexer gets a kernel writing
    its scores.

    Tiling: a CTA per tile of `select-rows-per-tile` query rows (per batch),
    an inner loop over key chunks up to the tile's last row (the causal
    limit; ragged tiles and chunks masked), the tile's queries staged in
    shared memory or held as tensor-core fragments. With the tensor-core
    indexer (bf16/f16, H_I 1 to 16: its heads in groups of 4, one product
    each) and k_max <= 8192 the selection is sampled:
    - `sample`: a 2048-bin histogram per row of a sample of its scores
      gives each row a cut key;
    - `stats`: one sweep over every key computes the row's moments (the
      adaptive policies' variance), smallest and largest key, and collects
      the keys above the cut (candidates); with `select-wgmma-stages` > 0
      (sm_90a; `gsa-gpu-pipeline` sets 6 and `select-tma=1` there) its
      products run on wgmma against key chunks staged in a multi-buffered
      shared ring, copied by cp.async or TMA (`select-tma`);
    - `vbar` (training): the batch's mean variance V_bar;
    - `finish`: per row, the exact top-k_t among the candidates (a
      histogram over their range, ties to the larger position) written in
      ascending order;
    - `topk`: the radix select over all keys for the rows `finish` could
      not take (too few candidates, overflow, many ties), or for every row
      without the sampled form.
    Nothing materialises the L x L scores. See docs/gpu-path.md.

    Run `gsa-decompose` first (a remaining `gsa.gated_sparse_attention` is
    a located error). The user's regions are inlined into the kernels as
    they are: `convert-gsa-to-gpu`, which runs next, lowers their
    `gsa.sigmoid`s.
  }];
  let options = [
    Option<"selectRowsPerTile", "select-rows-per-tile", "int64_t",
           /*default=*/"8",
           "query rows per thread block of the indexer / selection kernels "
           "(1 to 16; each key row read serves that many queries; -1: 12 "
           "from L = 98304 on, else 8; 4 with more than 4 indexer heads on "
           "the tensor cores)">,
    Option<"selectMaxRegisters", "select-max-registers", "int64_t",
           /*default=*/"0",
           "register cap (ptxas .maxnreg) of the selection's sweep kernels "
           "(sample, stats, topk), 0 for none: fewer registers, more warps "
           "per SM">,
    Option<"selectSampled", "select-sampled", "bool",
           /*default=*/"true",
           "sampled selection in front of the radix top-k (tensor-core "
           "indexer, k_max <= 8192): a sampled histogram gives each row a "
           "cut key, the statistics sweep collects the keys above it, and "
           "an exact per-row select finishes the row; rows it cannot "
           "finish (too few candidates, overflow, many ties) go through "
           "the radix passes">,
    Option<"selectDenseTiles", "select-dense-tiles", "bool",
           /*default=*/"true",
           "sampled selection: a tile whose rows all see at most the "
           "candidates' capacity of keys (the cut 0) skips the sample's "
           "sweeps and stores its keys at their positions' slots in the "
           "statistics sweep, with no shared counter">,
    Option<"selectWgmmaStages", "select-wgmma-stages", "int64_t",
           /*default=*/"0",
           "the statistics sweep's products on wgmma (sm_90a): 32 query "
           "rows per CTA, each warpgroup's 16 queries x 4 heads against "
           "64-key chunks staged by cp.async in a ring of this many "
           "shared-memory slots (2 to 6; from 6 on two chunks per barrier; "
           "0: mma.sync with key fragments "
           "in registers; needs the tensor-core form and d_I a multiple "
           "of 64)">,
    Option<"selectWgmmaQueries", "select-wgmma-queries", "int64_t",
           /*default=*/"16",
           "queries per warpgroup of the wgmma statistics sweep: 16 (one "
           "product per key chunk, 16 queries x 4 heads, a score's heads "
           "on two lanes) or 32 (two products per key chunk, heads 0-1 and "
           "2-3 of 32 queries, a lane holds all four heads of its query's "
           "keys: no shuffle or select per score; 128 registers, two CTAs "
           "per SM)">,
    Option<"selectTma", "select-tma", "int64_t", /*default=*/"0",
           "how the wgmma statistics sweep stages its key chunks: 0 "
           "cp.async by every thread; 1 one thread's TMA copy per chunk "
           "(ki's tensor map, gsa.tensor_map), completion on a per-slot "
           "barrier, slots freed by the loop's CTA barrier; 2 as 1, slots "
           "freed by per-slot barriers that each warp arrives on once its "
           "products have read the chunk (no CTA barrier in the loop)">,
    Option<"selectTensorCores", "select-tensor-cores", "bool",
           /*default=*/"true",
           "compute the fused indexer's qi . ki products of the selection "
           "with mma.sync (bf16/f16 inputs, H_I 1 to 16, d_I a multiple of 16, "
           "rows per tile a multiple of 4; other shapes use CUDA cores)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}



def ConvertGSAToGPU : Pass<"convert-gsa-to-gpu", "::mlir::ModuleOp"> {
  let summary = "lower the remaining gsa.sparse_attention ops to per-query "
                "GPU kernels and their launches";
  let description = [{
    Builds, for every `gsa.sparse_attention` that `gsa-tile` did not take
    over query tiles (static shapes), a `gpu.func` kernel in
    `gpu.module @gsa_kernels` and replaces the op with a `gpu.launch_func`
    on flat buffers (inputs, then `o` and `lse`). The launch ops are the
    manifest the runtime follows: kernel, grid, block and which buffer goes
    where. Lowers `gsa.sigmoid` in every kernel of `@gsa_kernels` (also
    those other passes built) to one `tanh.approx`.

    Kernel: one CTA of 4 warps per (query, key/value head, batch); the warps
    split the query's selected set, each K/V row is loaded once per CTA and
    serves all query heads of the GQA group (lane-strided head dimension,
    xor-shuffle dot products), online softmax in base 2 with `ex2.approx`,
    partial states combined in shared memory after one barrier, gates as
    `tanh.approx` sigmoids, the `score_mod` region inlined.

    Run `gsa-decompose` and `gsa-lower-selection` first: a remaining
    `gsa.gated_sparse_attention`, `gsa.indexer` or `gsa.adaptive_topk` is a
    located error.
  }];
  let options = [
    Option<"attentionRowsInFlight", "attention-rows-in-flight", "int64_t",
           /*default=*/"4",
           "selected rows each warp of the attention kernel loads per "
           "iteration (1 to 8): more loads in flight, more registers">,
    Option<"attentionPregateValues", "attention-pregate-values", "bool",
           /*default=*/"true",
           "apply the value gate G2 once per key row in a separate kernel "
           "(v' = v * sigmoid(gv) in v's type) so that the attention "
           "gathers K and v' only">,
    Option<"attentionTensorCores", "attention-tensor-cores", "bool",
           /*default=*/"false",
           "attention products (Q K^T, P V) with mma.sync: blocks of 16 "
           "selected rows per warp, the GQA group's heads as the M rows "
           "(bf16/f16, d_k a multiple of 16; other shapes use CUDA cores)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}


def GSATile : Pass<"gsa-tile", "::mlir::ModuleOp"> {
  let summary = "tile gsa.sparse_attention into query-tile kernels on "
                "block-level gsa.tile ops";
  let description = [{
    The first stage of the GPU lowering. Every `gsa.sparse_attention` that
    can run over query tiles (bf16/f16, d_k 64 or 128, a GQA group of 2 to
    16 heads dividing 16, static shapes) becomes, in place:

    - scratch buffers for the tiles' unions (O(L * k_max));
    - with a value gate, a `gpu.launch` computing v' = v * sigmoid(gv)
      once per key row;
    - a `gpu.launch` building each tile's union of selected positions with
      per-query masks (the masks carry the causal limit);
    - a `gpu.launch` of one thread block per (query tile, KV head, batch)
      whose body loads the tile's query block and loops over the union in
      chunks of `key-chunk` keys: gather the chunk's K and v' rows and query
      masks (`gsa.tile.gather_rows` / `gather_words`, rows past the union
      masked), `gsa.tile.dot` for the scores, `gsa.tile.scores` (scale,
      `score_mod`, masks), `gsa.tile.online_softmax`, `gsa.tile.rescale`,
      `gsa.tile.dot` for P V; then `gsa.tile.store_output` (O / l, the
      output gate, lse; rows past the sequence dropped).

    A tile is `warps` x 16 rows of (query, head) pairs: 16 * warps / G
    queries. With `split-share`, two more launches handle the tiles whose
    queries share few selections: the tile attention skips them, a union
    kernel builds their two halves' unions (into the tile's region) and a
    half-tile attention (warps / 2) runs them; the decision is per tile, on
    the device (union size vs the queries' counts). Each launch carries its
    kernel's name (`gsa.kernel`) for `gsa-outline-kernels`. Other attention ops are left for
    `convert-gsa-to-gpu`'s per-query kernel.

    With `indexers`, every `gsa.indexer` whose scores the program keeps
    (not fused into a `gsa.adaptive_topk`) and whose shapes allow it
    (bf16/f16 qi and ki, H_I a power of two up to 16, d_I a multiple of 64
    up to 256, static shapes) becomes a `gpu.launch` of one block per (query tile,
    key span, batch): a tile is `warps` x 16 (query, indexer head) rows, i.e.
    16 * warps / H_I queries, a span `indexer-key-span` keys of their rows.
    Its body loads the queries' qi block and the
    head weights and biases (`gsa.tile.indexer_heads`, the `weighting`
    region inlined), loops over the span's chunks of `key-chunk` consecutive keys up
    to the tile's last query (`gsa.tile.gather_rows consecutive`,
    `gsa.tile.dot`, `gsa.tile.indexer_scores` with the `activation`
    region and the causal mask, `gsa.tile.store_scores`), then writes -inf
    for the span's keys past the chunks. Other indexers are left for
    `gsa-lower-selection`.
  }];
  let options = [
    Option<"keyChunk", "key-chunk", "int64_t", /*default=*/"32",
           "union keys per step of the tile loop (16, 32, 48 or 64): the "
           "N of the score tile">,
    Option<"scoreModKeyChunk", "score-mod-key-chunk", "int64_t",
           /*default=*/"0",
           "key-chunk for the ops with a score_mod (0: key-chunk)">,
    Option<"warps", "warps", "int64_t", /*default=*/"4",
           "warps per tile (1 to 8); each owns 16 rows of the tile">,
    Option<"pregateValues", "pregate-values", "bool", /*default=*/"true",
           "apply the value gate once per key row in its own kernel; "
           "without it, ops with a value gate are not tiled">,
    Option<"splitShare", "split-share", "int64_t", /*default=*/"3",
           "run a tile as two half tiles (warps / 2 each, their own "
           "unions) when its union times this exceeds its queries' "
           "selected entries, i.e. when its queries share fewer than this "
           "many selections per union row on average (independent "
           "selections); 0: never">,
    Option<"maxRegisters", "max-registers", "int64_t", /*default=*/"0",
           "register cap (ptxas .maxnreg) of the tile attention kernels "
           "(0: none)">,
    Option<"attention", "attention", "bool", /*default=*/"true",
           "tile the gsa.sparse_attention ops">,
    Option<"indexers", "indexers", "bool", /*default=*/"true",
           "tile the standalone gsa.indexer ops">,
    Option<"indexerKeySpan", "indexer-key-span", "int64_t",
           /*default=*/"1024",
           "keys of a row per thread block of a standalone indexer, rounded "
           "up to whole key chunks (0: the whole row)">,
    Option<"unionStream", "union-stream", "bool", /*default=*/"false",
           "the union kernel streams each query's ascending selection list "
           "once over its windows (a tile with a list out of order is "
           "rebuilt by the per-window rescan); false: the rescan alone">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def GSAStageShared : Pass<"gsa-stage-shared"> {
  let summary = "stage the chunk gathers of tile loops in shared memory "
                "with cp.async, multi-buffered";
  let description = [{
    The second stage. In every `gpu.launch`, each `scf.for` that gathers
    chunks (`gsa.tile.gather_rows`, `gsa.tile.gather_words`) becomes a
    software pipeline over a ring of `stages` workgroup buffers per gather:
    the prologue issues chunks 0 .. stages-2, and iteration i issues chunk
    i + stages - 1 into the slot chunk i - 1 used, commits the group, waits
    until chunk i's group has landed (`cp.async.wait_group stages-1`) and
    passes a barrier; the loop body then reads slot i % stages through
    `gsa.tile.shared_tile`, and a barrier at its end keeps a slot from being
    refilled while a warp still reads it. A `consecutive` gather (the
    indexer's key chunks) copies rows offset .. offset + n - 1 and reads no
    position list (so it has no position ring either).

    K / V rows move by 16-byte `cp.async.cg` copies spread over the block's
    threads, their pieces XOR-swizzled by row (piece p of row j at p ^ (j %
    8)) so that ldmatrix reads are free of bank conflicts; the short
    per-key words (masks, positions) by plain loads and stores, or - when
    their rings would not fit next to the rows' - left as gathers that
    `gsa-map-tensor-cores` reads from global memory where used. The
    gathers' index operands are recomputed for the chunk being issued
    (they must be pure functions of the induction variable and of values
    defined outside the loop). With `dynamic-shared`, rings that do not fit
    the 48 KiB of static shared memory become views of the launch's
    `gpu.dynamic_shared_memory` (the rows' rings, at 1024-byte aligned
    offsets; the launch carries the size). With `async-positions` no thread
    waits on a global load while it issues a chunk: the rows' positions
    arrive by 4-byte `cp.async` in a ring of their own (static shared
    memory, a power of two >= stages + 1 slots), copied by the commit group
    that issues the rows `stages` chunks before theirs (the prologue's first
    group also copies chunk stages - 1's, and the prologue waits for it),
    and the per-key words by zero-filling 4-byte `cp.async` (source size 0
    past the chunk's count). With `tma`, a `consecutive` gather of a
    [B, L, D] source with 16-bit elements, D a multiple of 64 and at most
    256 rows per chunk arrives by TMA instead: the host builds the source's
    tensor map (`gsa.tensor_map`, box [1, rows, 64], 128-byte swizzle: the
    same layout as the swizzled copies), thread 0 arms the slot's mbarrier
    with the chunk's bytes and issues one `cp.async.bulk.tensor.3d` per
    128-byte column block, and every thread waits on the barrier's phase
    (chunk ordinal / stages, mod 2) before the loop's barrier; rows past L
    arrive as zeros (the readers mask rows past the count either way), and
    a chunk is issued only below the loop's bound, so no copy is left in
    flight when the block exits. Fails, located, when the rings
    exceed the 48 KiB of static shared memory (without `dynamic-shared`)
    or the 227 KiB a block may use.
  }];
  let options = [
    Option<"stages", "stages", "int64_t", /*default=*/"2",
           "buffers per ring (2 to 4): chunks in flight while one computes">,
    Option<"dynamicShared", "dynamic-shared", "bool", /*default=*/"false",
           "when the rings exceed the 48 KiB of static shared memory, put "
           "the rows' rings in the launch's dynamic shared memory (up to "
           "227 KiB per block) rather than leave the per-key words "
           "unstaged">,
    Option<"asyncPositions", "async-positions", "bool", /*default=*/"false",
           "copy the rows' positions into a small shared ring by cp.async, "
           "`stages` chunks ahead of their rows, and the per-key words by "
           "zero-filling cp.async: issuing a chunk then waits on no global "
           "load">,
    Option<"tma", "tma", "bool", /*default=*/"false",
           "copy consecutive row chunks of [B, L, D] sources (16-bit "
           "elements, D a multiple of 64, at most 256 rows) by TMA: one "
           "thread issues a chunk as one cp.async.bulk.tensor box per "
           "128-byte column block (a tensor map per source, gsa.tensor_map) "
           "onto the slot's mbarrier (sm_90)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def GSAMapTensorCores : Pass<"gsa-map-tensor-cores"> {
  let summary = "distribute the gsa.tile values over the lanes: mma.sync, "
                "ldmatrix and an online softmax in registers";
  let description = [{
    The third stage. In every `gpu.launch` of a tile kernel, warp w owns
    rows 16w .. 16w+15 of every [M, N] tile value, held as the m16n8k16
    accumulator fragments (lane l: rows l/4 and l/4 + 8, columns 2 (l%4)
    and 2 (l%4) + 1 of each 8-column n-tile):

    - `gsa.tile.load_queries`: the A fragments, loaded once;
    - `gsa.tile.dot`: `mma.sync.m16n8k16` with f32 accumulation; B
      fragments from a shared ring by `ldmatrix` (`.trans` for the
      non-transposed V operand), swizzled addresses where the tile is;
      probabilities packed in registers as the next product's A operand;
    - `gsa.tile.scores`, `online_softmax`, `rescale`: per element and per
      row with quad shuffles (each row lives in one lane quad); a row's sum
      stays per lane until `gsa.tile.store_output` reduces it;
    - loops carrying tiles carry their fragments instead;
    - the indexer's ops: `gsa.tile.indexer_heads` loads the lane's two
      rows' head weights (the `weighting` region inlined) and biases;
      `gsa.tile.indexer_scores` is one fma, the `activation` region and the
      weight per product, then the head sum inside the lane column (xor
      shuffles 4, 8, 16 over the heads of a query; 16 heads add the lane's
      two rows too) and the causal mask; `gsa.tile.store_scores` stores
      from the lane of each query's head 0 (8-byte pairs where L is even).

    With `wgmma`, the products of a launch of whole warpgroups (4 or 8
    warps; each warpgroup's 64 rows) run as `wgmma.mma_async m64nNk16` instead: the A operand
    from the same registers, B through shared-memory descriptors of the
    staged slot (its 128-byte column blocks are the 128-byte swizzle
    layout), issued, committed and waited in one block per product; a
    `fence.proxy.async.shared::cta` after each `cp.async.wait_group`
    orders the staged copies before the wgmma reads. Launches of other
    widths keep mma.sync.

    With `shared-queries` too, a wgmma launch's query block also goes to
    shared memory once (each warpgroup's 64 rows in the 128-byte swizzle
    layout, 1024-byte aligned) and wgmma reads its A operand there through
    descriptors: the 32 A registers per thread (d_k 128) are no longer live
    across the key loop. Only where the block fits the static shared memory
    and d_k is a multiple of 64 elements; other products read the
    registers as before.

    Needs `gsa-stage-shared` first (dot operands from shared memory) and a
    tile of 16 rows per warp of the launch.
  }];
  let options = [
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "the products of launches of whole warpgroups on "
           "wgmma.mma_async (sm_90a)">,
    Option<"sharedQueries", "shared-queries", "bool", /*default=*/"false",
           "with wgmma: the query block's A operand from shared memory "
           "(descriptors) instead of registers">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def GSAOutlineKernels : Pass<"gsa-outline-kernels", "::mlir::ModuleOp"> {
  let summary = "outline the gpu.launch ops of the tile stages into "
                "gpu.module @gsa_kernels";
  let description = [{
    Every `gpu.launch` named by `gsa.kernel` becomes a `gpu.func` of that
    name in `gpu.module @gsa_kernels` (created if needed) and a
    `gpu.launch_func` on the values its body captured (the runtime's launch
    manifest), with the known block size and 16-byte aligned workgroup
    buffers. Fails, located, on a launch that still holds `gsa.tile` ops.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
  ];
}

def GSACheckBounds : Pass<"gsa-check-bounds", "::mlir::ModuleOp"> {
  let summary = "a bounds check before every memory access of the GPU kernels "
                "(debugging)";
  let description = [{
    For debugging the kernels this compiler writes: in every `gpu.func` of
    every `gpu.module`, each `memref.load`, `memref.store`,
    `memref.atomic_rmw`, `vector.load` and `vector.store` first checks its
    indices against its memref's shape (unsigned, so a negative index fails
    too; a vector access needs its whole vector inside the dimensions it
    spans)
    and, where one is outside, prints the kernel, the access's location,
    the dimension, the index and the extent (`gpu.printf`) and traps.
    A load whose value is masked afterwards is checked as well: reading past
    a buffer faults wherever the buffer ends its allocation, even if the
    value is thrown away, and compute-sanitizer cannot see such a read
    while the buffer lies inside a larger allocation (PyTorch's caching
    allocator). Copies issued through computed addresses (`cp.async`,
    TMA, inline PTX) are not checked: TMA bounds its boxes itself, and the
    staged copies' addresses are not memref accesses.

    Off in the pipeline by default (`check-bounds=1`, also through
    `GSA_GPU_OPTIONS`): every access gains a compare and a branch.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def GSAGridConstantParams : Pass<"gsa-grid-constant-params"> {
  let summary = "pass the tensor-map arguments of lowered kernels by value, "
                "as grid constants";
  let description = [{
    Runs on the kernels after their conversion to the LLVM dialect. A kernel
    whose `gpu.func` carried `gsa.tensor_map_args` (the positions of its
    `!llvm.ptr` arguments that are TMA tensor maps, from `gsa.tensor_map`)
    takes each of them as a 128-byte, 64-byte aligned parameter
    (`llvm.byval = !llvm.array<128 x i8>`) marked `nvvm.grid_constant`:
    the NVPTX backend then gives its address in parameter space
    (`cvta.param`) instead of copying it to local memory, and that address
    is what `cp.async.bulk.tensor` reads the map from. The conversion to
    LLVM drops argument attributes it does not know, which is why the
    positions travel as a function attribute. Fails, located, on a position
    that is not an `!llvm.ptr` argument.
  }];
  let dependentDialects = [
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
  ];
}

def GSASplitKernelModules
    : Pass<"gsa-split-kernel-modules", "::mlir::ModuleOp"> {
  let summary = "one gpu.module per kernel, so that the kernels' lowering "
                "runs in parallel";
  let description = [{
    The pass manager runs a nested pipeline on sibling `gpu.module` ops in
    parallel, but on the kernels of one module one after the other: with
    all of a program's kernels in `gpu.module @gsa_kernels`, the
    canonicalisation and the GPU-to-NVVM lowering of the 128K core's seven
    kernels took 0.16 s on one thread (of a 0.71 s compile on two cores).
    This pass moves each `gpu.func` of a module that holds only kernels into
    a module of its own, `@<module>__<kernel>`, carrying the original's
    attributes and `gsa.joins = "<module>"`, and points every
    `gpu.launch_func` at it. `gsa-serialize-kernels` joins the parts back
    into one `gpu.binary` named `<module>` (the runtime's single PTX
    module). A module holding anything but kernels, or one kernel, stays.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
  ];
}

def GSASerializeKernels
    : Pass<"gsa-serialize-kernels", "::mlir::ModuleOp"> {
  let summary = "serialise each kernel of gsa_kernels on its own thread "
                "into one gpu.binary";
  let description = [{
    `gpu-module-to-binary` translates and compiles a gpu.module as one LLVM
    module on one thread, which is most of a cold compile (0.73 of 0.98 s
    for the 128K core on this machine). This pass splits each target-carrying
    `gpu.module` into one module per kernel, serialises them in parallel
    through the module's target attribute (`compilation-target`: `isa` for
    PTX, the runtime's input), and joins the texts into the single object
    of a `gpu.binary` of the module's name: the first text whole, the
    others without their `.version` / `.target` / `.address_size` header.
    Kernels share no module-level state (their workgroup buffers are
    declared inside each entry), so the joined text is the module's; the
    one module-level symbol, the dynamic shared memory array, is an
    `.extern` declaration, which PTX accepts once per part.
    Other compilation targets fall back to one module on one thread.

    With `ptxas` (a path), each part's PTX is also assembled for its
    chip on the part's thread right after LLVM made it - one kernel's
    ptxas then runs while others are still in LLVM, instead of one ptxas
    over the joined module after every kernel - and the gpu.binary gets
    `gsa.cubins`: one `{kernels = [...], image = "..."}` per part, each a
    module the runtime loads on its own; only when every part assembled
    (else the PTX object alone).

    With `report-times`, each part's time (on its thread) goes to stderr,
    longest first, as `gsa-serialize-kernels: <ms> ms <kernel>`: the
    longest part bounds the pass's wall time (the runtime's
    `GSA_COMPILE_TIMES`).
  }];
  let options = [
    Option<"compilationTarget", "format", "std::string", /*default=*/"\"isa\"",
           "isa (PTX text), bin or fatbin">,
    Option<"ptxas", "ptxas", "std::string", /*default=*/"\"\"",
           "a ptxas path: each part's PTX assembled on its thread as soon "
           "as LLVM made it, the cubins in gsa.cubins on the gpu.binary">,
    Option<"reportTimes", "report-times", "bool", /*default=*/"false",
           "print each part's serialisation time (LLVM's optimiser and "
           "NVPTX back end) to stderr, longest first">
  ];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
  ];
}

#endif // GSA_PASSES_TD
