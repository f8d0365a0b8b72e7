// Winograd F(m x m, 3 x 3) convolution (stride 1, dilation 1, groups 1) as a program step, on
// channels-last (NHWC) activations, run on the program's thread pool. Part of program.cpp's
// translation unit. Its vectors are Vec16 (vec16.h): one AVX-512 register, or two AVX2 ones on a
// CPU without AVX-512.
//
// The output is cut into m x m tiles (T = N * ceil(OH/m) * ceil(OW/m), numbered image by image,
// row by row; edge tiles are computed whole and stored clipped); a tile reads an alpha x alpha
// input patch (alpha = m + 2, X = alpha^2 transform points):
//   V[t][xi][c]   = (B^T d B)[xi]                     input transform
//   M[t][xi][oc]  = sum_c V[t][xi][c] U[xi][c][oc]    X independent GEMMs (tiles x channels)
//   out tile      = A^T M A + bias [+ residual], then ReLU / ReLU6 (the hand-written epilogue)
// Channels are the vector lanes everywhere (NHWC: a pixel's channels are contiguous), so the
// transforms need no transposes and a map of few tiles (7x7 at batch 1: 4 of 4x4) still fills
// the vectors: the GEMMs' register tile is `rows` tiles x `vecs` 16-channel vectors of output
// channels, a tile's V value broadcast, U's row loaded.
// The weights come in one of two forms (`raw_weights`):
// - transformed: U = G g G^T, computed in float64 and packed by tuner/kernels/cpu/packing.py
//   (pack_winograd_nhwc_weight) as U[xi][panel][c][P], P = 16 * vecs output channels a panel,
//   channels and output channels zero-padded to multiples of 16 and P: X/9 times the raw
//   weights' size (4x for m = 4), all of it read from memory at batch 1;
// - raw: g as [panel][c][9][P] (pack_winograd_nhwc_raw_weight), transformed per call, a block
//   of kRawChannels channels of one panel at a time into a per-thread U block [c][xi][P] (one
//   channel's transform written in one run) that the GEMMs then read from cache (they
//   accumulate over the channel blocks): the raw weights' traffic for the transform's work.
//   The next block's raw weights are prefetched into L2 while a block's GEMMs run; without,
//   each block's transform waited on memory (AMD Zen 5: ResNet50 b1's 14x14 layers 1.56x
//   oneDNN's time, with 0.94x).
//
// Work: tasks of `tile_block` tiles x a range of output-channel blocks (`oc_block` channels); a
// task transforms its tiles' input (all channels) into a per-thread V block, then per output
// channel block runs the X GEMMs into a per-thread M block and the output transform with the
// epilogue. When there are fewer tile blocks than `tasks_per_thread` per thread, the output
// channel blocks are split between tasks too (each repeats its tile block's input transform).
#pragma once
#include <algorithm>
#include <vector>

#include "register_tile.h"
#include "runtime.h"
#include "vec16.h"

