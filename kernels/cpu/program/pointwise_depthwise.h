// A 1x1 convolution and the k x k depthwise convolution (k = 3 or 5) that reads its result,
// fused into one program step on channels-last (NHWC) values (an inverted residual's expansion
// and depthwise layers), run on the program's thread pool. Part of program.cpp's translation
// unit.
//
//   E[n][y][x][c]    = act1(sum_k src[n][y][x][k] * w1[k][c] + b1[c])           expansion
//   dst[n][oy][ox][c] = act2(sum_{i,j < k} wd[i*k+j][c] * E[n][oy*s-pt+i][ox*s-pl+j][c] + bd[c])
//
// with E zero outside the image (the depthwise layer's padding). E, the largest tensor of such
// a block (MobileNetV2's first expansion: 96 x 112 x 112 floats, 4.8 MB an image), never
// reaches memory: a task computes E k rows at a time into a per-thread ring that stays in
// the L2 cache, and each output row from the k rows it reads.
//
// Without the expansion (expand = 0: an inverted residual of expansion ratio 1), E is src
// itself, its rows copied into the ring (C = K); src may then be channels-last or blocked by
// 8 or 16 channels (nChw8c, nChw16c: src_block = 8 or 16, the layouts a oneDNN convolution
// before it chooses with AVX2 and AVX-512), so that no conversion of it is needed.
//
// Work: tasks of (image, block of channels): the channel blocks are 16-channel vectors shared
// evenly between at least threads * tasks_per_thread tasks (a block's E needs only its own
// columns of w1), so that one image (batch 1) still keeps every thread busy and no E row is
// computed twice. The expansion's register tile is `rows` pixels x `vecs` 16-channel vectors
// (a pixel's input channel broadcast, a row of w1 loaded), its epilogue bias and act1.
//
// With a projection (P > 0), the 1x1 convolution that reads dst joins too (the block's
// projection):  out[n][oy][ox][p] = act3(sum_c dst[n][oy][ox][c] * wp[c][p] + bp[p]
// [+ residual[n][oy][ox][p]]); each depthwise row is projected while in cache. A pixel's
// projection reads all its channels, so tasks are (image, strip of output rows) instead, each
// with its own ring (the E rows above a strip computed twice).
//
// The weights are one constant, packed by tuner/kernels/cpu/packing.py
// (pack_pointwise_depthwise): w1 as [K][C], b1 [C] (with the expansion only), wd as [k*k][C],
// bd [C] (and wp as [C][P'], bp [P'], P' = P rounded up to 16).
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
  int P = 0, act3 = 0;  // the projection's output channels (0: none) and its activation
  int window = 3;       // the depthwise window: 3x3 or 5x5
  int expand = 1;       // 0: no 1x1 expansion, E = src (K = C)
  int src_block = 0;    // without the expansion: src is nChw<src_block>c (8 or 16), not NHWC
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

