// Building a program's steps: each kind of step, decoded and validated into its struct
// (step_specs.h, native_steps.h), as oneDNN primitives (and layout conversions where a
// primitive wants another layout), a native or external kernel call (native_steps.h), or a
// view. Part of program.cpp's translation unit.
#pragma once
#include "build_helpers.h"
#include "native_steps.h"

namespace {

// The post-ops of a step as its primitive's attributes (and the binary operands' arguments).
Attr Program::attributes(const PostOps &posts, std::vector<std::pair<int, int>> &args) {
  Attr attr = scratchpad_attr();
  if (posts.empty()) return attr;
  PostOpList list;
  check(dnnl_post_ops_create(list.out()), "post-ops");
  for (size_t i = 0; i < posts.size(); i++) {
    const PostOp &p = posts[i];
    if (p.kind == POST_ELTWISE) {
      check(dnnl_post_ops_append_eltwise(list.get(), p.alg, p.alpha, p.beta), "eltwise post-op");
    } else {
      check(dnnl_post_ops_append_binary(list.get(), p.alg, value(p.operand).md.md),
            "binary post-op");
      args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP((int)i) | DNNL_ARG_SRC_1, p.operand});
    }
  }
  check(dnnl_primitive_attr_set_post_ops(attr.get(), list.get()), "set post-ops");
  return attr;
}

// Decodes step `index` (step_specs.h, native_steps.h), checks that every value it reads is
// defined by then, and builds it.
void Program::build_step(int index, const Step &step) {
  std::vector<int> reads;
  const Declared declared{values_, declared_values_};
  auto fields = [&](const char *kind) { return Fields(step.f, index, kind, declared, reads); };
  auto ready = [&] {
    for (int id : reads)
      if (!values_[id].md.md)
        throw Error{"step " + std::to_string(index) + " reads value " + std::to_string(id) +
                    " before any step computes it"};
  };
  switch (step.kind) {
#define STEP_CASE(KIND, DECODE, BUILD) \
  case KIND: {                         \
    auto decoded = DECODE;             \
    ready();                           \
    BUILD(index, decoded);             \
    return;                            \
  }
    STEP_CASE(STEP_CONV, decode_conv(fields("conv")), build_conv)
    STEP_CASE(STEP_POOL, decode_pool(fields("pool")), build_pool)
    STEP_CASE(STEP_ELTWISE, decode_eltwise(fields("eltwise")), build_eltwise)
    STEP_CASE(STEP_BINARY, decode_binary(fields("binary")), build_binary)
    STEP_CASE(STEP_CONCAT, decode_concat(fields("concat")), build_concat)
    STEP_CASE(STEP_MATMUL, decode_matmul(fields("matmul")), build_matmul)
    STEP_CASE(STEP_REDUCE, decode_reduce(fields("reduce")), build_reduce)
    STEP_CASE(STEP_LAYERNORM, decode_norm(fields("layernorm"), false), build_norm)
    STEP_CASE(STEP_GROUPNORM, decode_norm(fields("groupnorm"), true), build_norm)
    STEP_CASE(STEP_SOFTMAX, decode_softmax(fields("softmax")), build_softmax)
    STEP_CASE(STEP_TRANSPOSE, decode_transpose(fields("transpose")), build_transpose)
    STEP_CASE(STEP_RESHAPE, decode_reshape(fields("reshape")), build_reshape)
    STEP_CASE(STEP_RESAMPLE, decode_resample(fields("resample")), build_resample)
    STEP_CASE(STEP_SLICE, decode_slice(fields("slice")), build_slice)
    STEP_CASE(STEP_EXTERNAL, decode_external(fields("external"), kernels_),
              build_external)
    STEP_CASE(STEP_WINOGRAD, decode_winograd(fields("winograd")), build_winograd)
    STEP_CASE(STEP_GEMM_CONV, decode_gemm_conv(fields("gemm_conv")), build_gemm_conv)
    STEP_CASE(STEP_POINTWISE_DEPTHWISE, decode_pointwise_depthwise(fields("pointwise_depthwise")),
              build_pointwise_depthwise)
#undef STEP_CASE
    default:
      throw Error{"step " + std::to_string(index) + ": unknown kind " +
                  std::to_string(step.kind)};
  }
}