namespace {

enum WinogradActivation { WINO_NONE = 0, WINO_RELU = 1, WINO_RELU6 = 2 };

struct WinogradShape {
  int N, C, H, W, OC, OH, OW, pad_top, pad_left;
  int m, rows, vecs, tile_block, oc_block, tasks_per_thread, act, raw_weights;
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
constexpr int kRawChannels = 64;  // channels a raw-weight transform block covers

// 1-D transforms of alpha vectors (Lavin & Gray; points 0, +-1 [, +-2], infinity), the same
// matrices as packing.py's WINOGRAD_G.
template <int M>
struct WinoTransform;

template <>
struct WinoTransform<4> {
  static constexpr int kAlpha = 6;
  static inline void weight(const Vec16 *g, Vec16 *u) {  // u = G g (3 -> 6)
    const Vec16 a = v_add(g[0], g[2]);
    const Vec16 b = v_fmadd(v_set1(1.f / 24), g[0], v_mul(v_set1(1.f / 6), g[2]));
    const Vec16 c = v_mul(v_set1(1.f / 12), g[1]);
    const Vec16 sixth = v_set1(-1.f / 6);
    u[0] = v_mul(v_set1(0.25f), g[0]);
    u[1] = v_mul(sixth, v_add(a, g[1]));
    u[2] = v_mul(sixth, v_sub(a, g[1]));
    u[3] = v_add(b, c);
    u[4] = v_sub(b, c);
    u[5] = g[2];
  }
  static inline void input(const Vec16 *x, Vec16 *y) {  // y = B^T x
    const Vec16 four = v_set1(4.f), five = v_set1(5.f);
    const Vec16 t0 = v_fnmadd(four, x[2], x[4]);   // x4 - 4 x2
    const Vec16 t1 = v_fnmadd(four, x[1], x[3]);   // x3 - 4 x1
    const Vec16 t2 = v_sub(x[4], x[2]);
    const Vec16 t3 = v_add(v_sub(x[3], x[1]), v_sub(x[3], x[1]));
    y[0] = v_fnmadd(five, x[2], v_fmadd(four, x[0], x[4]));
    y[1] = v_add(t0, t1);
    y[2] = v_sub(t0, t1);
    y[3] = v_add(t2, t3);
    y[4] = v_sub(t2, t3);
    y[5] = v_fnmadd(five, x[3], v_fmadd(four, x[1], x[5]));
  }
  static inline void output(const Vec16 *x, Vec16 *y) {  // y = A^T x
    const Vec16 a = v_add(x[1], x[2]), b = v_sub(x[1], x[2]);
    const Vec16 c = v_add(x[3], x[4]), d = v_sub(x[3], x[4]);
    y[0] = v_add(v_add(x[0], a), c);
    y[1] = v_fmadd(v_set1(2.f), d, b);
    y[2] = v_fmadd(v_set1(4.f), c, a);
    y[3] = v_add(v_fmadd(v_set1(8.f), d, b), x[5]);
  }
};

template <>
struct WinoTransform<2> {
  static constexpr int kAlpha = 4;
  static inline void weight(const Vec16 *g, Vec16 *u) {  // u = G g (3 -> 4)
    const Vec16 half = v_set1(0.5f), a = v_add(g[0], g[2]);
    u[0] = g[0];
    u[1] = v_mul(half, v_add(a, g[1]));
    u[2] = v_mul(half, v_sub(a, g[1]));
    u[3] = g[2];
  }
  static inline void input(const Vec16 *x, Vec16 *y) {
    y[0] = v_sub(x[0], x[2]);
    y[1] = v_add(x[1], x[2]);
    y[2] = v_sub(x[2], x[1]);
    y[3] = v_sub(x[1], x[3]);
  }
  static inline void output(const Vec16 *x, Vec16 *y) {
    y[0] = v_add(v_add(x[0], x[1]), x[2]);
    y[1] = v_sub(v_sub(x[1], x[2]), x[3]);
  }
};

class WinogradConv final : public NativeConv {
 public:
  explicit WinogradConv(const WinogradShape &s) : s_(s) {
    if (s.m != 2 && s.m != 4) throw Error{"winograd: tile size must be 2 or 4"};
    gemm_ = register_tile_for<START_ZERO>(s.rows, s.vecs);
    gemm_add_ = register_tile_for<START_C>(s.rows, s.vecs);
    if (!gemm_) throw Error{"winograd: no register tile of " + std::to_string(s.rows) + " x " +
                            std::to_string(s.vecs) + " vectors"};
    alpha_ = s.m + 2;
    points_ = alpha_ * alpha_;
    tiles_h_ = (s.OH + s.m - 1) / s.m;
    tiles_w_ = (s.OW + s.m - 1) / s.m;
    tiles_ = (int64_t)s.N * tiles_h_ * tiles_w_;
    cp_ = (s.C + 15) / 16 * 16;
    panel_ = 16 * s.vecs;
    ocp_ = (s.OC + panel_ - 1) / panel_ * panel_;
    oc_block_ = std::max(panel_, s.oc_block / panel_ * panel_);
    oc_blocks_ = (int)((ocp_ + oc_block_ - 1) / oc_block_);
    v_stride_ = (int64_t)points_ * cp_ + kSkew;
    u_row_ = (int64_t)points_ * panel_ + kSkew;
    m_stride_ = (int64_t)points_ * oc_block_ + kSkew;
  }

