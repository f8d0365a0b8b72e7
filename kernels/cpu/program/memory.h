// Memory descriptors of the programs: plain, tagged and preferred layouts, owned handles.
// Part of program.cpp's translation unit.
#pragma once
#include <vector>

#include "runtime.h"

namespace {

enum Layout { LAYOUT_ANY = 0, LAYOUT_NHWC = 1, LAYOUT_BLOCKED = 2 };  // spec.Layout

// ---------------------------------------------------------------------------------------------
// Memory descriptors

using Dims = std::vector<int64_t>;

int64_t dims_size(const Dims &dims) {
  int64_t size = 1;
  for (int64_t d : dims) size *= d;
  return size;
}

void fill(dnnl_dims_t out, const Dims &dims) {
  for (size_t i = 0; i < dims.size(); i++) out[i] = dims[i];
}

dnnl_memory_desc_t plain_md(const Dims &dims) {
  dnnl_dims_t d{}, strides{};
  fill(d, dims);
  int64_t stride = 1;
  for (int i = (int)dims.size() - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= dims[i];
  }
  dnnl_memory_desc_t md;
  check(dnnl_memory_desc_create_with_strides(&md, (int)dims.size(), d, dnnl_f32, strides),
        "plain memory descriptor");
  return md;
}

dnnl_memory_desc_t tagged_md(const Dims &dims, dnnl_format_tag_t tag) {
  dnnl_dims_t d{};
  fill(d, dims);
  dnnl_memory_desc_t md;
  check(dnnl_memory_desc_create_with_tag(&md, (int)dims.size(), d, dnnl_f32, tag),
        "memory descriptor");
  return md;
}

// The activation layout a convolution is asked for: 4-D only; others keep "any".
dnnl_memory_desc_t preferred_md(const Dims &dims, int layout) {
  if (dims.size() != 4 || layout == LAYOUT_ANY) return tagged_md(dims, dnnl_format_tag_any);
  return tagged_md(dims, layout == LAYOUT_NHWC ? dnnl_acdb : dnnl_aBcd16b);
}

dnnl_memory_desc_t clone(const_dnnl_memory_desc_t md) {
  dnnl_memory_desc_t copy;
  check(dnnl_memory_desc_clone(&copy, md), "clone memory descriptor");
  return copy;
}

struct Md {  // an owned memory descriptor
  dnnl_memory_desc_t md = nullptr;
  Md() = default;
  explicit Md(dnnl_memory_desc_t m) : md(m) {}
  Md(const Md &) = delete;
  Md &operator=(const Md &) = delete;
  Md(Md &&other) noexcept : md(other.md) { other.md = nullptr; }
  Md &operator=(Md &&other) noexcept {
    std::swap(md, other.md);
    return *this;
  }
  ~Md() {
    if (md) dnnl_memory_desc_destroy(md);
  }
};


}  // namespace