// The primitive `pd` as step `index`'s action, its operands used until then.
void Program::add_step(int index, PrimitiveDesc pd, std::vector<std::pair<int, int>> args) {
  for (auto &[arg, id] : args) value(id).last_use = std::max(value(id).last_use, index);
  add(std::move(pd), std::move(args), index);
}

void Program::build_conv(int index, const ConvStep &s) {
  std::unique_ptr<PrimitiveCacheOff> cache_off;  // until the step's primitive is made
  if (s.impl != 0) cache_off = std::make_unique<PrimitiveCacheOff>();
  dnnl_engine_t engine = runtime().engine;
  int src = s.src;
  const Dims &w = value(s.weights).dims;  // (O, I/groups, KH, KW)
  dnnl_dims_t strides{s.stride[0], s.stride[1]}, pad_l{s.pad_l[0], s.pad_l[1]},
      pad_r{s.pad_r[0], s.pad_r[1]}, dilates{s.dilation[0] - 1, s.dilation[1] - 1};
  Dims wdims = w;
  if (s.groups > 1) {
    wdims = {s.groups, w[0] / s.groups, w[1], w[2], w[3]};
    Md grouped(plain_md(wdims));
    value(s.weights).md = std::move(grouped);
  }
  // The layout preference is for the result; the source is whatever the implementation
  // wants. A preference that leaves only oneDNN's reference implementation is dropped. A
  // source of fewer channels than one 16-channel block (a first layer's image) is read as
  // it is where a jit implementation can: converting it costs more than it saves
  // (ResNet50's 3-channel 224x224 input: a 0.85 ms reorder before a 1.3 ms convolution).
  Md w_any(tagged_md(wdims, dnnl_format_tag_any));
  std::vector<std::pair<int, int>> args;
  auto create = [&](const_dnnl_memory_desc_t src_md, int layout) {
    Md dst_any(preferred_md(value(s.dst).dims, layout));
    std::vector<std::pair<int, int>> post_args;
    Attr attr = attributes(s.posts, post_args);
    PrimitiveDesc made;
    dnnl_status_t status = dnnl_convolution_forward_primitive_desc_create(
        made.out(), engine, dnnl_forward_inference, dnnl_convolution_direct, src_md, w_any.md,
        s.bias >= 0 ? value(s.bias).md.md : nullptr, dst_any.md, strides, dilates, pad_l, pad_r,
        attr.get());
    args = post_args;
    if (status != dnnl_success) made.reset();
    return made;
  };
  PrimitiveDesc pd;
  for (int layout : {layout_, (int)LAYOUT_ANY}) {
    if (pd || value(src).dims[1] >= 16 || s.impl != 0) break;
    pd = create(value(src).md.md, layout);
    if (pd && implementation_of(pd.get()).rfind("jit", 0) != 0) pd.reset();
  }
  int dst_layout = layout_;
  auto create_any = [&] {  // src in the layout oneDNN wants
    Md src_any(tagged_md(value(src).dims, dnnl_format_tag_any));
    return create(src_any.md, dst_layout);
  };
  if (!pd) {
    pd = create_any();
    if (pd && layout_ != LAYOUT_ANY && is_reference(pd.get())) {
      dst_layout = LAYOUT_ANY;
      pd = create_any();
    }
    if (!pd) throw Error{"convolution: oneDNN has no implementation"};
    pd = later_offer(std::move(pd), s.impl, create_any);
  }
  auto md_of = [&](int arg) {
    return dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, arg);
  };
  src = in_layout(src, index, Md(clone(md_of(DNNL_ARG_SRC))));
  define(s.dst, md_of(DNNL_ARG_DST));
  int packed = packed_weight(s.weights, md_of(DNNL_ARG_WEIGHTS));
  args.push_back({DNNL_ARG_SRC, src});
  args.push_back({DNNL_ARG_WEIGHTS, packed});
  if (s.bias >= 0) args.push_back({DNNL_ARG_BIAS, s.bias});
  args.push_back({DNNL_ARG_DST, s.dst});
  add_step(index, std::move(pd), std::move(args));
}