  // The packed weights' size in floats, as packing.py writes them: X * ocp * cp transformed,
  // 9 * ocp * cp raw.
  int64_t weight_floats() const override {
    return (int64_t)(s_.raw_weights ? 9 : points_) * ocp_ * cp_;
  }

  void run(const float *src, const float *u, const float *bias, const float *residual,
           float *dst, SpinPool &pool) const override {
    const int threads = pool.get_num_threads();
    int64_t tile_block = std::max<int64_t>(s_.rows, s_.tile_block / s_.rows * s_.rows);
    int64_t blocks = (tiles_ + tile_block - 1) / tile_block;
    if (blocks % threads != 0 && blocks < 4 * threads) {  // even out the threads' shares
      blocks = (blocks + threads - 1) / threads * threads;
      tile_block = ((tiles_ + blocks - 1) / blocks + s_.rows - 1) / s_.rows * s_.rows;
      blocks = (tiles_ + tile_block - 1) / tile_block;
    }
    int splits = 1;
    if (blocks < (int64_t)s_.tasks_per_thread * threads)
      splits = (int)std::min<int64_t>(oc_blocks_, ((int64_t)s_.tasks_per_thread * threads +
                                                   blocks - 1) / blocks);
    const int64_t tasks = blocks * splits;
    pool.parallel_for((int)tasks, [&](int task, int) {
      const int64_t block = task / splits;
      const int split = task % splits;
      const int64_t first = block * tile_block;
      const int count = (int)std::min<int64_t>(tile_block, tiles_ - first);
      const int first_oc_block = (int)((int64_t)oc_blocks_ * split / splits);
      const int end_oc_block = (int)((int64_t)oc_blocks_ * (split + 1) / splits);
      run_task(src, u, bias, residual, dst, first, count, (int)tile_block, first_oc_block,
               end_oc_block);
    });
  }

 private:
  WinogradShape s_;
  RegisterTile gemm_ = nullptr, gemm_add_ = nullptr;
  int alpha_ = 0, points_ = 0, tiles_h_ = 0, tiles_w_ = 0, cp_ = 0, panel_ = 0, oc_block_ = 0;
  int oc_blocks_ = 0;
  int64_t tiles_ = 0, ocp_ = 0;
  // Rows of the per-thread blocks (a tile's V and M, a point's U) are kSkew floats longer than
  // their data: at multiples of 4 KiB apart, the rows a register tile reads together would
  // share one set of the L1 cache (V rows of 36 x 256 channels are 36 KiB apart).
  static constexpr int kSkew = 16;
  int64_t v_stride_ = 0, m_stride_ = 0, u_row_ = 0;

  static float *scratch(size_t floats, int slot) {
    return thread_scratch<WinogradConv, 3>(floats, slot);
  }

  void tile_origin(int64_t tile, int &n, int &y0, int &x0) const {
    n = (int)(tile / ((int64_t)tiles_h_ * tiles_w_));
    const int rest = (int)(tile % ((int64_t)tiles_h_ * tiles_w_));
    y0 = rest / tiles_w_ * s_.m;
    x0 = rest % tiles_w_ * s_.m;
  }

