// A convolution (groups 1, dilation 1) as one GEMM, a program step on channels-last (NHWC)
// values run on the program's thread pool. Part of program.cpp's translation unit.
//
//   dst[n][oy][ox][c] = act(sum_{i,j,k} src[n][oy*s-pt+i][ox*s-pl+j][k] * w[i][j][k][c]
//                           + bias[c] [+ residual])       (src zero outside the image)
//
// The rows of A are the output pixels, each the kh*kw*K input values its window reads: a 1x1
// convolution of stride 1 reads src as it is (NHWC pixels are contiguous); any other gathers
// them first (im2col: its windows, or with stride 2 every second pixel), a copy that only small
// maps afford. The weights, packed by tuner/kernels/cpu/packing.py
// (pack_gemm_conv_weight) in panels of P = 16 * vecs output channels, [panel][kh*kw*K][P]
// (output channels zero-padded to whole panels): the register tile, `rows` pixels x `vecs`
// vectors, walks a panel's rows contiguously; the last pixels take the tile of exactly that
// many rows.
//
// Work: on batch 1's small late maps the weights outweigh the activations (ResNet50's 7x7 1x1
// layers: 4 MB of weights for 49 pixels), so where output channels outnumber output pixels the
// threads split the panels, each reading its own share of the weights once, and a thread
// fetches its next panel into L2 while its current panel's tiles run: each panel's first tile
// otherwise waits for memory (ResNet50's 100 MB of weights do not stay in cache from one
// inference to the next). Elsewhere the threads split the tiles, and a task runs every panel
// over a block of its tiles (rows of A of at most kBlockBytes, kept in cache) before the next.
#pragma once
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "register_tile.h"
#include "runtime.h"
#include "vec16.h"

namespace {

struct GemmConvShape {
  int N, K, H, W, C, OH, OW, KH, KW, stride, pad_top, pad_left, rows, vecs, tasks_per_thread,
      act;
  int depth_block = 0;  // rows of a panel a tile's pass covers (0: all; see run_panels)
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

// C[r][v] = act(bias[v] + sum_k A[r][k] * B[k][v] [+ residual[r][v]]), B a panel of K rows of
// NV vectors; without `bias` the sum starts from C (a pass over a later block of k); with
// `prefetch`, one 64-byte line from there on per k fetched into L2.
template <int R, int NV>
void gemm_tile(const float *a, int64_t lda, const float *b, int k_count, float *c,
                    int64_t ldc, const float *bias, const float *residual, int act,
                    const char *prefetch) {
  Vec16 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = v_loadu(bias ? bias + v * 16 : c + r * ldc + v * 16);
  // without a line to fetch, the loop fetches its own panel's first line again (in L1)
  const char *fetch = prefetch ? prefetch : reinterpret_cast<const char *>(b);
  const int64_t fetch_step = prefetch ? 64 : 0;
  tile_accumulate<R, NV, true>(acc, a, lda, b, 16 * NV, k_count, fetch, fetch_step);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      Vec16 y = acc[r][v];
      if (residual) y = v_add(y, v_loadu(residual + r * ldc + v * 16));
      v_storeu(c + r * ldc + v * 16, act ? tile_activation(y, act) : y);
    }
}

using GemmTile = void (*)(const float *, int64_t, const float *, int, float *, int64_t,
                               const float *, const float *, int, const char *);

constexpr int kGemmMaxRows = 14;

template <int NV, int... R>
constexpr std::array<GemmTile, sizeof...(R)> gemm_tiles(
    std::integer_sequence<int, R...>) {
  return {&gemm_tile<R + 1, NV>...};
}

// The tile of `rows` pixels x `vecs` vectors: rows 1-14 with 1 or 2 vectors, 1-7 with 4; or null.
GemmTile gemm_tile_for(int rows, int vecs) {
  static constexpr auto one = gemm_tiles<1>(std::make_integer_sequence<int, 14>{});
  static constexpr auto two = gemm_tiles<2>(std::make_integer_sequence<int, 14>{});
  static constexpr auto four = gemm_tiles<4>(std::make_integer_sequence<int, 7>{});
  if (rows < 1) return nullptr;
  if (vecs == 1 && rows <= 14) return one[rows - 1];
  if (vecs == 2 && rows <= 14) return two[rows - 1];
  if (vecs == 4 && rows <= 7) return four[rows - 1];
  return nullptr;
}

class GemmConv final : public NativeConv {
 public:
  explicit GemmConv(const GemmConvShape &s) : s_(s) {
    if (s.stride < 1 || s.KH < 1 || s.KW < 1 || s.pad_top < 0 || s.pad_left < 0 ||
        s.pad_top >= s.KH || s.pad_left >= s.KW || s.OH < 1 || s.OW < 1)
      throw Error{"gemm_conv: a window of at least 1x1, a positive stride and padding smaller "
                  "than the window"};
    if (s.act < TILE_NONE || s.act > TILE_SILU)
      throw Error{"gemm_conv: activation " + std::to_string(s.act) + " unknown"};
    for (int rows = 1; rows <= s.rows; rows++)
      if (!gemm_tile_for(rows, s.vecs))
        throw Error{"gemm_conv: no register tile of " + std::to_string(s.rows) + " x " +
                    std::to_string(s.vecs) + " vectors"};
  }

