// A channel scale on a channels-last (NHWC) value: dst[n][y][x][c] = src[n][y][x][c] * s[n'][c]
// (n' = n, or 0 where the scale is one row for every image): the multiply of a
// squeeze-and-excitation block, whose scale is a (N, C, 1, 1) value computed by the program.
// oneDNN's binary primitive ran these broadcasts at about 1.2 G elements/s on two threads of an
// AMD Zen 4 (EfficientNet-B0: 16 of them, 1.9 ms of a 10 ms inference); a plain loop that the
// compiler vectorises streams them at memory speed. Each product is the same float multiply,
// so results are bit-identical. Part of program.cpp's translation unit.
#pragma once
#include <algorithm>
#include <cstdint>

#include "runtime.h"

namespace {

struct ChannelScaleShape {
  int64_t images, pixels, channels;  // N, H*W, C
  bool scale_per_image;              // the scale has N rows (else one)
};

class ChannelScale final : public NativeConv {
 public:
  static constexpr int64_t kPixelsPerTask = 64;

  explicit ChannelScale(const ChannelScaleShape &s) : s_(s) {
    if (s.images < 1 || s.pixels < 1 || s.channels < 1)
      throw Error{"channel_scale: empty operands"};
  }

  int64_t weight_floats() const override { return 0; }  // the scale is computed, not packed

  void run(const float *src, const float *scale, const float *, const float *, float *dst,
           SpinPool &pool) const override {
    const int64_t strips = (s_.pixels + kPixelsPerTask - 1) / kPixelsPerTask;
    const int64_t tasks = s_.images * strips;
    pool.parallel_for((int)std::min<int64_t>(tasks, pool.get_num_threads()), [&](int t, int n) {
      for (int64_t task = t; task < tasks; task += n) {
        const int64_t image = task / strips, strip = task % strips;
        const int64_t first = strip * kPixelsPerTask;
        const int64_t last = std::min(s_.pixels, first + kPixelsPerTask);
        const float *row_scale = scale + (s_.scale_per_image ? image * s_.channels : 0);
        for (int64_t p = first; p < last; p++) {
          const int64_t offset = (image * s_.pixels + p) * s_.channels;
          const float *in = src + offset;
          float *out = dst + offset;
          for (int64_t c = 0; c < s_.channels; c++) out[c] = in[c] * row_scale[c];
        }
      }
    });
  }

 private:
  ChannelScaleShape s_;
};

}  // namespace