  void run_task(const float *src, const float *u, const float *bias, const float *residual,
                float *dst, int64_t first, int count, int tile_block, int first_oc_block,
                int end_oc_block) const {
    const int rounded = (count + s_.rows - 1) / s_.rows * s_.rows;
    float *v = scratch((size_t)tile_block * v_stride_, 0);
    float *m = scratch((size_t)tile_block * m_stride_, 1);
    if (s_.m == 4)
      transform_input<4>(src, first, count, v);
    else
      transform_input<2>(src, first, count, v);
    std::fill(v + (int64_t)count * v_stride_, v + (int64_t)rounded * v_stride_, 0.f);
    const int64_t lda = v_stride_, ldc = m_stride_;
    const int panels = (int)(ocp_ / panel_);
    float *u_block = s_.raw_weights ? scratch((size_t)kRawChannels * u_row_, 2) : nullptr;
    for (int ob = first_oc_block; ob < end_oc_block; ob++) {
      const int oc0 = ob * oc_block_;
      const int width = (int)std::min<int64_t>(oc_block_, ocp_ - oc0);
      if (s_.raw_weights) {
        for (int p = 0; p < width / panel_; p++)
          for (int c0 = 0; c0 < cp_; c0 += kRawChannels) {
            const int depth = std::min(kRawChannels, cp_ - c0);
            transform_weights(u + ((int64_t)(oc0 / panel_ + p) * cp_ + c0) * 9 * panel_, depth,
                              u_block);
            const RegisterTile gemm = c0 == 0 ? gemm_ : gemm_add_;
            // the next block's raw weights (contiguous: [c][9][P] of the same or the next panel)
            const char *next = reinterpret_cast<const char *>(
                u + ((int64_t)(oc0 / panel_ + p) * cp_ + c0 + depth) * 9 * panel_);
            const bool last = p == width / panel_ - 1 && c0 + depth >= cp_;
            const int64_t next_lines = last ? 0 : (int64_t)kRawChannels * 9 * panel_ / 16;
            const int64_t per_point = (next_lines + points_ - 1) / points_;
            for (int xi = 0; xi < points_; xi++) {
              for (int64_t l = xi * per_point; l < std::min(next_lines, (xi + 1) * per_point); l++)
                _mm_prefetch(next + l * 64, _MM_HINT_T1);
              for (int r = 0; r < rounded; r += s_.rows)
                gemm(v + r * lda + (int64_t)xi * cp_ + c0, lda, u_block + (int64_t)xi * panel_,
                     u_row_, depth, m + r * ldc + (int64_t)xi * oc_block_ + p * panel_, ldc,
                     nullptr, TILE_NONE);
            }
          }
      } else {
        for (int xi = 0; xi < points_; xi++)
          for (int p = 0; p < width / panel_; p++) {
            const float *b = u + ((int64_t)xi * panels + oc0 / panel_ + p) * cp_ * panel_;
            for (int r = 0; r < rounded; r += s_.rows)
              gemm_(v + r * lda + (int64_t)xi * cp_, lda, b, panel_, cp_,
                    m + r * ldc + (int64_t)xi * oc_block_ + p * panel_, ldc, nullptr,
                    TILE_NONE);
          }
      }
      if (s_.m == 4)
        transform_output<4>(m, first, count, oc0, width, bias, residual, dst);
      else
        transform_output<2>(m, first, count, oc0, width, bias, residual, dst);
    }
  }

  // `depth` channels of one panel's raw weights ([c][9][P]) -> U block [xi][c][P].
  void transform_weights(const float *raw, int depth, float *u_block) const {
    if (s_.m == 4)
      transform_weights<4>(raw, depth, u_block);
    else
      transform_weights<2>(raw, depth, u_block);
  }

  template <int M>
  void transform_weights(const float *raw, int depth, float *u_block) const {
    constexpr int A = M + 2;
    const int panel = panel_, vecs = s_.vecs;
    const int64_t u_row = u_row_;
    Vec16 g[3][3], half[A][3], out[A];
    for (int c = 0; c < depth; c++) {
      float *uc = u_block + c * u_row;
      for (int v = 0; v < vecs; v++) {
        const float *gc = raw + (int64_t)c * 9 * panel + v * 16;
        for (int k = 0; k < 9; k++) g[k / 3][k % 3] = v_loadu(gc + k * panel);
        for (int j = 0; j < 3; j++) {  // G g: along the kernel's rows, column by column
          const Vec16 column[3] = {g[0][j], g[1][j], g[2][j]};
          WinoTransform<M>::weight(column, out);
          for (int i = 0; i < A; i++) half[i][j] = out[i];
        }
        for (int i = 0; i < A; i++) {  // then (G g) G^T along the columns
          WinoTransform<M>::weight(half[i], out);
          for (int j = 0; j < A; j++) v_store(uc + (i * A + j) * panel + v * 16, out[j]);
        }
      }
    }
  }