  int64_t weight_floats() const override { return (int64_t)panels() * depth() * panel(); }

  void run(const float *src, const float *weights, const float *bias, const float *residual,
           float *dst, SpinPool &pool) const override {
    const int threads = std::max(1, pool.get_num_threads() * s_.tasks_per_thread);
    if (!direct()) src = gathered(src, pool);
    const int64_t tiles = (pixels() + s_.rows - 1) / s_.rows;
    if (s_.C >= pixels()) {  // weights outweigh activations: split the panels
      // in equal shares of (panel, tile) pairs, panel by panel: where the threads do not
      // divide the panels, one panel's tiles are shared
      const int64_t units = panels() * tiles;
      const int tasks = (int)std::min<int64_t>(units, threads);
      pool.parallel_for(tasks, [&](int task, int) {
        const int64_t first = units * task / tasks, end = units * (task + 1) / tasks;
        const int last_panel = (int)((end - 1) / tiles);
        for (int p = (int)(first / tiles); p <= last_panel; p++)
          run_panels(src, weights, bias, residual, dst, p, p + 1,
                     std::max<int64_t>(first - p * tiles, 0),
                     std::min<int64_t>(end - p * tiles, tiles), last_panel + 1);
      });
      return;
    }
    const int tasks = (int)std::min<int64_t>(tiles, threads);
    const int64_t block =
        std::max<int64_t>(1, kBlockBytes / ((int64_t)s_.rows * depth() * (int64_t)sizeof(float)));
    pool.parallel_for(tasks, [&](int task, int) {
      const int64_t first = tiles * task / tasks, end = tiles * (task + 1) / tasks;
      for (int64_t t = first; t < end; t += block)
        run_panels(src, weights, bias, residual, dst, 0, panels(), t, std::min(end, t + block),
                   0);
    });
  }

 private:
  static constexpr int64_t kBlockBytes = 128 * 1024;
  GemmConvShape s_;

  int panel() const { return 16 * s_.vecs; }
  int panels() const { return (s_.C + panel() - 1) / panel(); }
  int64_t pixels() const { return (int64_t)s_.N * s_.OH * s_.OW; }
  int depth() const { return s_.KH * s_.KW * s_.K; }  // a row of A: a window's inputs
  bool direct() const {
    return s_.KH == 1 && s_.KW == 1 && s_.stride == 1 && s_.pad_top == 0 && s_.pad_left == 0 &&
           s_.OH == s_.H && s_.OW == s_.W;
  }

  // the calling thread's buffers (thread_scratch): a partial panel's tiles, the gathered rows
  // of A, a partial panel's bias
  enum Slot { PARTIAL = 0, GATHERED = 1, PARTIAL_BIAS = 2 };
  static float *scratch(size_t floats, Slot slot) {
    return thread_scratch<GemmConv, 3>(floats, slot);
  }

  // The rows of A gathered (a buffer of the calling thread that the pool's threads read): per
  // output pixel its window's kh x kw input pixels in order, zeros outside the image.
  const float *gathered(const float *src, SpinPool &pool) const {
    const int K = s_.K, OW = s_.OW, lines = s_.N * s_.OH;
    float *out = scratch((size_t)pixels() * depth(), GATHERED);
    const int tasks = std::min(lines, pool.get_num_threads());
    pool.parallel_for(tasks, [&](int task, int) {
      for (int line = lines * task / tasks; line < lines * (task + 1) / tasks; line++) {
        const int64_t n = line / s_.OH, oy = line % s_.OH;
        for (int ox = 0; ox < OW; ox++) {
          float *row = out + ((int64_t)line * OW + ox) * depth();
          for (int i = 0; i < s_.KH; i++) {
            const int64_t y = oy * s_.stride - s_.pad_top + i;
            for (int j = 0; j < s_.KW; j++, row += K) {
              const int64_t x = (int64_t)ox * s_.stride - s_.pad_left + j;
              if (y < 0 || y >= s_.H || x < 0 || x >= s_.W)
                std::fill(row, row + K, 0.f);
              else
                std::copy_n(src + ((n * s_.H + y) * s_.W + x) * K, K, row);
            }
          }
        }
      }
    });
    return out;
  }

