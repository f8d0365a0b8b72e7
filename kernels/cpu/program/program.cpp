// The program runtime: one MindSpore AOT custom operator that runs a whole sub-network (a
// "program": convolutions, pooling, matrix products, normalisations, element-wise ops and their
// glue) as a sequence of oneDNN primitives, with intermediates in the layouts the primitives
// prefer (blocked by 16 channels for AVX-512) and in one arena reused by liveness, so that
// MindSpore's per-operator cost is paid once per program and no layout is converted between
// two steps that agree on it.
//
// Calling convention (ops.Custom(func_type="aot"), entry RunProgram): params[0] is the program's
// spec, an int64 tensor written by tuner/kernels/cpu/program/spec.py (its docstring is the
// format's definition); params[1] the program's input, params[2] all its constants in one
// float32 array (each at its offset), params[3] the output. Float attributes travel as the
// bits of a double in an int64.
// The first call with a spec builds the primitives (and packs the constant weights into the
// layouts they chose); later calls only rebind the input/output pointers and execute.
#include <dlfcn.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dnnl_abi.h"

#define AOT_ENTRY extern "C" __attribute__((visibility("default")))

namespace {

constexpr int64_t kMagic = 0x5450524f47;  // "TPROG"
constexpr int64_t kVersion = 2;
constexpr int kConstants = 2;  // params index of the constants array

enum Role { ROLE_INPUT = 0, ROLE_CONST = 1, ROLE_TEMP = 2, ROLE_OUTPUT = 3 };
enum StepKind {
  STEP_CONV = 1, STEP_POOL, STEP_ELTWISE, STEP_BINARY, STEP_CONCAT, STEP_MATMUL, STEP_REDUCE,
  STEP_LAYERNORM, STEP_SOFTMAX, STEP_TRANSPOSE, STEP_RESHAPE, STEP_SLICE, STEP_EXTERNAL
};
enum PostKind { POST_ELTWISE = 1, POST_BINARY = 3 };
enum Layout { LAYOUT_ANY = 0, LAYOUT_NHWC = 1, LAYOUT_BLOCKED = 2 };

struct Error {
  std::string message;
};

void check(dnnl_status_t status, const std::string &what) {
  if (status != dnnl_success) throw Error{what + ": " + dnnl_status2str(status)};
}

double as_double(int64_t bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// The enumerations of dnnl_abi.h, named by the library itself: a mismatch means another ABI.
void check_abi() {
  const dnnl_version_t *version = dnnl_version();
  if (version->major != 3)
    throw Error{"oneDNN " + std::to_string(version->major) + "." +
                std::to_string(version->minor) + " found, the runtime needs major version 3"};
  if (version->cpu_runtime != DNNL_RUNTIME_THREADPOOL)
    throw Error{"oneDNN's CPU runtime is not the threadpool runtime"};
  const std::pair<const char *, const char *> names[] = {
      {dnnl_dt2str(dnnl_f32), "f32"},
      {dnnl_fmt_tag2str(dnnl_a), "a"},
      {dnnl_fmt_tag2str(dnnl_abcd), "abcd"},
      {dnnl_fmt_tag2str(dnnl_acdb), "acdb"},
      {dnnl_fmt_tag2str(dnnl_aBcd16b), "aBcd16b"},
      {dnnl_fmt_tag2str(dnnl_format_tag_any), "any"},
      {dnnl_prop_kind2str(dnnl_forward_inference), "forward_inference"},
      {dnnl_engine_kind2str(dnnl_cpu), "cpu"},
      {dnnl_scratchpad_mode2str(dnnl_scratchpad_mode_user), "user"},
      {dnnl_alg_kind2str(dnnl_convolution_direct), "convolution_direct"},
      {dnnl_alg_kind2str(dnnl_eltwise_relu), "eltwise_relu"},
      {dnnl_alg_kind2str(dnnl_eltwise_clip_v2), "eltwise_clip_v2"},
      {dnnl_alg_kind2str(dnnl_eltwise_logistic), "eltwise_logistic"},
      {dnnl_alg_kind2str(dnnl_eltwise_swish), "eltwise_swish"},
      {dnnl_alg_kind2str(dnnl_eltwise_gelu_erf), "eltwise_gelu_erf"},
      {dnnl_alg_kind2str(dnnl_eltwise_gelu_tanh), "eltwise_gelu_tanh"},
      {dnnl_alg_kind2str(dnnl_eltwise_hardswish), "eltwise_hardswish"},
      {dnnl_alg_kind2str(dnnl_eltwise_hardsigmoid), "eltwise_hardsigmoid"},
      {dnnl_alg_kind2str(dnnl_eltwise_tanh), "eltwise_tanh"},
      {dnnl_alg_kind2str(dnnl_eltwise_linear), "eltwise_linear"},
      {dnnl_alg_kind2str(dnnl_pooling_max), "pooling_max"},
      {dnnl_alg_kind2str(dnnl_pooling_avg_include_padding), "pooling_avg_include_padding"},
      {dnnl_alg_kind2str(dnnl_pooling_avg_exclude_padding), "pooling_avg_exclude_padding"},
      {dnnl_alg_kind2str(dnnl_binary_add), "binary_add"},
      {dnnl_alg_kind2str(dnnl_binary_mul), "binary_mul"},
      {dnnl_alg_kind2str(dnnl_binary_sub), "binary_sub"},
      {dnnl_alg_kind2str(dnnl_binary_div), "binary_div"},
      {dnnl_alg_kind2str(dnnl_binary_max), "binary_max"},
      {dnnl_alg_kind2str(dnnl_binary_min), "binary_min"},
      {dnnl_alg_kind2str(dnnl_reduction_mean), "reduction_mean"},
      {dnnl_alg_kind2str(dnnl_reduction_max), "reduction_max"},
      {dnnl_alg_kind2str(dnnl_reduction_sum), "reduction_sum"},
      {dnnl_alg_kind2str(dnnl_softmax_accurate), "softmax_accurate"},
  };
  for (const auto &[actual, expected] : names)
    if (actual == nullptr || std::strcmp(actual, expected) != 0)
      throw Error{std::string("oneDNN ABI mismatch: expected ") + expected + ", library says " +
                  (actual ? actual : "(null)")};
}

// oneDNN's parallel loops on OpenMP threads (the library is built for a threadpool).
struct OmpPool final : dnnl::threadpool_interop::threadpool_iface {
  int get_num_threads() const override { return omp_get_max_threads(); }
  bool get_in_parallel() const override { return omp_in_parallel(); }
  uint64_t get_flags() const override { return 0; }
  void parallel_for(int n, const std::function<void(int, int)> &fn) override {
    if (n == 1) {
      fn(0, 1);
      return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) fn(i, n);
  }
};

struct Runtime {
  dnnl_engine_t engine = nullptr;
  dnnl_stream_t stream = nullptr;
  OmpPool pool;
  Runtime() {
    check_abi();
    check(dnnl_threadpool_interop_set_max_concurrency(omp_get_max_threads()), "concurrency");
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine");
    check(dnnl_threadpool_interop_stream_create(&stream, engine, &pool), "stream");
  }
};

Runtime &runtime() {
  static Runtime instance;  // thrown errors propagate to the first caller and retry next time
  return instance;
}

// ---------------------------------------------------------------------------------------------
// Memory descriptors

using Dims = std::vector<int64_t>;

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

// ---------------------------------------------------------------------------------------------
// The program

struct Value {
  int role = ROLE_TEMP;
  int64_t index = -1;  // params index of the input and the output; a constant's offset
                       // (floats) in the constants array, params[kConstants]
  Dims dims;
  Md md;            // set when the value is defined (inputs, constants: plain)
  int alias = -1;   // shares the buffer of this value (reshape)
  int last_use = -1;
  int64_t offset = -1;  // in the arena (temporaries)
  dnnl_memory_t memory = nullptr;
};

// An AOT kernel of kernels/cpu (MindSpore's calling convention) run as a step.
using AotKernel = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

struct ExternalCall {
  AotKernel kernel = nullptr;
  std::vector<int> values;            // x, weight, bias, [residual], out (plain NCHW)
  std::vector<int32_t> geometry;      // KH KW SH SW PT PB PL PR ACT (conv_common.h)
};

struct Action {  // one primitive execution, or one call of an external kernel
  dnnl_primitive_t primitive = nullptr;
  std::vector<std::pair<int, int>> args;  // (DNNL_ARG_*, value id)
  int step = -1;
  std::string label;  // what it does for its step: the step's own work, or a "reorder"
  std::string info;   // the implementation
  std::shared_ptr<ExternalCall> external;
  double total_us = 0;  // time spent in it since the last reset (for profiles)
  int64_t calls = 0;
};

struct PackedWeight {  // a constant reordered into the layout its primitive chose
  int source = -1;     // constant value id
  int packed = -1;     // value id of the packed copy (role CONST, own buffer)
  dnnl_primitive_t reorder = nullptr;
  const void *packed_from = nullptr;
  std::vector<char> storage;
};

class Program {
 public:
  Program(const int64_t *spec, int64_t length) : spec_(spec, spec + length) {}

  void build();
  void execute(void **params);
  void *pointer(void **params, const Value &v) const;
  std::string timings() const;
  void reset_timings();

 private:
  // spec reading
  std::vector<int64_t> spec_;
  size_t cursor_ = 0;
  int64_t next() {
    if (cursor_ >= spec_.size()) throw Error{"spec ends early"};
    return spec_[cursor_++];
  }

  struct Step {
    int kind;
    std::vector<int64_t> f;
  };

  int layout_ = LAYOUT_ANY;
  int64_t uid_ = 0;
  std::vector<AotKernel> kernels_;  // external kernels, by index
  std::vector<Value> values_;
  std::vector<Step> steps_;
  std::vector<Action> actions_;
  std::vector<PackedWeight> packed_;
  std::vector<char> arena_storage_;
  char *arena_ = nullptr;
  std::vector<char> scratchpad_storage_;
  dnnl_memory_t scratchpad_ = nullptr;
  size_t scratchpad_size_ = 0;
  int output_value_ = -1;
  double total_us_ = 0;  // whole calls since the last reset
  int64_t calls_ = 0;

  Value &value(int64_t id) {
    if (id < 0 || id >= (int64_t)values_.size()) throw Error{"value id out of range"};
    return values_[id];
  }
  int add_temp(const Dims &dims, dnnl_memory_desc_t md, int step);
  int plain(int id, int step);
  int strided(int id, int step);
  void define(int id, const_dnnl_memory_desc_t md);
  int packed_weight(int id, const_dnnl_memory_desc_t want);
  dnnl_primitive_attr_t attributes(const std::vector<int64_t> &f, size_t at, int dst_ndims,
                                   std::vector<std::pair<int, int>> &args);
  void add(dnnl_primitive_desc_t pd, std::vector<std::pair<int, int>> args, int step,
           const char *label = "step");
  void reorder(int from, int to, int step, const_dnnl_memory_desc_t from_md = nullptr);
  void build_step(int index, Step &step);
  void plan_memory();
};

int Program::add_temp(const Dims &dims, dnnl_memory_desc_t md, int step) {
  Value v;
  v.role = ROLE_TEMP;
  v.dims = dims;
  v.md = Md(md);
  v.last_use = step;
  values_.push_back(std::move(v));
  return (int)values_.size() - 1;
}

void Program::define(int id, const_dnnl_memory_desc_t md) {
  Value &v = value(id);
  if (v.md.md) throw Error{"value " + std::to_string(id) + " defined twice"};
  v.md = Md(clone(md));
}

void Program::add(dnnl_primitive_desc_t pd, std::vector<std::pair<int, int>> args, int step,
                  const char *label) {
  Action action;
  action.label = label;
  const char *info = nullptr;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info);
  action.info = info ? info : "";
  const_dnnl_memory_desc_t scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                  DNNL_ARG_SCRATCHPAD);
  if (scratch) scratchpad_size_ = std::max(scratchpad_size_, dnnl_memory_desc_get_size(scratch));
  check(dnnl_primitive_create(&action.primitive, pd), "create primitive " + action.info);
  dnnl_primitive_desc_destroy(pd);
  action.args = std::move(args);
  action.step = step;
  actions_.push_back(std::move(action));
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
  if (from_md) {  // a view (permuted or sliced) of `from`: a memory object of its own
    Value view;
    view.role = ROLE_TEMP;
    view.alias = from;
    view.md = Md(clone(from_md));
    view.dims = value(to).dims;
    view.last_use = step;
    values_.push_back(std::move(view));
    from = (int)values_.size() - 1;
  }
  value(from).last_use = std::max(value(from).last_use, step);
  add(pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, step, "reorder");
}

