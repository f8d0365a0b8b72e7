// Memory descriptors of the programs: plain, tagged and preferred layouts, owned handles.
// Part of program.cpp's translation unit.
#pragma once
#include <sys/mman.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "errors.h"
#include "handles.h"

namespace {

enum Layout { LAYOUT_ANY = 0, LAYOUT_NHWC = 1, LAYOUT_BLOCKED = 2 };  // spec.Layout

// ---------------------------------------------------------------------------------------------
// Buffers

// Memory of the program's own (the arena, packed weights, the scratchpad), 64-byte aligned;
// from 2 MiB on, aligned to 2 MiB and advised to be backed by transparent huge pages (where
// the system has them on madvise, as these machines do): a whole network's weights, streamed
// at every call, would otherwise cost a TLB miss per 4 KiB page. The contents are undefined.
class Buffer {
 public:
  static constexpr size_t kHuge = size_t(2) << 20;
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  ~Buffer() { std::free(data_); }

  void resize(size_t bytes) {
    if (bytes <= size_) return;
    std::free(data_);
    const size_t align = bytes >= kHuge ? kHuge : 64;
    size_ = (bytes + align - 1) / align * align;
    data_ = static_cast<char *>(std::aligned_alloc(align, size_));
    if (!data_) throw Error{"out of memory: " + std::to_string(size_) + " bytes"};
    if (align == kHuge) madvise(data_, size_, MADV_HUGEPAGE);  // advice: failure is harmless
  }
  char *data() const { return data_; }

 private:
  char *data_ = nullptr;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Memory descriptors

using Dims = std::vector<int64_t>;

int64_t dims_size(const Dims &dims) {
  int64_t size = 1;
  for (int64_t d : dims) size *= d;
  return size;
}

// The dimensions of a memory descriptor.
Dims md_dims(const_dnnl_memory_desc_t md) {
  int32_t ndims = 0;
  const dnnl_dims_t *dims = nullptr;
  check(dnnl_memory_desc_query(md, dnnl_query_ndims_s32, &ndims), "query ndims");
  check(dnnl_memory_desc_query(md, dnnl_query_dims, &dims), "query dims");
  if (ndims < 0 || ndims > DNNL_MAX_NDIMS) throw Error{"memory descriptor rank"};
  return Dims(*dims, *dims + ndims);
}

std::string dims_text(const Dims &dims) {
  std::string text = "(";
  for (size_t i = 0; i < dims.size(); i++) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + ")";
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