  // Panels [p0, p1) over tiles [t0, t1) of R pixels (src: rows of A, depth() floats apart).
  // A panel's rows are taken depth_block at a time, each block by all the tiles (it stays in
  // L1 while they run; the tiles accumulate in dst), the bias first, the epilogue last. A
  // panel's first tile passes fetch the next panel's weights, a line per row, while that panel
  // is before `fetch_end`.
  void run_panels(const float *src, const float *weights, const float *bias,
                  const float *residual, float *dst, int p0, int p1, int64_t t0, int64_t t1,
                  int fetch_end) const {
    const int K = depth(), C = s_.C, P = panel(), R = s_.rows;
    const int block = s_.depth_block > 0 ? std::min(s_.depth_block, K) : K;
    const int64_t panel_floats = (int64_t)K * P, panel_lines = panel_floats * 4 / 64;
    for (int p = p0; p < p1; p++) {
      const float *b = weights + p * panel_floats;
      const int width = std::min(P, C - p * P);  // a last panel may be partial
      const char *next =
          p + 1 < fetch_end ? reinterpret_cast<const char *>(b + panel_floats) : nullptr;
      const float *panel_bias = width < P ? bias_panel(bias, p) : bias + p * P;
      // the partial panel's tiles go to a buffer first (its epilogue on its channels)
      float *partial = width < P ? scratch((size_t)(t1 - t0) * R * P, PARTIAL) : nullptr;
      int64_t fetched = 0;  // lines of the next panel
      for (int k0 = 0; k0 < K; k0 += block) {
        const int rows_k = std::min(block, K - k0);
        const bool first = k0 == 0, last = k0 + rows_k == K;
        for (int64_t t = t0; t < t1; t++) {
          const int64_t x0 = t * R;
          const int rows = (int)std::min<int64_t>(R, pixels() - x0);
          const int64_t out = x0 * C + p * P;
          const char *fetch = nullptr;
          if (next && fetched < panel_lines) {
            fetch = next + fetched * 64;
            fetched += rows_k;
          }
          const GemmTile tile = gemm_tile_for(rows, s_.vecs);
          if (partial) {
            tile(src + x0 * K + k0, K, b + (int64_t)k0 * P, rows_k, partial + (t - t0) * R * P,
                 P, first ? panel_bias : nullptr, nullptr, TILE_NONE, fetch);
            if (last) finish_partial(partial + (t - t0) * R * P, rows, width, residual, dst, out);
            continue;
          }
          tile(src + x0 * K + k0, K, b + (int64_t)k0 * P, rows_k, dst + out, C,
               first ? panel_bias : nullptr, last && residual ? residual + out : nullptr,
               last ? s_.act : TILE_NONE, fetch);
        }
      }
    }
  }

  // dst = act(c [+ residual]) for the `width` channels of a partial panel's tile.
  void finish_partial(const float *c, int rows, int width, const float *residual, float *dst,
                      int64_t out) const {
    const int P = panel(), C = s_.C;
    for (int r = 0; r < rows; r++)
      for (int v = 0; v < width; v += 16) {
        const Mask16 mask = lanes(width - v);
        Vec16 y = v_maskz_loadu(mask, c + r * P + v);
        if (residual) y = v_add(y, v_maskz_loadu(mask, residual + out + r * C + v));
        v_mask_storeu(dst + out + r * C + v, mask, tile_activation(y, s_.act));
      }
  }

  // The bias of a partial last panel, zero-padded to the panel's width.
  const float *bias_panel(const float *bias, int p) const {
    const int P = panel(), width = s_.C - p * P;
    float *padded = scratch(P, PARTIAL_BIAS);
    std::fill(padded + width, padded + P, 0.f);
    std::copy(bias + p * P, bias + p * P + width, padded);
    return padded;
  }
};

#else  // a CPU without AVX2 and FMA: the step is refused where it is built
class GemmConv final : public RefusedConv {
 public:
  explicit GemmConv(const GemmConvShape &) : RefusedConv("gemm_conv_nhwc") {}
};
#endif

}  // namespace
