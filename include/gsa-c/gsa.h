/*===- gsa.h - the C API of the gsa compiler and runtime -------------------===*\
|*                                                                            *|
|* Compile a gsa program for one specialisation (input dtypes and shapes),   *|
|* query it, and launch it on caller-owned buffers. No C++ exception or LLVM *|
|* symbol crosses this boundary: every call that can fail returns NULL or a  *|
|* nonzero status and leaves a message for gsa_last_error().                 *|
|* Kernels are cached per specialisation in memory and, for CUDA, on disk    *|
|* (GSA_CACHE_DIR, default ~/.cache/gsa; GSA_DISABLE_CACHE=1 turns it off).  *|
|* CUDA kernels are assembled into cubins where ptxas is found (GSA_PTXAS: a *|
|* path, or 0 for the driver's PTX JIT); GSA_GPU_OPTIONS sets the lowering's *|
|* options (docs/gpu-path.md).                                               *|
\*===----------------------------------------------------------------------===*/

#ifndef GSA_C_GSA_H
#define GSA_C_GSA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GSA_API __attribute__((visibility("default")))
#else
#define GSA_API
#endif

typedef struct gsa_context gsa_context;
typedef struct gsa_kernel gsa_kernel;

typedef enum { GSA_F16 = 0, GSA_BF16 = 1, GSA_F32 = 2, GSA_F64 = 3, GSA_I32 = 4 } gsa_dtype;
typedef enum { GSA_BACKEND_CPU = 0, GSA_BACKEND_CUDA = 1 } gsa_backend;

#define GSA_MAX_RANK 8

typedef struct {
  gsa_dtype dtype;
  int32_t rank;
  int64_t shape[GSA_MAX_RANK]; /* -1: dynamic (only in gsa_kernel_result) */
} gsa_tensor_desc;

/* The message of the last failed call on this thread ("" if none). */
GSA_API const char *gsa_last_error(void);
GSA_API const char *gsa_version(void);

GSA_API gsa_context *gsa_context_create(void);
GSA_API void gsa_context_destroy(gsa_context *ctx);

/* Compiles `program` (MLIR text) for inputs `inputs[0..n)`; `entry` may be
 * NULL (the only public function). Returns NULL on error. */
GSA_API gsa_kernel *gsa_compile(gsa_context *ctx, const char *program,
                                const char *entry, gsa_backend backend,
                                int32_t n, const gsa_tensor_desc *inputs);
GSA_API void gsa_kernel_release(gsa_kernel *kernel);

GSA_API int32_t gsa_kernel_num_inputs(const gsa_kernel *kernel);
GSA_API int32_t gsa_kernel_num_results(const gsa_kernel *kernel);
/* The type of input or result `i`; 0 on success. */
GSA_API int gsa_kernel_input(const gsa_kernel *kernel, int32_t i, gsa_tensor_desc *out);
GSA_API int gsa_kernel_result(const gsa_kernel *kernel, int32_t i, gsa_tensor_desc *out);

/* Runs the kernel on row-major contiguous buffers: device pointers on
 * `stream` (a CUstream; NULL = the default stream) for CUDA kernels, host
 * pointers for CPU kernels. Outputs are allocated by the caller with the
 * shapes of gsa_kernel_result. CUDA buffers must be 16-byte aligned (the
 * kernels copy and store 16-byte pieces; a misaligned one is refused with
 * an error naming it). Returns 0 on success. */
GSA_API int gsa_launch(gsa_kernel *kernel, void *const *inputs,
                       void *const *outputs, void *stream);

/* Device memory a launch needs beyond its inputs and outputs (selection
 * statistics and candidates, query-tile unions; O(B L k_max), never
 * O(L^2)); 0 for CPU kernels. */
GSA_API uint64_t gsa_kernel_workspace_size(const gsa_kernel *kernel);

/* gsa_launch on a caller-owned device workspace of `workspace_bytes` >=
 * gsa_kernel_workspace_size bytes, 256-byte aligned, used in stream order:
 * nothing is allocated. gsa_launch itself takes the workspace from the
 * driver's stream-ordered pool (cuMemAllocAsync) for each call.
 * The second launch of a kernel on the same inputs, outputs and workspace
 * (the same pointers) and the same stream records its kernel launches as a
 * CUDA graph, and later such launches replay it (one driver call instead of
 * one per kernel; at most 8 graphs per kernel are kept). The graph reads
 * and writes the same addresses, so new contents there are seen. A stream
 * that is capturing a graph of the caller's gets direct launches (which
 * that capture records). GSA_DISABLE_GRAPHS=1 launches every kernel
 * directly. */
GSA_API int gsa_launch_with_workspace(gsa_kernel *kernel, void *const *inputs,
                                      void *const *outputs, void *workspace,
                                      uint64_t workspace_bytes, void *stream);

/* In-memory hits, compilations, kernels read back from the disk cache. */
GSA_API void gsa_cache_stats(const gsa_context *ctx, uint64_t *hits,
                             uint64_t *misses, uint64_t *disk_hits);

#ifdef __cplusplus
}
#endif

#endif /* GSA_C_GSA_H */
