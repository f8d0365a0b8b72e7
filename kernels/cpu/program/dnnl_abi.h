// The subset of oneDNN's C API (major version 3) that the program runtime calls, declared here
// because MindSpore's wheel ships the library (mindspore/lib/libdnnl.so.3, built with the
// threadpool CPU runtime) without its headers. Every value below is a fact of oneDNN 3's ABI;
// check_abi() in runtime.h compares the enumerations with the library's own names for them
// (dnnl_fmt_tag2str, dnnl_alg_kind2str, ...) before anything is created, and refuses to run on a
// mismatch. Handles are opaque pointers; memory descriptors are handles too (oneDNN >= 3.0).
#pragma once
#include <cstdint>
#include <functional>

extern "C" {
typedef int dnnl_status_t;
enum : int { dnnl_success = 0 };

typedef int dnnl_data_type_t;
enum : int { dnnl_f32 = 3 };

typedef int dnnl_format_tag_t;
enum : int { dnnl_format_tag_any = 1, dnnl_a = 2, dnnl_ab = 3, dnnl_abc = 4, dnnl_abcd = 5,
             dnnl_abcde = 6, dnnl_acdb = 22, dnnl_aBcd16b = 78, dnnl_aBcd8b = 102 };

typedef int dnnl_prop_kind_t;
enum : int { dnnl_forward_inference = 96 };

typedef int dnnl_engine_kind_t;
enum : int { dnnl_cpu = 1 };

typedef int dnnl_alg_kind_t;
enum : int {
  dnnl_convolution_direct = 0x1,
  dnnl_eltwise_relu = 0x20, dnnl_eltwise_tanh = 0x21, dnnl_eltwise_elu = 0x22,
  dnnl_eltwise_linear = 0x26, dnnl_eltwise_hardsigmoid = 0x28, dnnl_eltwise_logistic = 0x29,
  dnnl_eltwise_gelu_tanh = 0x2b, dnnl_eltwise_swish = 0x2c, dnnl_eltwise_clip_v2 = 0x2f,
  dnnl_eltwise_gelu_erf = 0x31, dnnl_eltwise_hardswish = 0x34,
  dnnl_pooling_max = 0x1ff, dnnl_pooling_avg_include_padding = 0x2ff,
  dnnl_pooling_avg_exclude_padding = 0x3ff,
  dnnl_binary_add = 0x1fff0, dnnl_binary_mul = 0x1fff1, dnnl_binary_max = 0x1fff2,
  dnnl_binary_min = 0x1fff3, dnnl_binary_div = 0x1fff4, dnnl_binary_sub = 0x1fff5,
  dnnl_reduction_max = 0x2fff2, dnnl_reduction_sum = 0x2fff4, dnnl_reduction_mean = 0x2fff6,
  dnnl_softmax_accurate = 0x30000,
  dnnl_resampling_nearest = 0x2fff0,
};

typedef int dnnl_query_t;
enum : int { dnnl_query_impl_info_str = 8, dnnl_query_exec_arg_md = 255,
             dnnl_query_ndims_s32 = 256, dnnl_query_dims = 257,
             dnnl_query_inner_nblks_s32 = 263 };

typedef int dnnl_scratchpad_mode_t;
enum : int { dnnl_scratchpad_mode_user = 1 };

enum : unsigned { dnnl_use_scale = 0x2u, dnnl_use_shift = 0x4u };

enum : int {
  DNNL_ARG_SRC = 1, DNNL_ARG_FROM = 1, DNNL_ARG_SRC_1 = 2, DNNL_ARG_DST = 17, DNNL_ARG_TO = 17, DNNL_ARG_WEIGHTS = 33,
  DNNL_ARG_BIAS = 41, DNNL_ARG_SCALE = 51, DNNL_ARG_SHIFT = 52, DNNL_ARG_SCRATCHPAD = 80,
  DNNL_ARG_MULTIPLE_SRC = 1024, DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE = 32768,
};
#define DNNL_ARG_ATTR_MULTIPLE_POST_OP(idx) (DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * ((idx) + 1))
#define DNNL_MAX_NDIMS 12

typedef int64_t dnnl_dim_t;
typedef dnnl_dim_t dnnl_dims_t[DNNL_MAX_NDIMS];
typedef struct dnnl_engine *dnnl_engine_t;
typedef struct dnnl_stream *dnnl_stream_t;
typedef struct dnnl_memory_desc *dnnl_memory_desc_t;
typedef const struct dnnl_memory_desc *const_dnnl_memory_desc_t;
typedef struct dnnl_memory *dnnl_memory_t;
typedef struct dnnl_primitive_desc *dnnl_primitive_desc_t;
typedef const struct dnnl_primitive_desc *const_dnnl_primitive_desc_t;
typedef struct dnnl_primitive_attr *dnnl_primitive_attr_t;
typedef const struct dnnl_primitive_attr *const_dnnl_primitive_attr_t;
typedef struct dnnl_post_ops *dnnl_post_ops_t;
typedef const struct dnnl_post_ops *const_dnnl_post_ops_t;
typedef struct dnnl_primitive *dnnl_primitive_t;
typedef const struct dnnl_primitive *const_dnnl_primitive_t;
typedef struct { int arg; dnnl_memory_t memory; } dnnl_exec_arg_t;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; }
    dnnl_version_t;