// `id` itself if its layout is plain row-major, else a plain copy made at `step`.
int Program::plain(int id, int step) {
  Md want(plain_md(value(id).dims));
  if (dnnl_memory_desc_equal(value(id).md.md, want.md)) return id;
  int copy = add_temp(value(id).dims, clone(want.md), step);
  reorder(id, copy, step);
  return copy;
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

int Program::packed_weight(int id, const_dnnl_memory_desc_t want) {
  if (dnnl_memory_desc_equal(value(id).md.md, want)) return id;
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
  p.storage.resize(dnnl_memory_desc_get_size(want) + 64);
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
  switch (step.kind) {
    case STEP_CONV: {  // src, weights, bias, dst, groups, sh, sw, pt, pl, pb, pr, dh, dw, impl, posts
      need(15);
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
      // wants (a first layer with 3 channels reads plain NCHW). A preference that leaves only
      // oneDNN's reference implementation is dropped.
      Md w_any(tagged_md(wdims, dnnl_format_tag_any));
      Md src_any(tagged_md(value(src).dims, dnnl_format_tag_any));
      for (int attempt = 0; attempt < 2; attempt++) {
        Md dst_any(preferred_md(value(dst).dims, attempt == 0 ? layout_ : LAYOUT_ANY));
        std::vector<std::pair<int, int>> post_args;
        dnnl_primitive_attr_t attr = attributes(f, 14, 4, post_args);
        check(dnnl_convolution_forward_primitive_desc_create(
                  &pd, engine, dnnl_forward_inference, dnnl_convolution_direct, src_any.md,
                  w_any.md, bias >= 0 ? value(bias).md.md : nullptr, dst_any.md, strides,
                  dilates, pad_l, pad_r, attr),
              "convolution");
        dnnl_primitive_attr_destroy(attr);
        const char *impl = nullptr;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        args = post_args;
        if (attempt == 1 || layout_ == LAYOUT_ANY || !impl || std::strncmp(impl, "ref", 3) != 0)
          break;
        dnnl_primitive_desc_destroy(pd);
      }
      for (int64_t k = 0; k < f[13]; k++)
        if (dnnl_primitive_desc_next_impl(pd) != dnnl_success) break;
      const_dnnl_memory_desc_t want_src =
          dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_SRC);
      if (!dnnl_memory_desc_equal(want_src, value(src).md.md)) {
        int copy = add_temp(value(src).dims, clone(want_src), index);
        reorder(src, copy, index);
        src = copy;
      }
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
      dnnl_primitive_attr_t attr = attributes(f, 4, (int)value(dst).dims.size(), args);
      check(dnnl_binary_primitive_desc_create(&pd, engine, (int)f[3], value(src0).md.md,
                                              value(src1).md.md, value(src0).md.md, attr),
            "binary");
      dnnl_primitive_attr_destroy(attr);
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
    case STEP_MATMUL: {  // src, weights, bias, dst, transpose_src, transpose_weights, posts
      need(7);
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
      dnnl_primitive_attr_t attr = attributes(f, 6, (int)value(dst).dims.size(), args);
      check(dnnl_matmul_primitive_desc_create(&pd, engine, src_md.md, w_md.md,
                                              bias >= 0 ? value(bias).md.md : nullptr, dst_md.md,
                                              attr),
            "matmul");
      dnnl_primitive_attr_destroy(attr);
      define(dst, dst_md.md);
      int w_arg = weights;
      if (constant_weights && f[5] == 0) {
        w_arg = packed_weight(weights, dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                    DNNL_ARG_WEIGHTS));
      } else {
        Value view;  // the (transposed) view of the weights operand
        view.alias = weights;
        view.md = std::move(w_md);
        view.dims = value(weights).dims;
        view.last_use = index;
        values_.push_back(std::move(view));
        w_arg = (int)values_.size() - 1;
      }
      if (f[4] != 0) {
        Value view;
        view.alias = src;
        view.md = std::move(src_md);
        view.dims = value(src).dims;
        view.last_use = index;
        values_.push_back(std::move(view));
        src = (int)values_.size() - 1;
      }
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
    default:
      throw Error{"unknown step kind " + std::to_string(step.kind)};
  }
  for (auto &[arg, id] : args) value(id).last_use = std::max(value(id).last_use, index);
  add(pd, std::move(args), index);
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

void Program::build() {
  if (next() != kMagic) throw Error{"not a program spec"};
  if (next() != kVersion) throw Error{"spec version mismatch"};
  uid_ = next();
  int64_t n_values = next(), n_steps = next();
  layout_ = (int)next();
  int64_t n_kernels = next();
  for (int64_t i = 0; i < n_kernels; i++) {  // "<library path>:<entry point>", 8 bytes a word
    int64_t length = next();
    std::string text;
    for (int64_t w = 0; w < (length + 7) / 8; w++) {
      int64_t word = next();
      text.append(reinterpret_cast<const char *>(&word), 8);
    }
    text.resize(length);
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) throw Error{"external kernel without entry point: " + text};
    void *handle = dlopen(text.substr(0, colon).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw Error{std::string("cannot load ") + text + ": " + dlerror()};
    void *symbol = dlsym(handle, text.substr(colon + 1).c_str());
    if (!symbol) throw Error{"no entry point " + text};
    kernels_.push_back(reinterpret_cast<AotKernel>(symbol));
  }
  for (int64_t i = 0; i < n_values; i++) {
    Value v;
    v.role = (int)next();
    v.index = next();
    int64_t ndims = next();
    if (ndims < 1 || ndims > DNNL_MAX_NDIMS) throw Error{"bad rank"};
    for (int64_t d = 0; d < ndims; d++) v.dims.push_back(next());
    if (v.role == ROLE_INPUT || v.role == ROLE_CONST) v.md = Md(plain_md(v.dims));
    if (v.role == ROLE_OUTPUT) output_value_ = (int)i;
    values_.push_back(std::move(v));
  }
  if (output_value_ < 0) throw Error{"program has no output"};
  for (int64_t i = 0; i < n_steps; i++) {
    Step step;
    step.kind = (int)next();
    int64_t n = next();
    for (int64_t k = 0; k < n; k++) step.f.push_back(next());
    steps_.push_back(std::move(step));
  }
  const int steps = (int)steps_.size();
  for (int i = 0; i < steps; i++) build_step(i, steps_[i]);
  Value &out = values_[output_value_];
  if (!out.md.md) throw Error{"the output is never computed"};
  Md want(plain_md(out.dims));
  // The output buffer is MindSpore's: a result in another layout, or a reshape of a
  // temporary (which lives in the arena), is copied into it by a last reorder.
  if (!dnnl_memory_desc_equal(out.md.md, want.md) || out.alias >= 0) {
    out.role = ROLE_TEMP;
    int final_out = add_temp(out.dims, clone(want.md), steps);
    values_[final_out].role = ROLE_OUTPUT;
    values_[final_out].index = out.index;
    out.index = -1;
    reorder(output_value_, final_out, steps);
    output_value_ = final_out;
  }
  plan_memory();
}

// Temporaries share one arena: each is placed at the lowest offset free over its lifetime.
void Program::plan_memory() {
  auto root = [&](int id) {
    while (values_[id].alias >= 0) id = values_[id].alias;
    return id;
  };
  const int n = (int)values_.size();
  std::vector<int> first(n, -1), last(n, -1);
  for (const Action &a : actions_)
    for (auto &[arg, id] : a.args) {
      int r = root(id);
      if (first[r] < 0 || a.step < first[r]) first[r] = a.step;
      last[r] = std::max(last[r], a.step);
    }
  struct Placed {
    int64_t offset, size;
    int last;
  };
  std::vector<Placed> live;
  int64_t arena = 0;
  std::vector<int> order;
  for (int i = 0; i < n; i++)
    if (values_[i].alias < 0 && values_[i].role == ROLE_TEMP && first[i] >= 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return first[a] < first[b]; });
  for (int id : order) {
    int64_t size = ((int64_t)dnnl_memory_desc_get_size(values_[id].md.md) + 63) / 64 * 64;
    std::vector<Placed> busy;
    for (const Placed &p : live)
      if (p.last >= first[id]) busy.push_back(p);
    live = busy;
    std::sort(busy.begin(), busy.end(),
              [](const Placed &a, const Placed &b) { return a.offset < b.offset; });
    int64_t offset = 0;
    for (const Placed &p : busy) {
      if (offset + size <= p.offset) break;
      offset = std::max(offset, p.offset + p.size);
    }
    values_[id].offset = offset;
    live.push_back({offset, size, last[id]});
    arena = std::max(arena, offset + size);
  }
  arena_storage_.resize(arena + 64);
  arena_ = reinterpret_cast<char *>(
      (reinterpret_cast<uintptr_t>(arena_storage_.data()) + 63) / 64 * 64);
  for (int i = 0; i < n; i++) {
    Value &v = values_[i];
    if (!v.md.md) continue;
    void *handle = nullptr;
    if (v.alias < 0 && v.role == ROLE_TEMP && v.offset >= 0) handle = arena_ + v.offset;
    check(dnnl_memory_create(&v.memory, v.md.md, runtime().engine, handle), "memory");
  }
  for (int i = 0; i < n; i++) {  // aliases point into their root's buffer
    Value &v = values_[i];
    int r = root(i);
    if (r != i && values_[r].role == ROLE_TEMP && values_[r].offset >= 0)
      dnnl_memory_set_data_handle(v.memory, arena_ + values_[r].offset);
  }
  for (PackedWeight &p : packed_) {
    char *aligned = reinterpret_cast<char *>(
        (reinterpret_cast<uintptr_t>(p.storage.data()) + 63) / 64 * 64);
    dnnl_memory_set_data_handle(values_[p.packed].memory, aligned);
  }
  if (scratchpad_size_) {
    scratchpad_storage_.resize(scratchpad_size_ + 64);
    char *aligned = reinterpret_cast<char *>(
        (reinterpret_cast<uintptr_t>(scratchpad_storage_.data()) + 63) / 64 * 64);
    dnnl_dims_t dims{(int64_t)scratchpad_size_ / 4 + 1};
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_create_with_tag(&md, 1, dims, dnnl_f32, dnnl_a), "scratchpad md");
    check(dnnl_memory_create(&scratchpad_, md, runtime().engine, aligned), "scratchpad");
    dnnl_memory_desc_destroy(md);
  }
}

