// Building a program's steps: each kind of step as oneDNN primitives (and layout conversions
// where a primitive wants another layout), an external kernel call, or a view.
// Part of program.cpp's translation unit.
#pragma once
#include "program.h"

namespace {

int Program::add_temp(const Dims &dims, dnnl_memory_desc_t md, int step) {
  Value v;
  v.role = ROLE_TEMP;
  v.dims = dims;
  v.md = Md(md);
  v.last_use = step;
  values_.push_back(std::move(v));
  return (int)values_.size() - 1;
}

// A view of `of`'s buffer: a value of its own (`dims`, described by `md`) that aliases it.
int Program::add_view(int of, Md md, const Dims &dims, int step) {
  Value view;
  view.role = ROLE_TEMP;
  view.alias = of;
  view.md = std::move(md);
  view.dims = dims;
  view.last_use = step;
  values_.push_back(std::move(view));
  return (int)values_.size() - 1;
}

void Program::define(int id, const_dnnl_memory_desc_t md) {
  Value &v = value(id);
  if (v.md.md) throw Error{"value " + std::to_string(id) + " defined twice"};
  v.md = Md(clone(md));
}

// The name of the implementation oneDNN chose for a primitive ("jit:avx2", "ref:any", ...).
std::string implementation_of(const_dnnl_primitive_desc_t pd) {
  const char *impl = nullptr;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  return std::string(impl ? impl : "");
}

// oneDNN's primitive cache off while it lives. With it on, a problem whose primitive the cache
// holds (any program's, earlier in the process) starts oneDNN's list of implementations with the
// cached one, so that the `impl`-th implementation of a convolution or matrix product step
// would depend on what the process built before it (RegNetX's first grouped convolution: impl 2
// ran brgemm after a program of impl 0, jit:sse41 in a fresh process). Turning it off empties
// the cache.
class PrimitiveCacheOff {
 public:
  PrimitiveCacheOff() {
    dnnl_get_primitive_cache_capacity(&capacity_);
    dnnl_set_primitive_cache_capacity(0);
  }
  ~PrimitiveCacheOff() { dnnl_set_primitive_cache_capacity(capacity_); }
  PrimitiveCacheOff(const PrimitiveCacheOff &) = delete;
  PrimitiveCacheOff &operator=(const PrimitiveCacheOff &) = delete;

 private:
  int capacity_ = 0;
};

void Program::add(dnnl_primitive_desc_t pd, std::vector<std::pair<int, int>> args, int step,
                  const char *label) {
  Action action;
  action.label = label;
  action.info = implementation_of(pd);
  const_dnnl_memory_desc_t scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                  DNNL_ARG_SCRATCHPAD);
  if (scratch) scratchpad_size_ = std::max(scratchpad_size_, dnnl_memory_desc_get_size(scratch));
  check(dnnl_primitive_create(&action.primitive, pd), "create primitive " + action.info);
  dnnl_primitive_desc_destroy(pd);
  action.args = std::move(args);
  action.step = step;
  actions_.push_back(std::move(action));
}

bool is_reference(const_dnnl_primitive_desc_t pd) {
  return implementation_of(pd).rfind("ref", 0) == 0;
}

// `pd` advanced by `count` of oneDNN's offers (dnnl_primitive_desc_next_impl), or to its last
// offer before the reference implementation (ref:any, tens to hundreds of times slower: the
// second offer for depthwise convolutions and the third for matrix products on AVX2 CPUs) or
// the end of the list; `first` makes `pd`'s first offer again.
template <class First>
dnnl_primitive_desc_t later_offer(dnnl_primitive_desc_t pd, int64_t count, First first) {
  int64_t taken = 0;
  for (; taken < count; taken++)
    if (dnnl_primitive_desc_next_impl(pd) != dnnl_success || is_reference(pd)) break;
  if (taken == count || !is_reference(pd)) return pd;
  dnnl_primitive_desc_destroy(pd);
  pd = first();
  for (int64_t k = 0; k < taken; k++) dnnl_primitive_desc_next_impl(pd);
  return pd;
}

dnnl_primitive_attr_t scratchpad_attr() {
  dnnl_primitive_attr_t attr;
  check(dnnl_primitive_attr_create(&attr), "attributes");
  check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad");
  return attr;
}