  template <int M>
  void transform_input(const float *src, int64_t first, int count, float *v) const {
    constexpr int A = M + 2;
    // members as locals: a vector store may alias them (Vec16 is may_alias) and would make
    // the compiler reload them after every store
    const int H = s_.H, W = s_.W, C = s_.C, cp = cp_;
    const int64_t row = (int64_t)W * C, image = (int64_t)H * row, v_stride = v_stride_;
    Vec16 patch[A][A], column[A], out[A];
    for (int t = 0; t < count; t++) {
      int n, y0, x0;
      tile_origin(first + t, n, y0, x0);
      y0 -= s_.pad_top;
      x0 -= s_.pad_left;
      const float *base = src + n * image;
      float *vt = v + (int64_t)t * v_stride;
      const bool inside = y0 >= 0 && x0 >= 0 && y0 + A <= H && x0 + A <= W;
      for (int c = 0; c < cp; c += 16) {
        const Mask16 mask = lanes(C - c);
        for (int i = 0; i < A; i++) {
          const int y = y0 + i;
          for (int j = 0; j < A; j++) {
            const int x = x0 + j;
            patch[i][j] = (!inside && (y < 0 || y >= H || x < 0 || x >= W))
                              ? v_zero()
                              : v_maskz_loadu(mask, base + y * row + (int64_t)x * C + c);
          }
        }
        for (int j = 0; j < A; j++) {  // along the rows, column by column
          for (int i = 0; i < A; i++) column[i] = patch[i][j];
          WinoTransform<M>::input(column, out);
          for (int i = 0; i < A; i++) patch[i][j] = out[i];
        }
        for (int i = 0; i < A; i++) {  // then along the columns
          WinoTransform<M>::input(patch[i], out);
          for (int j = 0; j < A; j++) v_store(vt + (int64_t)(i * A + j) * cp + c, out[j]);
        }
      }
    }
  }

  template <int M>
  void transform_output(const float *m, int64_t first, int count, int oc0, int width,
                        const float *bias, const float *residual, float *dst) const {
    constexpr int A = M + 2;
    const int OH = s_.OH, OW = s_.OW, OC = s_.OC, act = s_.act, oc_block = oc_block_;
    const int64_t row = (int64_t)OW * OC, image = (int64_t)OH * row, m_stride = m_stride_;
    const Vec16 zero = v_zero(), six = v_set1(6.f);
    Vec16 half[M][A], column[A], out[A];
    for (int t = 0; t < count; t++) {
      int n, y0, x0;
      tile_origin(first + t, n, y0, x0);
      const float *mt = m + (int64_t)t * m_stride;
      for (int c = 0; c < width; c += 16) {
        const int oc = oc0 + c;
        if (oc >= OC) break;
        const Mask16 mask = lanes(OC - oc);
        const Vec16 b = v_maskz_loadu(mask, bias + oc);
        for (int j = 0; j < A; j++) {
          for (int i = 0; i < A; i++) column[i] = v_load(mt + (i * A + j) * oc_block + c);
          WinoTransform<M>::output(column, out);
          for (int i = 0; i < M; i++) half[i][j] = out[i];
        }
        for (int i = 0; i < M && y0 + i < OH; i++) {
          WinoTransform<M>::output(half[i], out);
          const int64_t at = n * image + (int64_t)(y0 + i) * row + oc;
          for (int j = 0; j < M && x0 + j < OW; j++) {
            const int64_t where = at + (int64_t)(x0 + j) * OC;
            Vec16 y = v_add(out[j], b);
            if (residual) y = v_add(y, v_maskz_loadu(mask, residual + where));
            if (act == WINO_RELU) y = v_max(y, zero);
            if (act == WINO_RELU6) y = v_min(v_max(y, zero), six);
            v_mask_storeu(dst + where, mask, y);
          }
        }
      }
    }
  }
};

#else  // a CPU without AVX2 and FMA: the step is refused where it is built
class WinogradConv final : public RefusedConv {
 public:
  explicit WinogradConv(const WinogradShape &) : RefusedConv("winograd_nhwc") {}
};
#endif

}  // namespace
