// The values, layouts and primitives of a program under construction: temporaries and views,
// definitions (checked against the declared dimensions), layout conversions, packed weights
// and the primitives of its actions. Part of program.cpp's translation unit.
#pragma once
#include <memory>
#include <string>

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

// `id` computed by a step, in the layout `md`, whose dimensions must be those it was declared
// with (the buffers of the program's input, constants and output are sized by them).
void Program::define(int id, const_dnnl_memory_desc_t md) {
  Value &v = value(id);
  if (v.md.md) throw Error{"value " + std::to_string(id) + " defined twice"};
  if (md_dims(md) != v.dims)
    throw Error{"value " + std::to_string(id) + " computed as " + dims_text(md_dims(md)) +
                ", declared " + dims_text(v.dims)};
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

void Program::add(PrimitiveDesc pd, std::vector<std::pair<int, int>> args, int step,
                  const char *label) {
  Action action;
  action.label = label;
  action.info = implementation_of(pd.get());
  const_dnnl_memory_desc_t scratch = dnnl_primitive_desc_query_md(
      pd.get(), dnnl_query_exec_arg_md, DNNL_ARG_SCRATCHPAD);
  if (scratch) scratchpad_size_ = std::max(scratchpad_size_, dnnl_memory_desc_get_size(scratch));
  check(dnnl_primitive_create(action.primitive.out(), pd.get()),
        "create primitive " + action.info);
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
PrimitiveDesc later_offer(PrimitiveDesc pd, int64_t count, First first) {
  int64_t taken = 0;
  for (; taken < count; taken++)
    if (dnnl_primitive_desc_next_impl(pd.get()) != dnnl_success || is_reference(pd.get())) break;
  if (taken == count || !is_reference(pd.get())) return pd;
  pd = first();
  for (int64_t k = 0; k < taken; k++) dnnl_primitive_desc_next_impl(pd.get());
  return pd;
}

Attr scratchpad_attr() {
  Attr attr;
  check(dnnl_primitive_attr_create(attr.out()), "attributes");
  check(dnnl_primitive_attr_set_scratchpad_mode(attr.get(), dnnl_scratchpad_mode_user),
        "scratchpad");
  return attr;
}

void Program::reorder(int from, int to, int step, const_dnnl_memory_desc_t from_md) {
  PrimitiveDesc pd;
  const_dnnl_memory_desc_t source = from_md ? from_md : value(from).md.md;
  check(dnnl_reorder_primitive_desc_create(pd.out(), source, runtime().engine, value(to).md.md,
                                           runtime().engine, scratchpad_attr().get()),
        "reorder");
  if (from_md)  // a view (permuted or sliced) of `from`: a memory object of its own
    from = add_view(from, Md(clone(from_md)), value(to).dims, step);
  value(from).last_use = std::max(value(from).last_use, step);
  add(std::move(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, step, "reorder");
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
  PrimitiveDesc pd;
  check(dnnl_reorder_primitive_desc_create(pd.out(), value(id).md.md, runtime().engine, want,
                                           runtime().engine, nullptr),
        "weight reorder");
  check(dnnl_primitive_create(p.reorder.out(), pd.get()), "weight reorder primitive");
  p.storage.resize(dnnl_memory_desc_get_size(want));
  packed_.push_back(std::move(p));
  return packed_.back().packed;
}

}  // namespace