void Program::reorder(int from, int to, int step, const_dnnl_memory_desc_t from_md) {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_attr_t attr = scratchpad_attr();
  const_dnnl_memory_desc_t source = from_md ? from_md : value(from).md.md;
  check(dnnl_reorder_primitive_desc_create(&pd, source, runtime().engine, value(to).md.md,
                                           runtime().engine, attr),
        "reorder");
  dnnl_primitive_attr_destroy(attr);
  if (from_md)  // a view (permuted or sliced) of `from`: a memory object of its own
    from = add_view(from, Md(clone(from_md)), value(to).dims, step);
  value(from).last_use = std::max(value(from).last_use, step);
  add(pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, step, "reorder");
}

// `id` itself if its layout is `want`, else a copy in that layout: made at `step` by the first
// step that asks, shared by the later ones (values are written once).
int Program::in_layout(int id, int step, Md want) {
  if (dnnl_memory_desc_equal(value(id).md.md, want.md)) return id;
  for (const auto &[source, copy] : copies_)
    if (source == id && dnnl_memory_desc_equal(value(copy).md.md, want.md)) return copy;
  int copy = add_temp(value(id).dims, clone(want.md), step);
  reorder(id, copy, step);
  copies_.push_back({id, copy});
  return copy;
}

// `id` itself if its layout is plain row-major, else a plain copy.
int Program::plain(int id, int step) { return in_layout(id, step, Md(plain_md(value(id).dims))); }

// `id` itself if it is a 4-D value in channels-last order (NHWC, dense), else such a copy.
int Program::channels_last(int id, int step) {
  return in_layout(id, step, Md(tagged_md(value(id).dims, dnnl_acdb)));
}

// `id` itself if its layout is plain up to the order of its axes (strides, no blocks: what a
// matrix product reads directly), else a plain copy made at `step`.
int Program::strided(int id, int step) {
  int blocks = -1;
  if (dnnl_memory_desc_query(value(id).md.md, dnnl_query_inner_nblks_s32, &blocks) ==
          dnnl_success &&
      blocks == 0)
    return id;
  return plain(id, step);
}

// A constant in the layout `want`: `id` itself when it has it (unless `copy_anyway`), else a
// copy in the program's own memory, (re)packed when the constants' buffer changes.
int Program::packed_weight(int id, const_dnnl_memory_desc_t want, bool copy_anyway) {
  if (!copy_anyway && dnnl_memory_desc_equal(value(id).md.md, want)) return id;
  PackedWeight p;
  p.source = id;
  Value v;
  v.role = ROLE_CONST;
  v.index = -1;
  v.dims = value(id).dims;
  v.md = Md(clone(want));
  values_.push_back(std::move(v));
  p.packed = (int)values_.size() - 1;
  dnnl_primitive_desc_t pd;
  check(dnnl_reorder_primitive_desc_create(&pd, value(id).md.md, runtime().engine, want,
                                           runtime().engine, nullptr),
        "weight reorder");
  check(dnnl_primitive_create(&p.reorder, pd), "weight reorder primitive");
  dnnl_primitive_desc_destroy(pd);
  p.storage.resize(dnnl_memory_desc_get_size(want));
  packed_.push_back(std::move(p));
  return packed_.back().packed;
}

// Post-ops: [n, (kind, a, b, c) x n]; ELTWISE: (alg, alpha bits, beta bits); BINARY: (alg, value).
dnnl_primitive_attr_t Program::attributes(const std::vector<int64_t> &f, size_t at,
                                          int dst_ndims, std::vector<std::pair<int, int>> &args) {
  dnnl_primitive_attr_t attr = scratchpad_attr();
  if (at >= f.size()) throw Error{"post-op list missing"};
  int64_t n = f[at];
  if (at + 1 + 4 * n > f.size()) throw Error{"post-op list truncated"};
  if (n == 0) return attr;
  dnnl_post_ops_t post;
  check(dnnl_post_ops_create(&post), "post-ops");
  for (int64_t i = 0; i < n; i++) {
    const int64_t *p = &f[at + 1 + 4 * i];
    if (p[0] == POST_ELTWISE) {
      check(dnnl_post_ops_append_eltwise(post, (int)p[1], (float)as_double(p[2]),
                                         (float)as_double(p[3])),
            "eltwise post-op");
    } else if (p[0] == POST_BINARY) {
      int src1 = (int)p[2];
      if ((int)value(src1).dims.size() != dst_ndims) throw Error{"binary post-op rank"};
      check(dnnl_post_ops_append_binary(post, (int)p[1], value(src1).md.md), "binary post-op");
      args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP((int)i) | DNNL_ARG_SRC_1, src1});
    } else {
      throw Error{"unknown post-op kind " + std::to_string(p[0])};
    }
  }
  check(dnnl_primitive_attr_set_post_ops(attr, post), "set post-ops");
  dnnl_post_ops_destroy(post);
  return attr;
}