enum : unsigned { DNNL_RUNTIME_THREADPOOL = 8u };

const dnnl_version_t *dnnl_version(void);
const char *dnnl_status2str(dnnl_status_t);
const char *dnnl_dt2str(dnnl_data_type_t);
const char *dnnl_fmt_tag2str(dnnl_format_tag_t);
const char *dnnl_prop_kind2str(dnnl_prop_kind_t);
const char *dnnl_alg_kind2str(dnnl_alg_kind_t);
const char *dnnl_engine_kind2str(dnnl_engine_kind_t);
const char *dnnl_scratchpad_mode2str(dnnl_scratchpad_mode_t);

dnnl_status_t dnnl_engine_create(dnnl_engine_t *, dnnl_engine_kind_t, size_t index);
dnnl_status_t dnnl_threadpool_interop_stream_create(dnnl_stream_t *, dnnl_engine_t, void *pool);
dnnl_status_t dnnl_threadpool_interop_set_max_concurrency(int);
dnnl_status_t dnnl_stream_wait(dnnl_stream_t);

dnnl_status_t dnnl_memory_desc_create_with_tag(dnnl_memory_desc_t *, int ndims,
                                               const dnnl_dims_t dims, dnnl_data_type_t,
                                               dnnl_format_tag_t);
dnnl_status_t dnnl_memory_desc_create_with_strides(dnnl_memory_desc_t *, int ndims,
                                                   const dnnl_dims_t dims, dnnl_data_type_t,
                                                   const dnnl_dims_t strides);
dnnl_status_t dnnl_memory_desc_create_submemory(dnnl_memory_desc_t *, const_dnnl_memory_desc_t,
                                                const dnnl_dims_t dims,
                                                const dnnl_dims_t offsets);
dnnl_status_t dnnl_memory_desc_reshape(dnnl_memory_desc_t *, const_dnnl_memory_desc_t,
                                       int ndims, const dnnl_dims_t dims);
dnnl_status_t dnnl_memory_desc_permute_axes(dnnl_memory_desc_t *, const_dnnl_memory_desc_t,
                                            const int *permutation);
dnnl_status_t dnnl_memory_desc_clone(dnnl_memory_desc_t *, const_dnnl_memory_desc_t);
dnnl_status_t dnnl_memory_desc_destroy(dnnl_memory_desc_t);
int dnnl_memory_desc_equal(const_dnnl_memory_desc_t, const_dnnl_memory_desc_t);
size_t dnnl_memory_desc_get_size(const_dnnl_memory_desc_t);
dnnl_status_t dnnl_memory_desc_query(const_dnnl_memory_desc_t, dnnl_query_t, void *result);

dnnl_status_t dnnl_memory_create(dnnl_memory_t *, const_dnnl_memory_desc_t, dnnl_engine_t,
                                 void *handle);
dnnl_status_t dnnl_memory_set_data_handle(dnnl_memory_t, void *handle);
dnnl_status_t dnnl_memory_get_data_handle(dnnl_memory_t, void **handle);
dnnl_status_t dnnl_memory_destroy(dnnl_memory_t);

dnnl_status_t dnnl_post_ops_create(dnnl_post_ops_t *);
dnnl_status_t dnnl_post_ops_append_eltwise(dnnl_post_ops_t, dnnl_alg_kind_t, float alpha,
                                           float beta);
dnnl_status_t dnnl_post_ops_append_sum(dnnl_post_ops_t, float scale, int32_t zero_point,
                                       dnnl_data_type_t);
dnnl_status_t dnnl_post_ops_append_binary(dnnl_post_ops_t, dnnl_alg_kind_t,
                                          const_dnnl_memory_desc_t src1);