void Program::build_pool(int index, const PoolStep &s) {
  dnnl_dims_t kernel{s.kernel[0], s.kernel[1]}, strides{s.stride[0], s.stride[1]},
      pad_l{s.pad_l[0], s.pad_l[1]}, pad_r{s.pad_r[0], s.pad_r[1]}, dilation{0, 0};
  Md dst_any(tagged_md(value(s.dst).dims, dnnl_format_tag_any));
  std::vector<std::pair<int, int>> args;
  Attr attr = attributes(s.posts, args);
  PrimitiveDesc pd;
  check(dnnl_pooling_forward_primitive_desc_create(
            pd.out(), runtime().engine, dnnl_forward_inference, s.alg, value(s.src).md.md,
            dst_any.md, strides, kernel, dilation, pad_l, pad_r, attr.get()),
        "pooling");
  define(s.dst, dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_DST));
  args.push_back({DNNL_ARG_SRC, s.src});
  args.push_back({DNNL_ARG_DST, s.dst});
  add_step(index, std::move(pd), std::move(args));
}

void Program::build_eltwise(int index, const EltwiseStep &s) {
  PrimitiveDesc pd;
  check(dnnl_eltwise_forward_primitive_desc_create(
            pd.out(), runtime().engine, dnnl_forward_inference, s.alg, value(s.src).md.md,
            value(s.src).md.md, s.alpha, s.beta, scratchpad_attr().get()),
        "eltwise");
  define(s.dst, value(s.src).md.md);
  add_step(index, std::move(pd), {{DNNL_ARG_SRC, s.src}, {DNNL_ARG_DST, s.dst}});
}

void Program::build_binary(int index, const BinaryStep &s) {
  if (build_channel_scale(index, s)) return;
  int src0 = s.src0, src1 = s.src1;
  if (value(src1).dims != value(src0).dims) src1 = plain(src1, index);  // broadcast operand
  std::vector<std::pair<int, int>> args;
  auto create = [&](const_dnnl_memory_desc_t src0_md) {
    std::vector<std::pair<int, int>> post_args;
    Attr attr = attributes(s.posts, post_args);
    PrimitiveDesc made;
    check(dnnl_binary_primitive_desc_create(made.out(), runtime().engine, s.alg, src0_md,
                                            value(src1).md.md, src0_md, attr.get()),
          "binary");
    args = post_args;
    return made;
  };
  PrimitiveDesc pd = create(value(src0).md.md);
  // Some layouts get only oneDNN's reference implementation (on AVX2, channels in blocks of
  // 8 with post-ops: DenseNet121's first dense block, 291 of its 336 ms): src0 is then read
  // channels-last where that has a faster one.
  if (is_reference(pd.get()) && value(src0).dims.size() == 4) {
    Md channels_last_md(tagged_md(value(src0).dims, dnnl_acdb));
    PrimitiveDesc other = create(channels_last_md.md);
    if (!is_reference(other.get())) {  // the post-ops' arguments are the same either way
      pd = std::move(other);
      src0 = channels_last(src0, index);
    }
  }
  define(s.dst, value(src0).md.md);
  args.push_back({DNNL_ARG_SRC, src0});
  args.push_back({DNNL_ARG_SRC_1, src1});
  args.push_back({DNNL_ARG_DST, s.dst});
  add_step(index, std::move(pd), std::move(args));
}

void Program::build_concat(int index, const ConcatStep &s) {
  std::vector<const_dnnl_memory_desc_t> mds;
  for (int src : s.srcs) mds.push_back(value(src).md.md);
  Md dst_any(tagged_md(value(s.dst).dims, dnnl_format_tag_any));
  PrimitiveDesc pd;
  check(dnnl_concat_primitive_desc_create(pd.out(), runtime().engine, dst_any.md,
                                          (int)s.srcs.size(), s.axis, mds.data(),
                                          scratchpad_attr().get()),
        "concat");
  define(s.dst, dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_DST));
  std::vector<std::pair<int, int>> args;
  for (size_t i = 0; i < s.srcs.size(); i++)
    args.push_back({DNNL_ARG_MULTIPLE_SRC + (int)i, s.srcs[i]});
  args.push_back({DNNL_ARG_DST, s.dst});
  add_step(index, std::move(pd), std::move(args));
}