void *Program::pointer(void **params, const Value &v) const {
  if (v.role == ROLE_CONST) return static_cast<float *>(params[kConstants]) + v.index;
  return params[v.index];
}

void Program::execute(void **params) {
  auto call_started = std::chrono::steady_clock::now();
  auto root = [&](int id) {
    while (values_[id].alias >= 0) id = values_[id].alias;
    return id;
  };
  for (size_t i = 0; i < values_.size(); i++) {
    Value &v = values_[i];
    int r = root((int)i);
    const Value &owner = values_[r];
    if ((owner.role == ROLE_INPUT || owner.role == ROLE_CONST || owner.role == ROLE_OUTPUT) &&
        owner.index >= 0 && v.memory)
      check(dnnl_memory_set_data_handle(v.memory, pointer(params, owner)), "bind");
  }
  dnnl_stream_t stream = runtime().stream;
  for (PackedWeight &p : packed_) {
    const void *source = pointer(params, values_[p.source]);
    if (source == p.packed_from) continue;  // the constants of a compiled graph keep their place
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, values_[p.source].memory},
                               {DNNL_ARG_TO, values_[p.packed].memory}};
    check(dnnl_primitive_execute(p.reorder, stream, 2, args), "pack weights");
    p.packed_from = source;

  }
  std::vector<dnnl_exec_arg_t> args;
  std::vector<void *> pointers;
  for (Action &a : actions_) {
    if (a.external) {
      pointers.clear();
      for (int id : a.external->values) {
        void *handle = nullptr;
        check(dnnl_memory_get_data_handle(values_[id].memory, &handle), "external operand");
        pointers.push_back(handle);
      }
      auto started = std::chrono::steady_clock::now();
      run_external(*a.external, pointers, values_);
      a.total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                              started).count();
      a.calls++;
      continue;
    }
    args.clear();
    for (auto &[arg, id] : a.args) args.push_back({arg, values_[id].memory});
    if (scratchpad_) args.push_back({DNNL_ARG_SCRATCHPAD, scratchpad_});
    auto started = std::chrono::steady_clock::now();
    check(dnnl_primitive_execute(a.primitive, stream, (int)args.size(), args.data()),
          "execute " + a.info);
    a.total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                            started).count();
    a.calls++;
  }
  check(dnnl_stream_wait(stream), "wait");
  total_us_ += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                         call_started).count();
  calls_++;
}

