// A 1x1 convolution and the 3x3 depthwise convolution that reads its result, fused into one
// program step on channels-last (NHWC) values (an inverted residual's expansion and depthwise
// layers), run on the program's thread pool. Part of program.cpp's translation unit.
//
//   E[n][y][x][c]    = act1(sum_k src[n][y][x][k] * w1[k][c] + b1[c])           expansion
//   dst[n][oy][ox][c] = act2(sum_{i,j < 3} wd[i*3+j][c] * E[n][oy*s-pt+i][ox*s-pl+j][c] + bd[c])
//
// with E zero outside the image (the depthwise layer's padding). E, the largest tensor of such
// a block (MobileNetV2's first expansion: 96 x 112 x 112 floats, 4.8 MB an image), never
// reaches memory: a task computes E three rows at a time into a per-thread ring that stays in
// the L2 cache, and each output row from the three rows it reads.
//
// Work: tasks of (image, block of channels): the channel blocks are 16-channel vectors shared
// evenly between at least threads * tasks_per_thread tasks (a block's E needs only its own
// columns of w1), so that one image (batch 1) still keeps every thread busy and no E row is
// computed twice. The expansion's register tile is `rows` pixels x `vecs` 16-channel vectors
// (a pixel's input channel broadcast, a row of w1 loaded), its epilogue bias and act1.
//
// The weights are one constant, packed by tuner/kernels/cpu/packing.py
// (pack_pointwise_depthwise): w1 as [K][C], b1 [C], wd as [9][C], bd [C].
#pragma once
#include <algorithm>
#include <vector>

#include "register_tile.h"
#include "runtime.h"
#include "vec16.h"

namespace {

struct PointwiseDepthwiseShape {
  int N, K, H, W, C, OH, OW, stride, pad_top, pad_left, act1, act2, rows, vecs,
      tasks_per_thread;
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

class PointwiseDepthwise final : public NativeConv {
 public:
  explicit PointwiseDepthwise(const PointwiseDepthwiseShape &s) : s_(s) {
    if (s.C % 16 != 0) throw Error{"pointwise_depthwise: channels must be a multiple of 16"};
    if (s.stride < 1 || s.stride > 2 || s.pad_top > 1 || s.pad_left > 1 || s.pad_top < 0 ||
        s.pad_left < 0 || (s.OW - 1) * s.stride + 2 - s.pad_left > s.W ||
        (s.OH - 1) * s.stride + 2 - s.pad_top > s.H)
      throw Error{"pointwise_depthwise: a 3x3 window of stride 1 or 2 and padding 0 or 1"};
        wide_ = register_tile_for<START_BIAS>(s.rows, s.vecs);
    narrow_ = register_tile_for<START_BIAS>(s.rows, 1);
    if (!wide_ || !narrow_)
      throw Error{"pointwise_depthwise: no register tile of " + std::to_string(s.rows) + " x " +
                  std::to_string(s.vecs) + " vectors"};
    tail_rows_ = s.rows;
    for (int rows : {2, 4, 6, 8, 12, 14})
      if (rows >= s.W % s.rows && rows < tail_rows_) tail_rows_ = rows;
    tail_wide_ = register_tile_for<START_BIAS>(tail_rows_, s.vecs);
    tail_narrow_ = register_tile_for<START_BIAS>(tail_rows_, 1);
  }

  int64_t weight_floats() const override { return (int64_t)s_.K * s_.C + 11LL * s_.C; }

  void run(const float *src, const float *weights, const float *, const float *, float *dst,
           SpinPool &pool) const override {
    const int threads = pool.get_num_threads();
    const int vectors = s_.C / 16;
    const int wanted = std::max(1, threads * s_.tasks_per_thread);
    int blocks = std::min(vectors, (wanted + s_.N - 1) / s_.N);
    const int tasks = s_.N * blocks;
    pool.parallel_for(tasks, [&](int task, int) {
      const int n = task / blocks, block = task % blocks;
      const int first = vectors * block / blocks, end = vectors * (block + 1) / blocks;
      run_task(src, weights, dst, n, first * 16, (end - first) * 16);
    });
  }

 private:
  static constexpr int64_t kWholeBytes = 512 * 1024;
  PointwiseDepthwiseShape s_;
  RegisterTile wide_ = nullptr, narrow_ = nullptr, tail_wide_ = nullptr, tail_narrow_ = nullptr;
  int tail_rows_ = 0;  // the register tile of a row's last W % rows pixels

  static float *scratch(size_t floats, int slot) {
    static thread_local std::vector<float> buffers[3];
    std::vector<float> &b = buffers[slot];
    if (b.size() < floats + 16) b.resize(floats + 16);
    return reinterpret_cast<float *>((reinterpret_cast<uintptr_t>(b.data()) + 63) / 64 * 64);
  }