void Program::build_matmul(int index, const MatMulStep &s) {
  std::unique_ptr<PrimitiveCacheOff> cache_off;  // until the step's primitive is made
  if (s.impl != 0) cache_off = std::make_unique<PrimitiveCacheOff>();
  int src = strided(s.src, index), weights = s.weights;
  bool constant_weights = value(weights).role == ROLE_CONST;
  if (!constant_weights) weights = strided(weights, index);
  auto transposed = [&](int id, bool flag) {
    const Dims &d = value(id).dims;
    std::vector<int> perm(d.size());
    for (size_t i = 0; i < d.size(); i++) perm[i] = (int)i;
    if (flag) std::swap(perm[d.size() - 1], perm[d.size() - 2]);
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_permute_axes(&md, value(id).md.md, perm.data()), "transpose");
    return Md(md);
  };
  const bool pack = constant_weights && !s.transpose_weights;
  Md src_md = transposed(src, s.transpose_src);
  Md w_md = pack ? Md(tagged_md(value(weights).dims, dnnl_format_tag_any))
                 : transposed(weights, s.transpose_weights);
  Md dst_md(plain_md(value(s.dst).dims));
  std::vector<std::pair<int, int>> args;
  auto create = [&](std::vector<std::pair<int, int>> &post_args) {
    PrimitiveDesc made;
    Attr attr = attributes(s.posts, post_args);
    check(dnnl_matmul_primitive_desc_create(made.out(), runtime().engine, src_md.md, w_md.md,
                                            s.bias >= 0 ? value(s.bias).md.md : nullptr,
                                            dst_md.md, attr.get()),
          "matmul");
    return made;
  };
  PrimitiveDesc pd = create(args);
  if (s.impl > 1) {
    std::vector<std::pair<int, int>> again;  // the same post-op arguments
    pd = later_offer(std::move(pd), s.impl - 1, [&] { return create(again); });
  }
  if (s.impl == 0 && implementation_of(pd.get()).rfind("brg", 0) != 0) {  // fell back to gemm
    std::vector<std::pair<int, int>> conv_args;
    if (PrimitiveDesc conv = matmul_as_conv(index, s, src, conv_args)) {
      add_step(index, std::move(conv), std::move(conv_args));
      return;
    }
  }
  define(s.dst, dst_md.md);
  int w_arg = weights;
  if (pack) {
    w_arg = packed_weight(weights, dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md,
                                                                DNNL_ARG_WEIGHTS));
  } else {  // the (transposed) view of the weights operand
    w_arg = add_view(weights, std::move(w_md), value(weights).dims, index);
  }
  if (s.transpose_src) src = add_view(src, std::move(src_md), value(src).dims, index);
  args.push_back({DNNL_ARG_SRC, src});
  args.push_back({DNNL_ARG_WEIGHTS, w_arg});
  if (s.bias >= 0) args.push_back({DNNL_ARG_BIAS, s.bias});
  args.push_back({DNNL_ARG_DST, s.dst});
  add_step(index, std::move(pd), std::move(args));
}

void Program::build_reduce(int index, const ReduceStep &s) {
  Md dst_any(tagged_md(value(s.dst).dims, dnnl_format_tag_any));
  PrimitiveDesc pd;
  check(dnnl_reduction_primitive_desc_create(pd.out(), runtime().engine, s.alg,
                                             value(s.src).md.md, dst_any.md, 0.f, 0.f,
                                             scratchpad_attr().get()),
        "reduction");
  define(s.dst, dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_DST));
  add_step(index, std::move(pd), {{DNNL_ARG_SRC, s.src}, {DNNL_ARG_DST, s.dst}});
}

