// Shared pieces of the CPU convolution kernels: the AOT calling convention of
// MindSpore's ops.Custom(func_type="aot"), the conv geometry passed as an int32
// input tensor, and the fused epilogue (bias, residual add, activation).
#pragma once
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <type_traits>

// Layout of the int32 "geometry" input (see tuner/kernels/cpu/geometry.py).
enum GeometryIndex {
  G_KH = 0, G_KW, G_SH, G_SW, G_PT, G_PB, G_PL, G_PR, G_ACT, G_COUNT
};
enum Activation { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2 };

// An exported, unmangled function returning int: the AOT entry points (MindSpore reads the int
// as the call's status) and the kernels' queries of their compiled-in constants.
#define C_EXPORT_INT extern "C" __attribute__((visibility("default"))) int

static inline bool dtype_is(const char *dtype, const char *want) {
  return dtype != nullptr && std::strcmp(dtype, want) == 0;
}

// Shapes, strides, padding and activation of one convolution call.
struct ConvGeometry {
  int N, C, H, W, OC, OH, OW, KH, KW, SH, SW, PT, PL, act;
};

// The calling convention both kernels share: params = x, weight, bias, geometry,
// [residual], out (float32 NCHW; geometry is the int32 tensor indexed by GeometryIndex).
struct ConvCall {
  ConvGeometry g;
  const float *x, *w, *b, *residual;  // residual is nullptr when absent
  float *out;
};

// Fills `call` from MindSpore's AOT arguments; returns 0, or the error code to return.
static inline int read_conv_call(int nparam, void **params, int *ndims, int64_t **shapes,
                                 const char **dtypes, ConvCall &call) {
  if (nparam != 5 && nparam != 6) return 1;
  const int out_index = nparam - 1;
  if (ndims[0] != 4 || ndims[out_index] != 4) return 2;
  if (!dtype_is(dtypes[0], "float32") || !dtype_is(dtypes[out_index], "float32")) return 3;
  const int32_t *geo = static_cast<const int32_t *>(params[3]);
  ConvGeometry &g = call.g;
  g.N = (int)shapes[0][0];
  g.C = (int)shapes[0][1];
  g.H = (int)shapes[0][2];
  g.W = (int)shapes[0][3];
  g.OC = (int)shapes[out_index][1];
  g.OH = (int)shapes[out_index][2];
  g.OW = (int)shapes[out_index][3];
  g.KH = geo[G_KH];
  g.KW = geo[G_KW];
  g.SH = geo[G_SH];
  g.SW = geo[G_SW];
  g.PT = geo[G_PT];
  g.PL = geo[G_PL];
  g.act = geo[G_ACT];
  call.x = static_cast<const float *>(params[0]);
  call.w = static_cast<const float *>(params[1]);
  call.b = static_cast<const float *>(params[2]);
  call.residual = nparam == 6 ? static_cast<const float *>(params[4]) : nullptr;
  call.out = static_cast<float *>(params[out_index]);
  return 0;
}

template <int ACT>
static inline __m512 activate(__m512 v) {
  if (ACT == ACT_RELU) return _mm512_max_ps(v, _mm512_setzero_ps());
  if (ACT == ACT_RELU6)
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
  return v;
}

// Calls kernel(act, residual) with act = std::integral_constant<int, ACT_*> for `activation`
// and residual = std::bool_constant<has_residual>: one instantiation per fused epilogue.
template <typename Kernel>
static inline void with_epilogue(int activation, bool has_residual, Kernel &&kernel) {
  const auto with_act = [&](auto act) {
    if (has_residual) kernel(act, std::true_type{});
    else kernel(act, std::false_type{});
  };
  switch (activation) {
    case ACT_RELU: with_act(std::integral_constant<int, ACT_RELU>{}); break;
    case ACT_RELU6: with_act(std::integral_constant<int, ACT_RELU6>{}); break;
    default: with_act(std::integral_constant<int, ACT_NONE>{}); break;
  }
}

// The whole body of an AOT entry point: read the call into a G (a ConvGeometry subclass),
// `check(g)` returns 0 or the error code for a geometry the kernel cannot run, then
// run(g, call, act, residual) with the epilogue as compile-time constants (with_epilogue).
template <typename G, typename Check, typename Run>
static inline int run_conv_call(int nparam, void **params, int *ndims, int64_t **shapes,
                                const char **dtypes, Check check, Run run) {
  ConvCall call;
  if (int error = read_conv_call(nparam, params, ndims, shapes, dtypes, call)) return error;
  const G g{call.g};
  if (int error = check(g)) return error;
  with_epilogue(g.act, call.residual != nullptr,
                [&](auto act, auto residual) { run(g, call, act, residual); });
  return 0;
}

static inline __mmask16 tail_mask(int remaining) {
  if (remaining >= 16) return (__mmask16)0xFFFF;
  if (remaining <= 0) return (__mmask16)0;
  return (__mmask16)((1u << remaining) - 1u);
}

// Per-thread scratch buffer, 64-byte aligned, grown on demand and kept for reuse.
static inline float *thread_scratch(size_t floats, int slot) {
  static thread_local float *buffers[2] = {nullptr, nullptr};
  static thread_local size_t sizes[2] = {0, 0};
  if (sizes[slot] < floats) {
    std::free(buffers[slot]);
    size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    buffers[slot] = static_cast<float *>(std::aligned_alloc(64, bytes));
    sizes[slot] = floats;
  }
  return buffers[slot];
}
