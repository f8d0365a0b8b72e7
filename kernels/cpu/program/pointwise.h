// A 1x1 convolution (groups 1, no padding, stride 1 or 2) as a program step on channels-last
// (NHWC) values, run on the program's thread pool. Part of program.cpp's translation unit.
//
//   dst[n][oy][ox][c] = act(sum_k src[n][oy*s][ox*s][k] * w[k][c] + bias[c] [+ residual])
//
// A GEMM of the output pixels (rows of A: a pixel's K input channels, `lda` apart) by the
// weights, packed by tuner/kernels/cpu/packing.py (pack_pointwise_nhwc_weight) in panels of
// P = 16 * vecs output channels, [panel][K][P] (output channels zero-padded to whole panels):
// the register tile, `rows` pixels x `vecs` vectors, walks a panel's K rows contiguously. The
// batch's output pixels are one row of tiles (NHWC pixels are contiguous; with stride 2 the
// pixels read are gathered first), the last ones taking the tile of exactly that many rows.
//
// Work, on batch 1's small late maps the weights outweigh the activations (ResNet50's 7x7
// layers: 4 MB of weights for 49 pixels), so there the threads split the panels, each reading
// its own share of the weights once, and a thread fetches its next panel into L2 while its
// current panel's tiles run: each panel's first tile otherwise waits for memory (ResNet50's
// 100 MB of weights do not stay in cache from one inference to the next). Elsewhere (more output pixels than output channels) the threads
// split the tiles, and a task runs every panel over a block of its tiles (inputs of at most
// kBlockBytes, kept in cache) before the next block.
#pragma once
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "register_tile.h"
#include "runtime.h"
#include "vec16.h"