void Program::build_step(int index, Step &step) {
  std::vector<int64_t> &f = step.f;
  auto need = [&](size_t count) {
    if (f.size() < count) throw Error{"step " + std::to_string(index) + " has too few fields"};
  };
  dnnl_engine_t engine = runtime().engine;
  dnnl_primitive_desc_t pd = nullptr;
  std::vector<std::pair<int, int>> args;
  std::unique_ptr<PrimitiveCacheOff> cache_off;  // until the step's primitive is made
  switch (step.kind) {
    case STEP_CONV: {  // src, weights, bias, dst, groups, sh, sw, pt, pl, pb, pr, dh, dw, impl, posts
      need(15);
      if (f[13] != 0) cache_off = std::make_unique<PrimitiveCacheOff>();
      int src = (int)f[0], weights = (int)f[1], bias = (int)f[2], dst = (int)f[3];
      int64_t groups = f[4];
      const Dims &w = value(weights).dims;  // (O, I/groups, KH, KW)
      dnnl_dims_t strides{f[5], f[6]}, pad_l{f[7], f[8]}, pad_r{f[9], f[10]},
          dilates{f[11] - 1, f[12] - 1};
      Dims wdims = w;
      if (groups > 1) {
        wdims = {groups, w[0] / groups, w[1], w[2], w[3]};
        Md grouped(plain_md(wdims));
        value(weights).md = std::move(grouped);
      }
      // The layout preference is for the result; the source is whatever the implementation
      // wants. A preference that leaves only oneDNN's reference implementation is dropped. A
      // source of fewer channels than one 16-channel block (a first layer's image) is read as
      // it is where a jit implementation can: converting it costs more than it saves
      // (ResNet50's 3-channel 224x224 input: a 0.85 ms reorder before a 1.3 ms convolution).
      Md w_any(tagged_md(wdims, dnnl_format_tag_any));
      auto create = [&](const_dnnl_memory_desc_t src_md, int layout) {
        Md dst_any(preferred_md(value(dst).dims, layout));
        std::vector<std::pair<int, int>> post_args;
        dnnl_primitive_attr_t attr = attributes(f, 14, 4, post_args);
        dnnl_primitive_desc_t made = nullptr;
        dnnl_status_t status = dnnl_convolution_forward_primitive_desc_create(
            &made, engine, dnnl_forward_inference, dnnl_convolution_direct, src_md, w_any.md,
            bias >= 0 ? value(bias).md.md : nullptr, dst_any.md, strides, dilates, pad_l, pad_r,
            attr);
        dnnl_primitive_attr_destroy(attr);
        args = post_args;
        return status == dnnl_success ? made : nullptr;
      };
      for (int layout : {layout_, (int)LAYOUT_ANY}) {
        if (pd || value(src).dims[1] >= 16 || f[13] != 0) break;
        pd = create(value(src).md.md, layout);
        if (pd && implementation_of(pd).rfind("jit", 0) != 0) {
          dnnl_primitive_desc_destroy(pd);
          pd = nullptr;
        }
      }
      int dst_layout = layout_;
      auto create_any = [&] {  // src in the layout oneDNN wants
        Md src_any(tagged_md(value(src).dims, dnnl_format_tag_any));
        return create(src_any.md, dst_layout);
      };
      if (!pd) {
        pd = create_any();
        if (pd && layout_ != LAYOUT_ANY && is_reference(pd)) {
          dnnl_primitive_desc_destroy(pd);
          dst_layout = LAYOUT_ANY;
          pd = create_any();
        }
        if (!pd) throw Error{"convolution: oneDNN has no implementation"};
        pd = later_offer(pd, f[13], create_any);
      }
      const_dnnl_memory_desc_t want_src =
          dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_SRC);
      src = in_layout(src, index, Md(clone(want_src)));
      define(dst, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_DST));
      int packed = packed_weight(
          weights, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_WEIGHTS));
      args.push_back({DNNL_ARG_SRC, src});
      args.push_back({DNNL_ARG_WEIGHTS, packed});
      if (bias >= 0) args.push_back({DNNL_ARG_BIAS, bias});
      args.push_back({DNNL_ARG_DST, dst});
      break;
    }
    case STEP_POOL: {  // src, dst, alg, kh, kw, sh, sw, pt, pl, pb, pr, posts
      need(12);
      int src = (int)f[0], dst = (int)f[1];
      dnnl_dims_t kernel{f[3], f[4]}, strides{f[5], f[6]}, pad_l{f[7], f[8]},
          pad_r{f[9], f[10]}, dilation{0, 0};
      Md dst_any(tagged_md(value(dst).dims, dnnl_format_tag_any));
      dnnl_primitive_attr_t attr = attributes(f, 11, 4, args);
      check(dnnl_pooling_forward_primitive_desc_create(&pd, engine, dnnl_forward_inference,
                                                       (int)f[2], value(src).md.md, dst_any.md,
                                                       strides, kernel, dilation, pad_l, pad_r,
                                                       attr),
            "pooling");
      dnnl_primitive_attr_destroy(attr);
      define(dst, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_DST));
      args.push_back({DNNL_ARG_SRC, src});
      args.push_back({DNNL_ARG_DST, dst});
      break;
    }
    case STEP_ELTWISE: {  // src, dst, alg, alpha, beta
      need(5);
      int src = (int)f[0], dst = (int)f[1];
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_eltwise_forward_primitive_desc_create(
                &pd, engine, dnnl_forward_inference, (int)f[2], value(src).md.md,
                value(src).md.md, (float)as_double(f[3]), (float)as_double(f[4]), attr),
            "eltwise");
      dnnl_primitive_attr_destroy(attr);
      define(dst, value(src).md.md);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_BINARY: {  // src0, src1, dst, alg, posts
      need(5);
      int src0 = (int)f[0], src1 = (int)f[1], dst = (int)f[2];
      if (value(src1).dims != value(src0).dims) src1 = plain(src1, index);  // broadcast operand
      if (value(src0).dims != value(dst).dims) throw Error{"binary: src0 must not broadcast"};
      auto create = [&](const_dnnl_memory_desc_t src0_md) {
        std::vector<std::pair<int, int>> post_args;
        dnnl_primitive_attr_t attr = attributes(f, 4, (int)value(dst).dims.size(), post_args);
        dnnl_primitive_desc_t made = nullptr;
        dnnl_status_t status = dnnl_binary_primitive_desc_create(
            &made, engine, (int)f[3], src0_md, value(src1).md.md, src0_md, attr);
        dnnl_primitive_attr_destroy(attr);
        check(status, "binary");
        args = post_args;
        return made;
      };
      pd = create(value(src0).md.md);
      // Some layouts get only oneDNN's reference implementation (on AVX2, channels in blocks of
      // 8 with post-ops: DenseNet121's first dense block, 291 of its 336 ms): src0 is then read
      // channels-last where that has a faster one.
      if (is_reference(pd) && value(src0).dims.size() == 4) {
        Md channels_last_md(tagged_md(value(src0).dims, dnnl_acdb));
        dnnl_primitive_desc_t other = create(channels_last_md.md);
        if (is_reference(other)) {  // the post-ops' arguments are the same either way
          dnnl_primitive_desc_destroy(other);
        } else {
          dnnl_primitive_desc_destroy(pd);
          pd = other;
          src0 = channels_last(src0, index);
        }
      }
      define(dst, value(src0).md.md);
      args.push_back({DNNL_ARG_SRC, src0});
      args.push_back({DNNL_ARG_SRC_1, src1});
      args.push_back({DNNL_ARG_DST, dst});
      break;
    }
    case STEP_CONCAT: {  // dst, axis, n, srcs
      need(3);
      int dst = (int)f[0], axis = (int)f[1], n = (int)f[2];
      need(3 + n);
      std::vector<const_dnnl_memory_desc_t> mds;
      for (int i = 0; i < n; i++) mds.push_back(value(f[3 + i]).md.md);
      Md dst_any(tagged_md(value(dst).dims, dnnl_format_tag_any));
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_concat_primitive_desc_create(&pd, engine, dst_any.md, n, axis, mds.data(), attr),
            "concat");
      dnnl_primitive_attr_destroy(attr);
      define(dst, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_DST));
      for (int i = 0; i < n; i++) args.push_back({DNNL_ARG_MULTIPLE_SRC + i, (int)f[3 + i]});
      args.push_back({DNNL_ARG_DST, dst});
      break;
    }
    case STEP_MATMUL: {  // src, weights, bias, dst, transpose_src, transpose_weights, impl,
                         // posts
      need(8);
      if (f[6] != 0) cache_off = std::make_unique<PrimitiveCacheOff>();
      int src = strided((int)f[0], index), weights = (int)f[1], bias = (int)f[2],
          dst = (int)f[3];
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
      Md src_md = transposed(src, f[4] != 0);
      Md w_md = constant_weights && f[5] == 0
                    ? Md(tagged_md(value(weights).dims, dnnl_format_tag_any))
                    : transposed(weights, f[5] != 0);
      Md dst_md(plain_md(value(dst).dims));
      auto create = [&](std::vector<std::pair<int, int>> &post_args) {
        dnnl_primitive_desc_t made = nullptr;
        dnnl_primitive_attr_t attr = attributes(f, 7, (int)value(dst).dims.size(), post_args);
        dnnl_status_t status = dnnl_matmul_primitive_desc_create(
            &made, engine, src_md.md, w_md.md, bias >= 0 ? value(bias).md.md : nullptr,
            dst_md.md, attr);
        dnnl_primitive_attr_destroy(attr);
        check(status, "matmul");
        return made;
      };
      pd = create(args);
      if (f[6] > 1) {
        std::vector<std::pair<int, int>> again;  // the same post-op arguments
        pd = later_offer(pd, f[6] - 1, [&] { return create(again); });
      }
      if (f[6] == 0 && implementation_of(pd).rfind("brg", 0) != 0) {  // fell back to its gemm
        std::vector<std::pair<int, int>> conv_args;
        if (dnnl_primitive_desc_t conv = matmul_as_conv(index, f, src, conv_args)) {
          dnnl_primitive_desc_destroy(pd);
          pd = conv;
          args = std::move(conv_args);
          break;
        }
      }
      define(dst, dst_md.md);
      int w_arg = weights;
      if (constant_weights && f[5] == 0) {
        w_arg = packed_weight(weights, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                    DNNL_ARG_WEIGHTS));
      } else {  // the (transposed) view of the weights operand
        w_arg = add_view(weights, std::move(w_md), value(weights).dims, index);
      }
      if (f[4] != 0) src = add_view(src, std::move(src_md), value(src).dims, index);
      args.push_back({DNNL_ARG_SRC, src});
      args.push_back({DNNL_ARG_WEIGHTS, w_arg});
      if (bias >= 0) args.push_back({DNNL_ARG_BIAS, bias});
      args.push_back({DNNL_ARG_DST, dst});
      break;
    }
    case STEP_REDUCE: {  // src, dst, alg
      need(3);
      int src = (int)f[0], dst = (int)f[1];
      Md dst_any(tagged_md(value(dst).dims, dnnl_format_tag_any));
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_reduction_primitive_desc_create(&pd, engine, (int)f[2], value(src).md.md,
                                                 dst_any.md, 0.f, 0.f, attr),
            "reduction");
      dnnl_primitive_attr_destroy(attr);
      define(dst, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_DST));
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_LAYERNORM: {  // src, scale, shift, dst, eps
      need(5);
      int src = plain((int)f[0], index), scale = (int)f[1], shift = (int)f[2], dst = (int)f[3];
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_layer_normalization_forward_primitive_desc_create(
                &pd, engine, dnnl_forward_inference, value(src).md.md, value(src).md.md,
                nullptr, (float)as_double(f[4]), dnnl_use_scale | dnnl_use_shift, attr),
            "layer normalization");
      dnnl_primitive_attr_destroy(attr);
      define(dst, value(src).md.md);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift},
              {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_GROUPNORM: {  // src, scale, shift, dst, groups, eps: over channel groups, axis 1
      need(6);
      int src = plain((int)f[0], index), scale = (int)f[1], shift = (int)f[2], dst = (int)f[3];
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_group_normalization_forward_primitive_desc_create(
                &pd, engine, dnnl_forward_inference, value(src).md.md, value(src).md.md, f[4],
                (float)as_double(f[5]), dnnl_use_scale | dnnl_use_shift, attr),
            "group normalization");
      dnnl_primitive_attr_destroy(attr);
      define(dst, value(src).md.md);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift},
              {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_RESAMPLE: {  // src, dst: nearest neighbour (the output's size sets the factors)
      need(2);
      int src = (int)f[0], dst = (int)f[1];
      Md dst_any(tagged_md(value(dst).dims, dnnl_format_tag_any));
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_resampling_forward_primitive_desc_create(&pd, engine, dnnl_forward_inference,
                                                          dnnl_resampling_nearest, nullptr,
                                                          value(src).md.md, dst_any.md, attr),
            "resampling");
      dnnl_primitive_attr_destroy(attr);
      define(dst, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_DST));
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_SOFTMAX: {  // src, dst, axis
      need(3);
      int src = plain((int)f[0], index), dst = (int)f[1];
      dnnl_primitive_attr_t attr = scratchpad_attr();
      check(dnnl_softmax_forward_primitive_desc_create(&pd, engine, dnnl_forward_inference,
                                                       dnnl_softmax_accurate, value(src).md.md,
                                                       value(src).md.md, (int)f[2], attr),
            "softmax");
      dnnl_primitive_attr_destroy(attr);
      define(dst, value(src).md.md);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
      break;
    }
    case STEP_TRANSPOSE: {  // src, dst, perm (dst dim i = src dim perm[i])
      // A view, no copy: the same memory with its axes renamed. Where a later step needs
      // plain row-major data it makes a copy (a transpose of channels-last data into
      // channels-first order, or back, is then often no copy at all).
      int src = (int)f[0], dst = (int)f[1];
      size_t n = value(src).dims.size();
      need(2 + n);
      std::vector<int> inverse(n);
      for (size_t i = 0; i < n; i++) inverse[f[2 + i]] = (int)i;
      dnnl_memory_desc_t view;
      check(dnnl_memory_desc_permute_axes(&view, value(src).md.md, inverse.data()), "permute");
      Md view_md(view);
      define(dst, view_md.md);
      value(dst).alias = src;
      value(src).last_use = std::max(value(src).last_use, index);
      return;
    }
    case STEP_RESHAPE: {  // src, dst
      need(2);
      int src = plain((int)f[0], index), dst = (int)f[1];
      define(dst, Md(plain_md(value(dst).dims)).md);
      value(dst).alias = src;
      value(src).last_use = std::max(value(src).last_use, index);
      return;
    }
    case STEP_SLICE: {  // src, dst, offsets
      int src = plain((int)f[0], index), dst = (int)f[1];
      size_t n = value(src).dims.size();
      need(2 + n);
      dnnl_dims_t dims{}, offsets{};
      fill(dims, value(dst).dims);
      for (size_t i = 0; i < n; i++) offsets[i] = f[2 + i];
      dnnl_memory_desc_t view;
      check(dnnl_memory_desc_create_submemory(&view, value(src).md.md, dims, offsets), "slice");
      Md view_md(view);
      define(dst, Md(plain_md(value(dst).dims)).md);
      reorder(src, dst, index, view_md.md);
      return;
    }
    case STEP_EXTERNAL: {  // src, weights, bias, dst, residual, kernel, KH KW SH SW PT PB PL PR ACT
      need(15);
      if (f[5] < 0 || f[5] >= (int64_t)kernels_.size()) throw Error{"external kernel index"};
      auto call = std::make_shared<ExternalCall>();
      call->kernel = kernels_[f[5]];
      int src = plain((int)f[0], index), dst = (int)f[3];
      define(dst, Md(plain_md(value(dst).dims)).md);
      call->values = {src, (int)f[1], (int)f[2]};
      if (f[4] >= 0) call->values.push_back(plain((int)f[4], index));
      call->values.push_back(dst);
      for (int k = 6; k < 15; k++) call->geometry.push_back((int32_t)f[k]);
      for (int id : call->values) value(id).last_use = std::max(value(id).last_use, index);
      Action action;
      action.step = index;
      action.label = "step";
      action.info = "external";
      action.external = call;
      for (int id : call->values) action.args.push_back({0, id});
      actions_.push_back(std::move(action));
      return;
    }
    case STEP_WINOGRAD: {  // src, weights, bias, dst, residual, m, rows, vecs, tile_block,
                           // oc_block, tasks_per_thread, pad_top, pad_left, activation, raw
      need(15);
      const int src = native_src(f, index, "winograd");
      const Dims &in = value(src).dims, &out = value(f[3]).dims;
      WinogradShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3], (int)out[1],
                          (int)out[2], (int)out[3], (int)f[11], (int)f[12], (int)f[5],
                          (int)f[6], (int)f[7], (int)f[8], (int)f[9], (int)f[10], (int)f[13],
                          (int)f[14]};
      add_native_conv(index, f, src, std::make_shared<WinogradConv>(shape),
                      "winograd_nhwc:F(" + std::to_string(shape.m) + "x" +
                          std::to_string(shape.m) + ",3x3)" +
                          (shape.raw_weights ? ":raw_weights" : ""));
      return;
    }
    case STEP_POINTWISE_DEPTHWISE: {  // src, weights, dst, stride, pad_top, pad_left, act1,
                                      // act2, rows, vecs, tasks_per_thread, channels,
                                      // projection channels (0: none), residual, act3,
                                      // window, expand (0: no 1x1 expansion)
      need(17);
      const bool expand = f[16] != 0;
      // without the expansion the step copies src's rows itself: a blocked src as it is
      int src = (int)f[0], src_block = 0;
      if (!expand && value(src).dims.size() == 4)
        for (auto [block, tag] : {std::pair{16, dnnl_aBcd16b}, std::pair{8, dnnl_aBcd8b}})
          if (value(src).dims[1] % block == 0 &&
              dnnl_memory_desc_equal(value(src).md.md, Md(tagged_md(value(src).dims, tag)).md))
            src_block = block;
      if (!src_block) src = channels_last(src, index);
      int dst = (int)f[2];
      const Dims &in = value(src).dims, &out = value(dst).dims;
      if (in.size() != 4 || out.size() != 4)
        throw Error{"pointwise_depthwise: 4-D values expected"};
      if (out[1] != (f[12] ? f[12] : f[11]))
        throw Error{"pointwise_depthwise: output channels differ from the step's"};
      PointwiseDepthwiseShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3],
                                    (int)f[11], (int)out[2], (int)out[3], (int)f[3],
                                    (int)f[4], (int)f[5], (int)f[6], (int)f[7], (int)f[8],
                                    (int)f[9], (int)f[10], (int)f[12], (int)f[14],
                                    (int)f[15], expand ? 1 : 0, src_block};
      if (f[13] >= 0 && !f[12]) throw Error{"pointwise_depthwise: a residual needs a projection"};
      auto call = std::make_shared<NativeCall>();
      call->conv = std::make_shared<PointwiseDepthwise>(shape);
      int residual = f[13] >= 0 ? channels_last((int)f[13], index) : -1;
      call->values = {src, (int)f[1], -1, residual, dst};
      add_native(index, call, std::string(f[12] ? "pointwise_depthwise_nhwc:projected"
                                                : "pointwise_depthwise_nhwc") +
                                  (expand ? "" : ":no_expansion") +
                                  (src_block ? ":nChw" + std::to_string(src_block) + "c_input"
                                             : ""));
      return;
    }
    case STEP_GEMM_CONV: {  // src, weights, bias, dst, residual, kh, kw, stride, pad_top,
                            // pad_left, rows, vecs, tasks_per_thread, activation, depth_block
      need(15);
      const int src = native_src(f, index, "gemm_conv");
      const Dims &in = value(src).dims, &out = value(f[3]).dims;
      if (in[0] != out[0]) throw Error{"gemm_conv: input and output batches differ"};
      GemmConvShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3], (int)out[1],
                          (int)out[2], (int)out[3], (int)f[5], (int)f[6], (int)f[7], (int)f[8],
                          (int)f[9], (int)f[10], (int)f[11], (int)f[12], (int)f[13],
                          (int)f[14]};
      add_native_conv(index, f, src, std::make_shared<GemmConv>(shape),
                      "gemm_conv_nhwc:" + std::to_string(shape.rows) + "x" +
                          std::to_string(shape.vecs));
      return;
    }
    default:
      throw Error{"unknown step kind " + std::to_string(step.kind)};
  }
  for (auto &[arg, id] : args) value(id).last_use = std::max(value(id).last_use, index);
  add(pd, std::move(args), index);
}