// "<calls>\t<total us>" for the whole program, then per action
// "<step>\t<label>\t<implementation>\t<calls>\t<total us>".
std::string Program::timings() const {
  std::string text = std::to_string(calls_) + "\t" + std::to_string(total_us_) + "\n";
  for (const Action &a : actions_)
    text += std::to_string(a.step) + "\t" + a.label + "\t" + a.info + "\t" +
            std::to_string(a.calls) + "\t" + std::to_string(a.total_us) + "\n";
  return text;
}

void Program::reset_timings() {
  total_us_ = 0;
  calls_ = 0;
  for (Action &a : actions_) {
    a.total_us = 0;
    a.calls = 0;
  }
}

struct Registry {
  std::mutex mutex;
  std::map<std::vector<int64_t>, std::shared_ptr<std::pair<std::mutex, Program *>>> programs;
};

Registry &registry() {
  static Registry instance;
  return instance;
}

}  // namespace

AOT_ENTRY int RunProgram(int nparam, void **params, int *ndims, int64_t **shapes,
                         const char **dtypes, void *stream, void *extra) {
  (void)stream;
  (void)extra;
  (void)dtypes;
  try {
    if (nparam != 4 || ndims[0] != 1)
      throw Error{"expected a spec, an input, the constants and one output"};
    const int64_t *spec = static_cast<const int64_t *>(params[0]);
    std::vector<int64_t> key(spec, spec + shapes[0][0]);
    std::shared_ptr<std::pair<std::mutex, Program *>> entry;
    {
      std::lock_guard<std::mutex> lock(registry().mutex);
      auto &slot = registry().programs[key];
      if (!slot) slot = std::make_shared<std::pair<std::mutex, Program *>>();
      entry = slot;
    }
    std::lock_guard<std::mutex> lock(entry->first);
    // oneDNN's concurrency setting is per thread, and MindSpore calls from its own threads.
    check(dnnl_threadpool_interop_set_max_concurrency(omp_get_max_threads()), "concurrency");
    if (entry->second == nullptr) {
      runtime();
      auto program = std::make_unique<Program>(spec, shapes[0][0]);
      program->build();
      entry->second = program.release();
    }
    entry->second->execute(params);
    return 0;
  } catch (const Error &error) {
    std::fprintf(stderr, "tuner program runtime: %s\n", error.message.c_str());
    return 1;
  } catch (const std::exception &error) {
    std::fprintf(stderr, "tuner program runtime: %s\n", error.what());
    return 1;
  }
}

// What a built program spends its time on (Program::timings) since the last reset, which
// ``reset`` (non-zero) also does; empty if the program has not run yet. For profiles.
AOT_ENTRY const char *ProgramTimings(const int64_t *spec, int64_t length, int reset) {
  static thread_local std::string text;
  std::vector<int64_t> key(spec, spec + length);
  std::shared_ptr<std::pair<std::mutex, Program *>> entry;
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto found = registry().programs.find(key);
    if (found != registry().programs.end()) entry = found->second;
  }
  text = "";
  if (entry) {
    std::lock_guard<std::mutex> lock(entry->first);
    if (entry->second) {
      text = entry->second->timings();
      if (reset) entry->second->reset_timings();
    }
  }
  return text.c_str();
}

// Checks the oneDNN ABI and creates the engine; returns an empty string or the reason it failed.
AOT_ENTRY const char *ProgramRuntimeCheck() {
  static thread_local std::string text;
  try {
    runtime();
    text = "";
  } catch (const Error &error) {
    text = error.message;
  }
  return text.c_str();
}