namespace {

struct PointwiseShape {
  int N, K, H, W, C, OH, OW, stride, rows, vecs, tasks_per_thread, act;
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

// C[r][v] = act(bias[v] + sum_k A[r][k] * B[k][v] [+ residual[r][v]]), B a panel of K rows of
// NV vectors; with `prefetch`, one 64-byte line from there on per k fetched into L2.
template <int R, int NV>
void pointwise_tile(const float *a, int64_t lda, const float *b, int k_count, float *c,
                    int64_t ldc, const float *bias, const float *residual, int act,
                    const char *prefetch) {
  Vec16 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = v_loadu(bias + v * 16);
  // without a line to fetch, the loop fetches its own panel's first line again (in L1)
  const char *fetch = prefetch ? prefetch : reinterpret_cast<const char *>(b);
  const int64_t fetch_step = prefetch ? 64 : 0;
#pragma GCC unroll 2
  for (int k = 0; k < k_count; k++) {
    _mm_prefetch(fetch + k * fetch_step, _MM_HINT_T1);
    Vec16 w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) w[v] = v_loadu(b + (int64_t)k * 16 * NV + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const Vec16 x = v_set1(a[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = v_fmadd(x, w[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      Vec16 y = acc[r][v];
      if (residual) y = v_add(y, v_loadu(residual + r * ldc + v * 16));
      v_storeu(c + r * ldc + v * 16, act ? tile_activation(y, act) : y);
    }
}

using PointwiseTile = void (*)(const float *, int64_t, const float *, int, float *, int64_t,
                               const float *, const float *, int, const char *);

constexpr int kPointwiseMaxRows = 14;

template <int NV, int... R>
constexpr std::array<PointwiseTile, sizeof...(R)> pointwise_tiles(
    std::integer_sequence<int, R...>) {
  return {&pointwise_tile<R + 1, NV>...};
}

// The tile of `rows` pixels x `vecs` vectors: rows 1-14 with 1 or 2 vectors, 1-7 with 4; or null.
PointwiseTile pointwise_tile_for(int rows, int vecs) {
  static constexpr auto one = pointwise_tiles<1>(std::make_integer_sequence<int, 14>{});
  static constexpr auto two = pointwise_tiles<2>(std::make_integer_sequence<int, 14>{});
  static constexpr auto four = pointwise_tiles<4>(std::make_integer_sequence<int, 7>{});
  if (rows < 1) return nullptr;
  if (vecs == 1 && rows <= 14) return one[rows - 1];
  if (vecs == 2 && rows <= 14) return two[rows - 1];
  if (vecs == 4 && rows <= 7) return four[rows - 1];
  return nullptr;
}

class PointwiseConv final : public NativeConv {
 public:
  explicit PointwiseConv(const PointwiseShape &s) : s_(s) {
    if (s.stride < 1 || s.stride > 2 || s.OH != (s.H - 1) / s.stride + 1 ||
        s.OW != (s.W - 1) / s.stride + 1)
      throw Error{"pointwise: stride 1 or 2 without padding, output " + std::to_string(s.OH) +
                  "x" + std::to_string(s.OW) + " does not follow from the input"};
    if (s.act < TILE_NONE || s.act > TILE_SILU)
      throw Error{"pointwise: activation " + std::to_string(s.act) + " unknown"};
    for (int rows = 1; rows <= s.rows; rows++)
      if (!pointwise_tile_for(rows, s.vecs))
        throw Error{"pointwise: no register tile of " + std::to_string(s.rows) + " x " +
                    std::to_string(s.vecs) + " vectors"};
  }

  int64_t weight_floats() const override { return (int64_t)panels() * s_.K * panel(); }

  void run(const float *src, const float *weights, const float *bias, const float *residual,
           float *dst, SpinPool &pool) const override {
    const int threads = std::max(1, pool.get_num_threads() * s_.tasks_per_thread);
    if (s_.stride != 1) src = subsampled(src, pool);
    const int64_t tiles = (pixels() + s_.rows - 1) / s_.rows;
    if (s_.C >= pixels()) {  // weights outweigh activations: split the panels
      const int tasks = std::min(panels(), threads);
      pool.parallel_for(tasks, [&](int task, int) {
        run_panels(src, weights, bias, residual, dst, panels() * task / tasks,
                   panels() * (task + 1) / tasks, 0, tiles, true);
      });
      return;
    }
    const int tasks = (int)std::min<int64_t>(tiles, threads);
    const int64_t block =
        std::max<int64_t>(1, kBlockBytes / ((int64_t)s_.rows * s_.K * (int64_t)sizeof(float)));
    pool.parallel_for(tasks, [&](int task, int) {
      const int64_t first = tiles * task / tasks, end = tiles * (task + 1) / tasks;
      for (int64_t t = first; t < end; t += block)
        run_panels(src, weights, bias, residual, dst, 0, panels(), t, std::min(end, t + block),
                   false);
    });
  }

 private:
  static constexpr int64_t kBlockBytes = 128 * 1024;
  PointwiseShape s_;

  int panel() const { return 16 * s_.vecs; }
  int panels() const { return (s_.C + panel() - 1) / panel(); }
  int64_t pixels() const { return (int64_t)s_.N * s_.OH * s_.OW; }

  static float *scratch(size_t floats) {
    static thread_local std::vector<float> buffer;
    if (buffer.size() < floats) buffer.resize(floats);
    return buffer.data();
  }

  // With stride 2, the pixels the convolution reads, gathered contiguous (a buffer of the
  // calling thread that the pool's threads read): then every tile's rows are K floats apart.
  const float *subsampled(const float *src, SpinPool &pool) const {
    static thread_local std::vector<float> gathered;
    const int K = s_.K, OW = s_.OW, rows = s_.N * s_.OH;
    gathered.resize((size_t)pixels() * K);
    float *out = gathered.data();
    const int tasks = std::min(rows, pool.get_num_threads());
    pool.parallel_for(tasks, [&](int task, int) {
      for (int line = rows * task / tasks; line < rows * (task + 1) / tasks; line++) {
        const int64_t n = line / s_.OH, iy = (int64_t)(line % s_.OH) * s_.stride;
        const float *row = src + (n * s_.H + iy) * s_.W * K;
        for (int x = 0; x < OW; x++)
          std::copy(row + (int64_t)x * s_.stride * K, row + ((int64_t)x * s_.stride + 1) * K,
                    out + ((int64_t)line * OW + x) * K);
      }
    });
    return out;
  }

  // Panels [p0, p1) over tiles [t0, t1) of R pixels (src: pixels K floats apart); with
  // `prefetching`, each panel's first tiles fetch the next panel's weights, K lines a tile.
  void run_panels(const float *src, const float *weights, const float *bias,
                  const float *residual, float *dst, int p0, int p1, int64_t t0, int64_t t1,
                  bool prefetching) const {
    const int K = s_.K, C = s_.C, P = panel(), R = s_.rows;
    const int64_t panel_floats = (int64_t)K * P, panel_lines = panel_floats * 4 / 64;
    for (int p = p0; p < p1; p++) {
      const float *b = weights + p * panel_floats;
      const int width = std::min(P, C - p * P);  // a last panel may be partial
      const char *next = p + 1 < p1 ? reinterpret_cast<const char *>(b + panel_floats) : nullptr;
      const float *partial_bias = width < P ? bias_panel(bias, p) : nullptr;
      for (int64_t t = t0; t < t1; t++) {
        const int64_t x0 = t * R;
        const int rows = (int)std::min<int64_t>(R, pixels() - x0);
        const float *a = src + x0 * K;
        const int64_t out = x0 * C + p * P;
        const int64_t done = (t - t0) * K;  // lines of the next panel fetched before
        const char *fetch = prefetching && next && done < panel_lines ? next + done * 64 : nullptr;
        const PointwiseTile tile = pointwise_tile_for(rows, s_.vecs);
        if (width == P) {
          tile(a, K, b, K, dst + out, C, bias + p * P, residual ? residual + out : nullptr,
               s_.act, fetch);
          continue;
        }
        float *c = scratch((size_t)R * P);  // the partial panel: epilogue on its channels
        tile(a, K, b, K, c, P, partial_bias, nullptr, TILE_NONE, fetch);
        for (int r = 0; r < rows; r++)
          for (int v = 0; v < width; v += 16) {
            const Mask16 mask = lanes(width - v);
            Vec16 y = v_maskz_loadu(mask, c + r * P + v);
            if (residual) y = v_add(y, v_maskz_loadu(mask, residual + out + r * C + v));
            v_mask_storeu(dst + out + r * C + v, mask, tile_activation(y, s_.act));
          }
      }
    }
  }

  // The bias of a partial last panel, zero-padded to the panel's width.
  const float *bias_panel(const float *bias, int p) const {
    static thread_local std::vector<float> padded;
    const int P = panel(), width = s_.C - p * P;
    padded.assign(P, 0.f);
    std::copy(bias + p * P, bias + p * P + width, padded.begin());
    return padded.data();
  }
};

#else  // a CPU without AVX2 and FMA: the step is refused where it is built
class PointwiseConv final : public NativeConv {
 public:
  explicit PointwiseConv(const PointwiseShape &) {
    throw Error{"pointwise_nhwc needs AVX2 and FMA (avx2, fma), which this CPU lacks"};
  }
  int64_t weight_floats() const override { return 0; }
  void run(const float *, const float *, const float *, const float *, float *,
           SpinPool &) const override {}
};
#endif

}  // namespace
