// A dense layer's matrix product, rows x (K, N) constant weights, as oneDNN's 1x1 convolution:
// the rows of a dense row-major source are the pixels of a channels-last image (1, K, 1, rows),
// and the product's rows those of its (1, N, 1, rows) result, so no data moves. Taken where
// oneDNN's matrix product leaves its brgemm kernels for the older gemm (ViT-B/32's products of
// K = 768 on its 50 tokens: "small shapes fall back", gemm:jit:f32) and the convolution gets
// brgemm's 1x1 kernel. Part of program.cpp's translation unit.
#pragma once
#include "steps.h"

namespace {

// The primitive for step `index` (a STEP_MATMUL `s`, `src` its source as the step
// reads it) as a 1x1 convolution that oneDNN runs with brgemm, its arguments in `args`;
// none (and `args` untouched) where the product is not a dense layer's or no brgemm
// convolution takes it.
PrimitiveDesc Program::matmul_as_conv(int index, const MatMulStep &s, int src,
                                      std::vector<std::pair<int, int>> &args) {
  const int weights = s.weights, bias = s.bias, dst = s.dst;
  const Dims &a = value(src).dims, &w = value(weights).dims;
  if (s.transpose_src || s.transpose_weights || value(weights).role != ROLE_CONST ||
      w.size() != 2 || a.size() < 2 || a.back() != w[0] || (bias >= 0 && value(bias).role != ROLE_CONST) ||
      !dnnl_memory_desc_equal(value(src).md.md, Md(plain_md(a)).md))
    return PrimitiveDesc();
  for (const PostOp &p : s.posts)
    if (p.kind != POST_ELTWISE) return PrimitiveDesc();  // a binary operand has the product's rank
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < a.size(); i++) rows *= a[i];
  const int64_t k = w[0], n = w[1];
  // the views below cover their values exactly
  if (dims_size(value(dst).dims) != rows * n || (bias >= 0 && dims_size(value(bias).dims) != n))
    return PrimitiveDesc();
  auto image = [&](int64_t channels) {  // (1, channels, 1, rows), channels-last
    dnnl_dims_t dims{1, channels, 1, rows}, strides{rows * channels, 1, rows * channels, channels};
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_create_with_strides(&md, 4, dims, dnnl_f32, strides), "image md");
    return Md(md);
  };
  Md src_md = image(k), dst_md = image(n);
  dnnl_dims_t w_dims{n, k, 1, 1}, w_strides{1, n, 1, 1};  // the (K, N) constant, as OIHW
  dnnl_memory_desc_t w_view_md;
  check(dnnl_memory_desc_create_with_strides(&w_view_md, 4, w_dims, dnnl_f32, w_strides),
        "weights view md");
  Md w_view(w_view_md), w_any(tagged_md({n, k, 1, 1}, dnnl_format_tag_any));
  Md bias_md(plain_md({n}));
  std::vector<std::pair<int, int>> post_args;
  Attr attr = attributes(s.posts, post_args);
  dnnl_dims_t ones{1, 1}, zeros{0, 0};
  PrimitiveDesc pd;
  dnnl_status_t status = dnnl_convolution_forward_primitive_desc_create(
      pd.out(), runtime().engine, dnnl_forward_inference, dnnl_convolution_direct, src_md.md,
      w_any.md, bias >= 0 ? bias_md.md : nullptr, dst_md.md, ones, zeros, zeros, zeros,
      attr.get());
  if (status != dnnl_success || implementation_of(pd.get()).rfind("brg", 0) != 0)
    return PrimitiveDesc();
  auto view = [&](int of, Md md) { return add_view(of, std::move(md), value(of).dims, index); };
  define(dst, Md(plain_md(value(dst).dims)).md);
  int packed = packed_weight(
      view(weights, std::move(w_view)),
      dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_WEIGHTS));
  args = post_args;
  args.push_back({DNNL_ARG_SRC, view(src, std::move(src_md))});
  args.push_back({DNNL_ARG_WEIGHTS, packed});
  if (bias >= 0) args.push_back({DNNL_ARG_BIAS, view(bias, std::move(bias_md))});
  args.push_back({DNNL_ARG_DST, view(dst, std::move(dst_md))});
  return pd;
}

}  // namespace