dnnl_status_t dnnl_post_ops_destroy(dnnl_post_ops_t);
dnnl_status_t dnnl_primitive_attr_create(dnnl_primitive_attr_t *);
dnnl_status_t dnnl_primitive_attr_set_post_ops(dnnl_primitive_attr_t, const_dnnl_post_ops_t);
dnnl_status_t dnnl_primitive_attr_set_scratchpad_mode(dnnl_primitive_attr_t,
                                                      dnnl_scratchpad_mode_t);
dnnl_status_t dnnl_primitive_attr_destroy(dnnl_primitive_attr_t);

dnnl_status_t dnnl_convolution_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, dnnl_alg_kind_t,
    const_dnnl_memory_desc_t src, const_dnnl_memory_desc_t weights, const_dnnl_memory_desc_t bias,
    const_dnnl_memory_desc_t dst, const dnnl_dims_t strides, const dnnl_dims_t dilates,
    const dnnl_dims_t padding_l, const dnnl_dims_t padding_r, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_pooling_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, dnnl_alg_kind_t,
    const_dnnl_memory_desc_t src, const_dnnl_memory_desc_t dst, const dnnl_dims_t strides,
    const dnnl_dims_t kernel, const dnnl_dims_t dilation, const dnnl_dims_t padding_l,
    const dnnl_dims_t padding_r, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_eltwise_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, dnnl_alg_kind_t,
    const_dnnl_memory_desc_t src, const_dnnl_memory_desc_t dst, float alpha, float beta,
    const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_binary_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_alg_kind_t, const_dnnl_memory_desc_t src0,
    const_dnnl_memory_desc_t src1, const_dnnl_memory_desc_t dst, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_concat_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, const_dnnl_memory_desc_t dst, int n, int axis,
    const_dnnl_memory_desc_t const *srcs, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_matmul_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, const_dnnl_memory_desc_t src,
    const_dnnl_memory_desc_t weights, const_dnnl_memory_desc_t bias,
    const_dnnl_memory_desc_t dst, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_reduction_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_alg_kind_t, const_dnnl_memory_desc_t src,
    const_dnnl_memory_desc_t dst, float p, float eps, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_layer_normalization_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, const_dnnl_memory_desc_t src,
    const_dnnl_memory_desc_t dst, const_dnnl_memory_desc_t stat, float epsilon, unsigned flags,
    const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_group_normalization_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, const_dnnl_memory_desc_t src,
    const_dnnl_memory_desc_t dst, dnnl_dim_t groups, float epsilon, unsigned flags,
    const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_resampling_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, dnnl_alg_kind_t,
    const float *factors, const_dnnl_memory_desc_t src, const_dnnl_memory_desc_t dst,
    const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_softmax_forward_primitive_desc_create(
    dnnl_primitive_desc_t *, dnnl_engine_t, dnnl_prop_kind_t, dnnl_alg_kind_t,
    const_dnnl_memory_desc_t src, const_dnnl_memory_desc_t dst, int axis,
    const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_reorder_primitive_desc_create(
    dnnl_primitive_desc_t *, const_dnnl_memory_desc_t src, dnnl_engine_t,
    const_dnnl_memory_desc_t dst, dnnl_engine_t, const_dnnl_primitive_attr_t);
dnnl_status_t dnnl_primitive_desc_next_impl(dnnl_primitive_desc_t);
dnnl_status_t dnnl_primitive_desc_query(const_dnnl_primitive_desc_t, dnnl_query_t, int index,
                                        void *result);
const_dnnl_memory_desc_t dnnl_primitive_desc_query_md(const_dnnl_primitive_desc_t, dnnl_query_t,
                                                      int index);
dnnl_status_t dnnl_primitive_desc_destroy(dnnl_primitive_desc_t);
dnnl_status_t dnnl_primitive_create(dnnl_primitive_t *, const_dnnl_primitive_desc_t);
dnnl_status_t dnnl_get_primitive_cache_capacity(int *);
dnnl_status_t dnnl_set_primitive_cache_capacity(int);
dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t, dnnl_stream_t, int nargs,
                                     const dnnl_exec_arg_t *args);
dnnl_status_t dnnl_primitive_destroy(dnnl_primitive_t);
}  // extern "C"

// oneDNN's threadpool interface (dnnl::threadpool_interop::threadpool_iface): a library built
// with the threadpool runtime calls these virtual functions to run its parallel loops.
namespace dnnl {
namespace threadpool_interop {
struct threadpool_iface {
  virtual int get_num_threads() const = 0;
  virtual bool get_in_parallel() const = 0;
  virtual void parallel_for(int n, const std::function<void(int, int)> &fn) = 0;
  virtual uint64_t get_flags() const = 0;
  virtual ~threadpool_iface() = default;
};
}  // namespace threadpool_interop
}  // namespace dnnl