// Layer normalisation (over the last axis) or, with groups, group normalisation (over groups
// of the channels of axis 1).
void Program::build_norm(int index, const NormStep &s) {
  const int src = plain(s.src, index);
  const_dnnl_memory_desc_t md = value(src).md.md;
  const unsigned flags = dnnl_use_scale | dnnl_use_shift;
  PrimitiveDesc pd;
  if (s.groups > 0)
    check(dnnl_group_normalization_forward_primitive_desc_create(
              pd.out(), runtime().engine, dnnl_forward_inference, md, md, s.groups, s.epsilon,
              flags, scratchpad_attr().get()),
          "group normalization");
  else
    check(dnnl_layer_normalization_forward_primitive_desc_create(
              pd.out(), runtime().engine, dnnl_forward_inference, md, md, nullptr, s.epsilon,
              flags, scratchpad_attr().get()),
          "layer normalization");
  define(s.dst, md);
  add_step(index, std::move(pd),
           {{DNNL_ARG_SRC, src}, {DNNL_ARG_SCALE, s.scale}, {DNNL_ARG_SHIFT, s.shift},
            {DNNL_ARG_DST, s.dst}});
}

void Program::build_resample(int index, const SourceToDestination &s) {
  // nearest neighbour: the output's size sets the factors
  Md dst_any(tagged_md(value(s.dst).dims, dnnl_format_tag_any));
  PrimitiveDesc pd;
  check(dnnl_resampling_forward_primitive_desc_create(
            pd.out(), runtime().engine, dnnl_forward_inference, dnnl_resampling_nearest, nullptr,
            value(s.src).md.md, dst_any.md, scratchpad_attr().get()),
        "resampling");
  define(s.dst, dnnl_primitive_desc_query_md(pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_DST));
  add_step(index, std::move(pd), {{DNNL_ARG_SRC, s.src}, {DNNL_ARG_DST, s.dst}});
}

void Program::build_softmax(int index, const SoftmaxStep &s) {
  const int src = plain(s.src, index);
  PrimitiveDesc pd;
  check(dnnl_softmax_forward_primitive_desc_create(
            pd.out(), runtime().engine, dnnl_forward_inference, dnnl_softmax_accurate,
            value(src).md.md, value(src).md.md, s.axis, scratchpad_attr().get()),
        "softmax");
  define(s.dst, value(src).md.md);
  add_step(index, std::move(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, s.dst}});
}

// A view, no copy: the same memory with its axes renamed. Where a later step needs plain
// row-major data it makes a copy (a transpose of channels-last data into channels-first order,
// or back, is then often no copy at all).
void Program::build_transpose(int index, const TransposeStep &s) {
  std::vector<int> inverse(s.perm.size());
  for (size_t i = 0; i < s.perm.size(); i++) inverse[s.perm[i]] = (int)i;
  dnnl_memory_desc_t view;
  check(dnnl_memory_desc_permute_axes(&view, value(s.src).md.md, inverse.data()), "permute");
  Md view_md(view);
  define(s.dst, view_md.md);
  value(s.dst).alias = s.src;
  value(s.src).last_use = std::max(value(s.src).last_use, index);
}

// A view of the same elements, no copy (decode_reshape: as many as its source has).
void Program::build_reshape(int index, const SourceToDestination &s) {
  const int src = plain(s.src, index);
  define(s.dst, Md(plain_md(value(s.dst).dims)).md);
  value(s.dst).alias = src;
  value(src).last_use = std::max(value(src).last_use, index);
}

void Program::build_slice(int index, const SliceStep &s) {
  const int src = plain(s.src, index);
  dnnl_dims_t dims{}, offsets{};
  fill(dims, value(s.dst).dims);
  for (size_t i = 0; i < s.offsets.size(); i++) offsets[i] = s.offsets[i];
  dnnl_memory_desc_t view;
  check(dnnl_memory_desc_create_submemory(&view, value(src).md.md, dims, offsets), "slice");
  Md view_md(view);
  define(s.dst, Md(plain_md(value(s.dst).dims)).md);
  reorder(src, s.dst, index, view_md.md);
}

}  // namespace