// The src of a native convolution step whose fields start (src, weights, bias, dst,
// residual): channels-last (a conversion added before the step where it is not), src and dst
// 4-D.
int Program::native_src(const std::vector<int64_t> &f, int index, const char *kind) {
  const int src = channels_last((int)f[0], index);
  if (value(src).dims.size() != 4 || value(f[3]).dims.size() != 4)
    throw Error{std::string(kind) + ": 4-D values expected"};
  return src;
}

// Such a step run by `conv`: its residual channels-last too, then add_native.
void Program::add_native_conv(int index, const std::vector<int64_t> &f, int src,
                              std::shared_ptr<NativeConv> conv, std::string info) {
  auto call = std::make_shared<NativeCall>();
  call->conv = std::move(conv);
  const int residual = f[4] >= 0 ? channels_last((int)f[4], index) : -1;
  call->values = {src, (int)f[1], (int)f[2], residual, (int)f[3]};
  add_native(index, call, std::move(info));
}

// A step that a NativeCall runs: its weights (a constant of the size the kernel expects) in the
// program's own (huge-page) memory, as oneDNN's packed weights are; its result channels-last.
void Program::add_native(int index, std::shared_ptr<NativeCall> call, std::string info) {
  std::vector<int> &ids = call->values;
  const Value &weights = value(ids[1]);
  if (weights.role != ROLE_CONST || (ids[2] >= 0 && value(ids[2]).role != ROLE_CONST))
    throw Error{info + ": weights and bias must be constants"};
  if (dims_size(weights.dims) != call->conv->weight_floats())
    throw Error{info + ": packed weights of " + std::to_string(dims_size(weights.dims)) +
                " floats, expected " + std::to_string(call->conv->weight_floats())};
  define(ids[4], Md(tagged_md(value(ids[4]).dims, dnnl_acdb)).md);
  ids[1] = packed_weight(ids[1], weights.md.md, true);
  Action action;
  action.step = index;
  action.label = "step";
  action.info = std::move(info);
  action.native = call;
  for (int id : ids)
    if (id >= 0) {
      value(id).last_use = std::max(value(id).last_use, index);
      action.args.push_back({0, id});
    }
  actions_.push_back(std::move(action));
}

// Calls an external kernel with MindSpore's AOT arguments (inputs, then the output).
void run_external(const ExternalCall &call, std::vector<void *> &pointers,
                  const std::vector<Value> &values) {
  const int n = (int)call.values.size() + 1;  // + the geometry, after the bias
  std::vector<void *> params;
  std::vector<int> ndims;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<const char *> dtypes;
  for (size_t i = 0; i < call.values.size(); i++) {
    if (i == 3) {  // the geometry comes fourth
      params.push_back(const_cast<int32_t *>(call.geometry.data()));
      ndims.push_back(1);
      shapes.push_back({(int64_t)call.geometry.size()});
      dtypes.push_back("int32");
    }
    params.push_back(pointers[i]);
    const Dims &d = values[call.values[i]].dims;
    ndims.push_back((int)d.size());
    shapes.push_back(d);
    dtypes.push_back("float32");
  }
  std::vector<int64_t *> shape_pointers;
  for (auto &shape : shapes) shape_pointers.push_back(shape.data());
  int status = call.kernel(n, params.data(), ndims.data(), shape_pointers.data(), dtypes.data(),
                           nullptr, nullptr);
  if (status != 0) throw Error{"external kernel returned " + std::to_string(status)};
}


}  // namespace
