// Owned oneDNN handles: each released by its destroy function when its owner goes, so that an
// error thrown half-way through building a step (check(), a refused operand) leaks nothing.
// Part of program.cpp's translation unit.
#pragma once
#include <utility>

#include "dnnl_abi.h"

namespace {

// A oneDNN handle of type T, destroyed by Destroy; move-only. `out()` is the address a create
// function writes to (the previous handle, if any, is released first).
template <class T, dnnl_status_t (*Destroy)(T)>
class Owned {
 public:
  Owned() = default;
  explicit Owned(T handle) : handle_(handle) {}
  Owned(const Owned &) = delete;
  Owned &operator=(const Owned &) = delete;
  Owned(Owned &&other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
  Owned &operator=(Owned &&other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  ~Owned() { reset(); }

  T get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  T *out() {
    reset();
    return &handle_;
  }
  void reset(T handle = nullptr) {
    if (handle_) Destroy(handle_);
    handle_ = handle;
  }

 private:
  T handle_ = nullptr;
};

using Attr = Owned<dnnl_primitive_attr_t, dnnl_primitive_attr_destroy>;
using PostOpList = Owned<dnnl_post_ops_t, dnnl_post_ops_destroy>;
using PrimitiveDesc = Owned<dnnl_primitive_desc_t, dnnl_primitive_desc_destroy>;
using Primitive = Owned<dnnl_primitive_t, dnnl_primitive_destroy>;
using Memory = Owned<dnnl_memory_t, dnnl_memory_destroy>;

}  // namespace