class PointwiseDepthwise final : public NativeConv {
 public:
  explicit PointwiseDepthwise(const PointwiseDepthwiseShape &s) : s_(s) {
    if (s.C % 16 != 0) throw Error{"pointwise_depthwise: channels must be a multiple of 16"};
    if (!s.expand && s.K != s.C)
      throw Error{"pointwise_depthwise: without an expansion, input and depthwise channels agree"};
    if (s.src_block && (s.expand || (s.src_block != 8 && s.src_block != 16)))
      throw Error{"pointwise_depthwise: only the step without an expansion reads a blocked "
                  "input, blocked by 8 or 16 channels"};
    const int halo = s.window / 2;  // padding up to half the window on every side
    if ((s.window != 3 && s.window != 5) || s.stride < 1 || s.stride > 2 || s.pad_top > halo ||
        s.pad_left > halo || s.pad_top < 0 || s.pad_left < 0 ||
        (s.OW - 1) * s.stride + s.window - 1 - s.pad_left > s.W - 1 + halo ||
        (s.OH - 1) * s.stride + s.window - 1 - s.pad_top > s.H - 1 + halo)
      throw Error{"pointwise_depthwise: a 3x3 or 5x5 window of stride 1 or 2 and padding up to "
                  "half the window"};
    for (int act : {s.act1, s.act2, s.act3})
      if (act < TILE_NONE || act > TILE_SILU)
        throw Error{"pointwise_depthwise: activation " + std::to_string(act) + " unknown"};
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

  int64_t weight_floats() const override {
    return expansion_floats() + (1LL + s_.window * s_.window) * s_.C +
           (int64_t)(s_.C + 1) * padded_projection();
  }

  void run(const float *src, const float *weights, const float *, const float *residual,
           float *dst, SpinPool &pool) const override {
    const int threads = pool.get_num_threads();
    if (s_.P) {  // strips of output rows: a pixel's projection reads all its channels
      const int wanted = std::max(1, threads * s_.tasks_per_thread);
      const int strips = std::min(s_.OH, (wanted + s_.N - 1) / s_.N);
      pool.parallel_for(s_.N * strips, [&](int task, int) {
        const int n = task / strips, strip = task % strips;
        run_strip(src, weights, residual, dst, n, s_.OH * strip / strips,
                  s_.OH * (strip + 1) / strips);
      });
      return;
    }
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
  static constexpr int kMaxWindow = 5;
  PointwiseDepthwiseShape s_;
  RegisterTile wide_ = nullptr, narrow_ = nullptr, tail_wide_ = nullptr, tail_narrow_ = nullptr;
  int tail_rows_ = 0;  // the register tile of a row's last W % rows pixels

  int padded_projection() const { return (s_.P + 15) / 16 * 16; }
  int64_t expansion_floats() const { return s_.expand ? (int64_t)s_.K * s_.C + s_.C : 0; }

  static float *scratch(size_t floats, int slot) {
    return thread_scratch<PointwiseDepthwise, 5>(floats, slot);
  }

  // The E rows of one image n and channel block [c0, c0 + cw): row y at buffer + slot(y) *
  // row_floats (slots rows: all of E, or a ring of `window`), pixel x at (x + halo) * cw
  // between halo zero columns either side; `zero` a row of zeros (the padding above and below); `next` the next row to
  // compute.
  struct Rows {
    float *buffer, *zero, *tail_in, *tail_out;
    int64_t row_floats;
    int slots, n, c0, cw, next;
    int64_t slot(int y) const { return y % slots; }
  };

  Rows rows_of(int n, int c0, int cw, int slots, int next) const {
    const int halo = s_.window / 2;
    const int64_t row_floats = (int64_t)(s_.W + 2 * halo) * cw;
    float *buffer = scratch((slots + 1) * row_floats + 16, 0);
    Rows e{buffer, buffer + slots * row_floats, scratch((size_t)slots * s_.rows * s_.K, 1),
           scratch((size_t)s_.rows * 16 * s_.vecs, 2), row_floats, slots, n, c0, cw, next};
    std::fill(e.zero, e.zero + row_floats, 0.f);
    for (int r = 0; r < slots; r++) {  // the zero columns left and right of every E row
      std::fill(buffer + r * row_floats, buffer + r * row_floats + halo * cw, 0.f);
      std::fill(buffer + r * row_floats + (int64_t)(s_.W + halo) * cw,
                buffer + (r + 1) * row_floats, 0.f);
    }
    return e;
  }

  // E rows [e.next, y1). A panel of w1 (its K rows of `width` channels) is loaded for all the
  // rows, then the next. A row's last pixels (fewer than a register tile) go through a
  // zero-padded copy of their input, by the smallest register tile that holds them.
  void expand_rows(const float *src, const float *w1, const float *b1, Rows &e, int y1) const {
    const int K = s_.K, W = s_.W, R = s_.rows, C = s_.C, panel = 16 * s_.vecs;
    const int body = W / R * R, left = W - body, y0 = e.next, c0 = e.c0, cw = e.cw;
    const float *image = src + (int64_t)e.n * s_.H * W * K;
    const int64_t tail_floats = (int64_t)tail_rows_ * K;
    if (left)  // every row's last pixels, once for all the panels
      for (int y = y0; y < y1; y++) {
        float *t = e.tail_in + (y - y0) * tail_floats;
        std::copy(image + ((int64_t)y * W + body) * K, image + ((int64_t)y + 1) * W * K, t);
        std::fill(t + (int64_t)left * K, t + tail_floats, 0.f);
      }
    for (int p = 0; p < cw;) {
      const int width = p + panel <= cw ? panel : 16;  // a last block of 16 channels
      const bool wide = width == panel;
      const RegisterTile tile = wide ? wide_ : narrow_;
      for (int y = y0; y < y1; y++) {
        const float *a = image + (int64_t)y * W * K;
        float *out = e.buffer + e.slot(y) * e.row_floats + (s_.window / 2) * cw;  // past the
                                                                                 // zero columns
        for (int x = 0; x < body; x += R)
          tile(a + (int64_t)x * K, K, w1 + c0 + p, C, K, out + (int64_t)x * cw + p, cw,
               b1 + c0 + p, s_.act1);
        if (left) {
          (wide ? tail_wide_ : tail_narrow_)(e.tail_in + (y - y0) * tail_floats, K,
                                             w1 + c0 + p, C, K, e.tail_out, width,
                                             b1 + c0 + p, s_.act1);
          for (int r = 0; r < left; r++)
            std::copy(e.tail_out + r * width, e.tail_out + (r + 1) * width,
                      out + (int64_t)(body + r) * cw + p);
        }
      }
      p += width;
    }
    e.next = std::max(e.next, y1);
  }

  // E rows [e.next, y1) without an expansion: src's rows (channels [c0, c0 + cw)) copied.
  void copy_rows(const float *src, Rows &e, int y1) const {
    const int W = s_.W, H = s_.H, C = s_.C, cw = e.cw;
    for (int y = e.next; y < y1; y++) {
      float *out = e.buffer + e.slot(y) * e.row_floats + (s_.window / 2) * cw;
      if (!s_.src_block) {
        const float *row = src + ((int64_t)e.n * H + y) * W * C + e.c0;
        for (int x = 0; x < W; x++)
          std::copy(row + (int64_t)x * C, row + (int64_t)x * C + cw, out + (int64_t)x * cw);
        continue;
      }
      const int b = s_.src_block;
      for (int v = 0; v < cw; v += b) {  // block (c0 + v) / b of nChw<b>c
        const float *row = src + (((int64_t)e.n * (C / b) + (e.c0 + v) / b) * H + y) * W * b;
        for (int x = 0; x < W; x++)
          std::copy(row + (int64_t)x * b, row + (int64_t)(x + 1) * b, out + (int64_t)x * cw + v);
      }
    }
    e.next = std::max(e.next, y1);
  }

  // The `window` E rows output row oy reads, computed first where missing.
  void rows_for(const float *src, const float *w1, const float *b1, Rows &e, int oy,
                const float *rows[kMaxWindow]) const {
    const int top = oy * s_.stride - s_.pad_top;
    const int end = std::min(top + s_.window, s_.H);
    if (e.next < end) {
      if (s_.expand)
        expand_rows(src, w1, b1, e, end);
      else
        copy_rows(src, e, end);
    }
    for (int i = 0; i < s_.window; i++) {
      const int y = top + i;
      rows[i] = (y < 0 || y >= s_.H) ? e.zero : e.buffer + e.slot(y) * e.row_floats;
    }
  }

  // A task: E of the image's channel block [c0, c0 + cw), then its output rows. Where all of
  // E fits in kWholeBytes it is computed at once (each panel of w1 loaded once: small maps);
  // otherwise k rows at a time into a ring, each output row after the rows it reads.
  void run_task(const float *src, const float *weights, float *dst, int n, int c0,
                int cw) const {
    const int K = s_.K, C = s_.C, H = s_.H;
    const float *w1 = weights, *b1 = w1 + (int64_t)K * C, *wd = weights + expansion_floats();
    const float *bd = wd + (int64_t)s_.window * s_.window * C;
    const bool whole = H * (int64_t)(s_.W + s_.window - 1) * cw * 4 <= kWholeBytes;
    Rows e = rows_of(n, c0, cw, whole ? H : s_.window, 0);
    if (whole && s_.expand) expand_rows(src, w1, b1, e, H);
    for (int oy = 0; oy < s_.OH; oy++) {
      const float *rows[kMaxWindow];
      rows_for(src, w1, b1, e, oy, rows);
      depthwise_row(rows, wd, bd, dst + (((int64_t)n * s_.OH + oy) * s_.OW) * C, c0, cw);
    }
  }

  // With a projection: output rows [oy0, oy1) of image n, all channels. E k rows at a time
  // into a ring (the rows above the strip computed again), each depthwise row into `mid`, its
  // projection into `out` (both padded to whole register tiles of pixels), then
  // dst = act3(out + bp [+ residual]) for the P channels.
  void run_strip(const float *src, const float *weights, const float *residual, float *dst,
                 int n, int oy0, int oy1) const {
    const int K = s_.K, C = s_.C, OW = s_.OW, P = s_.P, R = s_.rows;
    const int PP = padded_projection(), panel = 16 * s_.vecs;
    const float *w1 = weights, *b1 = w1 + (int64_t)K * C, *wd = weights + expansion_floats();
    const float *bd = wd + (int64_t)s_.window * s_.window * C;
    const float *wp = bd + C, *bp = wp + (int64_t)C * PP;
    const int pixels = (OW + R - 1) / R * R;
    Rows e = rows_of(n, 0, C, s_.window, std::max(0, oy0 * s_.stride - s_.pad_top));
    float *mid = scratch((size_t)pixels * C, 3);
    std::fill(mid + (int64_t)OW * C, mid + (int64_t)pixels * C, 0.f);
    float *out = scratch((size_t)pixels * PP, 4);
    for (int oy = oy0; oy < oy1; oy++) {
      const float *rows[kMaxWindow];
      rows_for(src, w1, b1, e, oy, rows);
      depthwise_row(rows, wd, bd, mid, 0, C);
      for (int p = 0; p < PP;) {
        const int width = p + panel <= PP ? panel : 16;
        const RegisterTile tile = width == panel ? wide_ : narrow_;
        for (int x = 0; x < pixels; x += R)
          tile(mid + (int64_t)x * C, C, wp + p, PP, C, out + (int64_t)x * PP + p, PP, bp + p,
               TILE_NONE);
        p += width;
      }
      const int64_t at = ((int64_t)n * s_.OH + oy) * OW * P;
      for (int x = 0; x < OW; x++)
        for (int c = 0; c < P; c += 16) {
          const Mask16 mask = lanes(P - c);
          Vec16 y = v_maskz_loadu(mask, out + (int64_t)x * PP + c);
          if (residual) y = v_add(y, v_maskz_loadu(mask, residual + at + (int64_t)x * P + c));
          v_mask_storeu(dst + at + (int64_t)x * P + c, mask, tile_activation(y, s_.act3));
        }
    }
  }

  void depthwise_row(const float *const rows[kMaxWindow], const float *wd, const float *bd,
                     float *out, int c0, int cw) const {
    if (s_.window == 5)
      depthwise_row_of<5>(rows, wd, bd, out, c0, cw);
    else
      depthwise_row_of<3>(rows, wd, bd, out, c0, cw);
  }

  // One output row of channels [c0, c0 + cw). With AVX-512 a vector's k*k taps stay in
  // registers across the row; AVX2 has 16 registers, fewer than the taps' 18 halves, so there
  // each tap is loaded once for a group of 4 output pixels instead.
  template <int KW>
  void depthwise_row_of(const float *const rows[kMaxWindow], const float *wd, const float *bd,
                        float *out, int c0, int cw) const {
    const int C = s_.C, OW = s_.OW, stride = s_.stride, act = s_.act2;
    const int shift = KW / 2 - s_.pad_left;  // E column of output column 0's first tap
    for (int v = 0; v < cw; v += 16) {
      const float *taps = wd + c0 + v;
      const Vec16 bias = v_loadu(bd + c0 + v);
      int ox = 0;
#if defined(__AVX512F__)
      Vec16 w[KW * KW];
      for (int k = 0; k < KW * KW; k++) w[k] = v_loadu(taps + (int64_t)k * C);
      for (; ox < OW; ox++) {
        const int64_t at = (int64_t)(ox * stride + shift) * cw + v;
        Vec16 acc = bias;
#pragma GCC unroll 5
        for (int i = 0; i < KW; i++) {
          const float *e = rows[i] + at;
#pragma GCC unroll 5
          for (int j = 0; j < KW; j++) acc = v_fmadd(w[i * KW + j], v_loadu(e + j * cw), acc);
        }
        v_storeu(out + (int64_t)ox * C + c0 + v, tile_activation(acc, act));
      }
#else
      const int64_t step = (int64_t)stride * cw;  // from one output pixel's taps to the next's
      for (; ox + 4 <= OW; ox += 4) {
        // four accumulators as variables of their own, not an array: GCC keeps an array of
        // two-register vectors on the stack
        Vec16 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
#pragma GCC unroll 5
        for (int i = 0; i < KW; i++) {
          const float *e = rows[i] + (int64_t)(ox * stride + shift) * cw + v;
#pragma GCC unroll 5
          for (int j = 0; j < KW; j++) {
            const Vec16 tap = v_loadu(taps + (int64_t)(i * KW + j) * C);
            const float *x = e + (int64_t)j * cw;
            a0 = v_fmadd(tap, v_loadu(x), a0);
            a1 = v_fmadd(tap, v_loadu(x + step), a1);
            a2 = v_fmadd(tap, v_loadu(x + 2 * step), a2);
            a3 = v_fmadd(tap, v_loadu(x + 3 * step), a3);
          }
        }
        float *o = out + (int64_t)ox * C + c0 + v;
        v_storeu(o, tile_activation(a0, act));
        v_storeu(o + C, tile_activation(a1, act));
        v_storeu(o + 2 * (int64_t)C, tile_activation(a2, act));
        v_storeu(o + 3 * (int64_t)C, tile_activation(a3, act));
      }
      for (; ox < OW; ox++) {  // the last OW % 4 pixels
        Vec16 acc = bias;
        for (int i = 0; i < KW; i++) {
          const float *e = rows[i] + (int64_t)(ox * stride + shift) * cw + v;
          for (int j = 0; j < KW; j++)
            acc = v_fmadd(v_loadu(taps + (int64_t)(i * KW + j) * C), v_loadu(e + j * cw), acc);
        }
        v_storeu(out + (int64_t)ox * C + c0 + v, tile_activation(acc, act));
      }
#endif
    }
  }
};

#else  // a CPU without AVX2 and FMA: the step is refused where it is built
class PointwiseDepthwise final : public RefusedConv {
 public:
  explicit PointwiseDepthwise(const PointwiseDepthwiseShape &)
      : RefusedConv("pointwise_depthwise") {}
};
#endif

}  // namespace