  // E rows [y0, y1) of image n, channels [c0, c0 + cw): row y at buffer + slot(y) *
  // row_floats, pixel x at (x + 1) * cw. A panel of w1 (its K rows of `width` channels) is
  // loaded for all the rows, then the next. A row's last pixels (fewer than a register tile)
  // go through a zero-padded copy of their input, by the smallest register tile that holds
  // them.
  template <typename Slot>
  void expand_rows(const float *src, const float *w1, const float *b1, int n, int y0, int y1,
                   int c0, int cw, float *buffer, int64_t row_floats, Slot slot, float *tail_in,
                   float *tail_out) const {
    const int K = s_.K, W = s_.W, R = s_.rows, C = s_.C, panel = 16 * s_.vecs;
    const int body = W / R * R, left = W - body;
    const float *image = src + (int64_t)n * s_.H * W * K;
    const int64_t tail_floats = (int64_t)tail_rows_ * K;
    if (left)  // every row's last pixels, once for all the panels
      for (int y = y0; y < y1; y++) {
        float *t = tail_in + (y - y0) * tail_floats;
        std::copy(image + ((int64_t)y * W + body) * K, image + ((int64_t)y + 1) * W * K, t);
        std::fill(t + (int64_t)left * K, t + tail_floats, 0.f);
      }
    for (int p = 0; p < cw;) {
      const int width = p + panel <= cw ? panel : 16;  // a last block of 16 channels
      const bool wide = width == panel;
      const RegisterTile tile = wide ? wide_ : narrow_;
      for (int y = y0; y < y1; y++) {
        const float *a = image + (int64_t)y * W * K;
        float *out = buffer + slot(y) * row_floats + cw;  // past the left zero column
        for (int x = 0; x < body; x += R)
          tile(a + (int64_t)x * K, K, w1 + c0 + p, C, K, out + (int64_t)x * cw + p, cw,
               b1 + c0 + p, s_.act1);
        if (left) {
          (wide ? tail_wide_ : tail_narrow_)(tail_in + (y - y0) * tail_floats, K, w1 + c0 + p,
                                             C, K, tail_out, width, b1 + c0 + p, s_.act1);
          for (int r = 0; r < left; r++)
            std::copy(tail_out + r * width, tail_out + (r + 1) * width,
                      out + (int64_t)(body + r) * cw + p);
        }
      }
      p += width;
    }
  }

  // A task: E of the image's channel block [c0, c0 + cw), then its output rows. Where all of
  // E fits in kWholeBytes it is computed at once (each panel of w1 loaded once: small maps);
  // otherwise three rows at a time into a ring, each output row after the rows it reads.
  void run_task(const float *src, const float *weights, float *dst, int n, int c0,
                int cw) const {
    const int K = s_.K, C = s_.C, W = s_.W, H = s_.H, stride = s_.stride;
    const float *w1 = weights, *b1 = w1 + (int64_t)K * C, *wd = b1 + C, *bd = wd + 9LL * C;
    const int64_t row_floats = (int64_t)(W + 2) * cw;
    const bool whole = H * row_floats * 4 <= kWholeBytes;
    const int slots = whole ? H : 3;
    float *buffer = scratch((slots + 1) * row_floats + 16, 0);  // the E rows and a zero row
    float *zero = buffer + slots * row_floats;
    std::fill(zero, zero + row_floats, 0.f);
    for (int r = 0; r < slots; r++) {  // the zero columns left and right of every E row
      std::fill(buffer + r * row_floats, buffer + r * row_floats + cw, 0.f);
      std::fill(buffer + r * row_floats + (int64_t)(W + 1) * cw, buffer + (r + 1) * row_floats,
                0.f);
    }
    float *tail_in = scratch((size_t)(whole ? H : 3) * s_.rows * K, 1);
    float *tail_out = scratch((size_t)s_.rows * 16 * s_.vecs, 2);
    auto slot = [whole](int y) { return (int64_t)(whole ? y : y % 3); };
    int next = 0;  // the next E row to compute
    if (whole) {
      expand_rows(src, w1, b1, n, 0, H, c0, cw, buffer, row_floats, slot, tail_in, tail_out);
      next = H;
    }
    for (int oy = 0; oy < s_.OH; oy++) {
      const int top = oy * stride - s_.pad_top;
      const int end = std::min(top + 3, H);
      if (next < end) {
        expand_rows(src, w1, b1, n, next, end, c0, cw, buffer, row_floats, slot, tail_in,
                    tail_out);
        next = end;
      }
      const float *rows[3];
      for (int i = 0; i < 3; i++) {
        const int y = top + i;
        rows[i] = (y < 0 || y >= H) ? zero : buffer + slot(y) * row_floats;
      }
      depthwise_row(rows, wd, bd, dst + (((int64_t)n * s_.OH + oy) * s_.OW) * C, c0, cw);
    }
  }

  void depthwise_row(const float *const rows[3], const float *wd, const float *bd, float *out,
                     int c0, int cw) const {
    const int C = s_.C, OW = s_.OW, stride = s_.stride, act = s_.act2;
    const int shift = 1 - s_.pad_left;  // E column of output column 0's first tap
    for (int v = 0; v < cw; v += 16) {
      Vec16 w[9];
      for (int k = 0; k < 9; k++) w[k] = v_loadu(wd + (int64_t)k * C + c0 + v);
      const Vec16 bias = v_loadu(bd + c0 + v);
      for (int ox = 0; ox < OW; ox++) {
        const int64_t at = (int64_t)(ox * stride + shift) * cw + v;
        Vec16 acc = bias;
        for (int i = 0; i < 3; i++) {
          const float *e = rows[i] + at;
          acc = v_fmadd(w[i * 3], v_loadu(e), acc);
          acc = v_fmadd(w[i * 3 + 1], v_loadu(e + cw), acc);
          acc = v_fmadd(w[i * 3 + 2], v_loadu(e + 2 * cw), acc);
        }
        v_storeu(out + (int64_t)ox * C + c0 + v, tile_activation(acc, act));
      }
    }
  }
};

#else  // a CPU without AVX2 and FMA: the step is refused where it is built
class PointwiseDepthwise final : public NativeConv {
 public:
  explicit PointwiseDepthwise(const PointwiseDepthwiseShape &) {
    throw Error{"pointwise_depthwise needs AVX2 and FMA (avx2, fma), which this CPU lacks"};
  }
  int64_t weight_floats() const override { return 0; }
  void run(const float *, const float *, const float *, const float *, float *,
           SpinPool &) const override {}
};
#endif

}  // namespace
