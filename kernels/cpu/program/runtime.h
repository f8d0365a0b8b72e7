// The oneDNN runtime of the programs: the ABI check, the engine, the stream and the
// threads oneDNN runs its parallel loops on (thread_pool.h; OpenMP only gives their number).
// Part of program.cpp's translation unit.
#pragma once
#include <omp.h>

#include <cstring>
#include <string>
#include <vector>

#include "dnnl_abi.h"
#include "errors.h"
#include "thread_pool.h"

namespace {

double as_double(int64_t bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// The enumerations of dnnl_abi.h, named by the library itself: a mismatch means another ABI.
void check_abi() {
  const dnnl_version_t *version = dnnl_version();
  if (version->major != 3)
    throw Error{"oneDNN " + std::to_string(version->major) + "." +
                std::to_string(version->minor) + " found, the runtime needs major version 3"};
  if (version->cpu_runtime != DNNL_RUNTIME_THREADPOOL)
    throw Error{"oneDNN's CPU runtime is not the threadpool runtime"};
  const std::pair<const char *, const char *> names[] = {
      {dnnl_dt2str(dnnl_f32), "f32"},
      {dnnl_fmt_tag2str(dnnl_a), "a"},
      {dnnl_fmt_tag2str(dnnl_abcd), "abcd"},
      {dnnl_fmt_tag2str(dnnl_acdb), "acdb"},
      {dnnl_fmt_tag2str(dnnl_aBcd16b), "aBcd16b"},
      {dnnl_fmt_tag2str(dnnl_aBcd8b), "aBcd8b"},
      {dnnl_fmt_tag2str(dnnl_format_tag_any), "any"},
      {dnnl_prop_kind2str(dnnl_forward_inference), "forward_inference"},
      {dnnl_engine_kind2str(dnnl_cpu), "cpu"},
      {dnnl_scratchpad_mode2str(dnnl_scratchpad_mode_user), "user"},
      {dnnl_alg_kind2str(dnnl_convolution_direct), "convolution_direct"},
      {dnnl_alg_kind2str(dnnl_eltwise_relu), "eltwise_relu"},
      {dnnl_alg_kind2str(dnnl_eltwise_clip_v2), "eltwise_clip_v2"},
      {dnnl_alg_kind2str(dnnl_eltwise_logistic), "eltwise_logistic"},
      {dnnl_alg_kind2str(dnnl_eltwise_swish), "eltwise_swish"},
      {dnnl_alg_kind2str(dnnl_eltwise_gelu_erf), "eltwise_gelu_erf"},
      {dnnl_alg_kind2str(dnnl_eltwise_gelu_tanh), "eltwise_gelu_tanh"},
      {dnnl_alg_kind2str(dnnl_eltwise_hardswish), "eltwise_hardswish"},
      {dnnl_alg_kind2str(dnnl_eltwise_hardsigmoid), "eltwise_hardsigmoid"},
      {dnnl_alg_kind2str(dnnl_eltwise_tanh), "eltwise_tanh"},
      {dnnl_alg_kind2str(dnnl_eltwise_linear), "eltwise_linear"},
      {dnnl_alg_kind2str(dnnl_pooling_max), "pooling_max"},
      {dnnl_alg_kind2str(dnnl_pooling_avg_include_padding), "pooling_avg_include_padding"},
      {dnnl_alg_kind2str(dnnl_pooling_avg_exclude_padding), "pooling_avg_exclude_padding"},
      {dnnl_alg_kind2str(dnnl_binary_add), "binary_add"},
      {dnnl_alg_kind2str(dnnl_binary_mul), "binary_mul"},
      {dnnl_alg_kind2str(dnnl_binary_sub), "binary_sub"},
      {dnnl_alg_kind2str(dnnl_binary_div), "binary_div"},
      {dnnl_alg_kind2str(dnnl_binary_max), "binary_max"},
      {dnnl_alg_kind2str(dnnl_binary_min), "binary_min"},
      {dnnl_alg_kind2str(dnnl_reduction_mean), "reduction_mean"},
      {dnnl_alg_kind2str(dnnl_reduction_max), "reduction_max"},
      {dnnl_alg_kind2str(dnnl_reduction_sum), "reduction_sum"},
      {dnnl_alg_kind2str(dnnl_softmax_accurate), "softmax_accurate"},
      {dnnl_alg_kind2str(dnnl_resampling_nearest), "resampling_nearest"},
  };
  for (const auto &[actual, expected] : names)
    if (actual == nullptr || std::strcmp(actual, expected) != 0)
      throw Error{std::string("oneDNN ABI mismatch: expected ") + expected + ", library says " +
                  (actual ? actual : "(null)")};
  // the memory descriptor queries (no names to compare): asked of a descriptor of known dims
  dnnl_dims_t dims{2, 3, 5};
  dnnl_memory_desc_t md = nullptr;
  check(dnnl_memory_desc_create_with_tag(&md, 3, dims, dnnl_f32, dnnl_abc), "ABI check md");
  int32_t ndims = 0;
  const dnnl_dims_t *queried = nullptr;
  const bool ok = dnnl_memory_desc_query(md, dnnl_query_ndims_s32, &ndims) == dnnl_success &&
                  dnnl_memory_desc_query(md, dnnl_query_dims, &queried) == dnnl_success &&
                  ndims == 3 && queried && (*queried)[0] == 2 && (*queried)[1] == 3 &&
                  (*queried)[2] == 5;
  dnnl_memory_desc_destroy(md);
  if (!ok) throw Error{"oneDNN ABI mismatch: memory descriptor queries (ndims, dims)"};
}

struct Runtime {
  dnnl_engine_t engine = nullptr;
  dnnl_stream_t stream = nullptr;
  SpinPool *pool = nullptr;  // never destroyed (see thread_pool.h)
  Runtime() {
    check_abi();
    check(dnnl_threadpool_interop_set_max_concurrency(omp_get_max_threads()), "concurrency");
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine");
    pool = new SpinPool(omp_get_max_threads());
    check(dnnl_threadpool_interop_stream_create(&stream, engine, pool), "stream");
  }
};

// A convolution the runtime computes itself on the pool's threads (winograd.h,
// pointwise_depthwise.h): operands src, weights, bias, residual (null: none), dst.
class NativeConv {
 public:
  virtual ~NativeConv() = default;
  virtual int64_t weight_floats() const = 0;  // the packed weights' size it expects
  virtual void run(const float *src, const float *weights, const float *bias,
                   const float *residual, float *dst, SpinPool &pool) const = 0;
};

// The kernel class of a step on a CPU without AVX2 and FMA: refused where the step is built,
// naming the kernel.
class RefusedConv : public NativeConv {
 public:
  explicit RefusedConv(const std::string &kernel) {
    throw Error{kernel + " needs AVX2 and FMA (avx2, fma), which this CPU lacks"};
  }
  int64_t weight_floats() const override { return 0; }
  void run(const float *, const float *, const float *, const float *, float *,
           SpinPool &) const override {}
};

// A buffer of at least `floats` floats, 64-byte aligned, of the calling thread: slot `slot` of
// `Slots` kept for the kernel class `Owner` (each class its own, so their buffers never meet),
// grown as needed and kept for the thread's next call.
template <class Owner, int Slots>
float *thread_scratch(size_t floats, int slot) {
  static thread_local std::vector<float> buffers[Slots];
  std::vector<float> &b = buffers[slot];
  if (b.size() < floats + 16) b.resize(floats + 16);
  return reinterpret_cast<float *>((reinterpret_cast<uintptr_t>(b.data()) + 63) / 64 * 64);
}

Runtime &runtime() {
  static Runtime instance;  // thrown errors propagate to the first caller and retry next time
  return instance;
}


}  // namespace
