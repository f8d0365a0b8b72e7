// A program: its values, its steps (primitives and external kernel calls), its arena.
// Part of program.cpp's translation unit (steps.h builds the steps).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "memory.h"
#include "gemm_conv.h"
#include "pointwise_depthwise.h"
#include "winograd.h"

namespace {

constexpr int64_t kMagic = 0x5450524f47;  // "TPROG"
constexpr int64_t kVersion = 2;
constexpr int kConstants = 2;  // params index of the constants array

enum Role { ROLE_INPUT = 0, ROLE_CONST = 1, ROLE_TEMP = 2, ROLE_OUTPUT = 3 };
enum StepKind {
  STEP_CONV = 1, STEP_POOL, STEP_ELTWISE, STEP_BINARY, STEP_CONCAT, STEP_MATMUL, STEP_REDUCE,
  STEP_LAYERNORM, STEP_SOFTMAX, STEP_TRANSPOSE, STEP_RESHAPE, STEP_SLICE, STEP_EXTERNAL,
  STEP_GROUPNORM, STEP_RESAMPLE, STEP_WINOGRAD, STEP_POINTWISE_DEPTHWISE, STEP_GEMM_CONV
};
enum PostKind { POST_ELTWISE = 1, POST_BINARY = 3 };

// The decoded steps (step_specs.h, native_steps.h).
struct PostOp;
using PostOps = std::vector<PostOp>;
struct ConvStep;
struct PoolStep;
struct EltwiseStep;
struct BinaryStep;
struct ConcatStep;
struct MatMulStep;
struct ReduceStep;
struct NormStep;
struct SoftmaxStep;
struct TransposeStep;
struct SourceToDestination;
struct SliceStep;
struct NativeOperands;
struct ExternalStep;
struct WinogradStep;
struct GemmConvStep;
struct PointwiseDepthwiseStep;


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
  Memory memory;
  void *bound = nullptr;  // the handle last bound to an input, constant or output
};

// An AOT kernel of kernels/cpu (MindSpore's calling convention) run as a step.
using AotKernel = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

// An external kernel the spec names, and what its packed weights' size depends on: the
// kernels of kernels/cpu this runtime knows (a kernel it does not know is refused, since
// nothing would bound what it reads).
enum ExternalKind { EXTERNAL_DENSE, EXTERNAL_DEPTHWISE, EXTERNAL_WINOGRAD };
struct ExternalKernel {
  AotKernel function = nullptr;
  ExternalKind kind = EXTERNAL_DENSE;
  int64_t register_rows = 1;  // dense and Winograd: output channels per weight panel (MR)
  int64_t tile_size = 0;      // Winograd: m of F(m x m, 3 x 3)
};

struct ExternalCall {
  AotKernel kernel = nullptr;
  std::vector<int> values;            // x, weight, bias, [residual], out (plain NCHW)
  std::vector<int32_t> geometry;      // KH KW SH SW PT PB PL PR ACT (conv_common.h)
};

// A convolution the runtime computes itself (winograd.h, pointwise_depthwise.h, gemm_conv.h) on the
// program's threads; its operands are value ids: src, weights, bias, residual (-1: none), dst.
struct NativeCall {
  std::shared_ptr<NativeConv> conv;
  std::vector<int> values;
};

struct Action {  // one primitive execution, or one call of an external or native kernel
  Primitive primitive;
  std::vector<std::pair<int, int>> args;  // (DNNL_ARG_*, value id)
  int step = -1;
  std::string label;  // what it does for its step: the step's own work, or a "reorder"
  std::string info;   // the implementation
  std::shared_ptr<ExternalCall> external;
  std::shared_ptr<NativeCall> native;
  double total_us = 0;  // time spent in it since the last reset (for profiles)
  int64_t calls = 0;
};

struct PackedWeight {  // a constant reordered into the layout its primitive chose
  int source = -1;     // constant value id
  int packed = -1;     // value id of the packed copy (role CONST, own buffer)
  Primitive reorder;
  const void *packed_from = nullptr;
  Buffer storage;
};

class Program {
 public:
  Program(const int64_t *spec, int64_t length) : spec_(spec, spec + length) {}

  void read();   // the spec's header, kernels, values and steps' fields, validated
  void build();  // the steps (decoded and validated), the output, the memory plan
  // Refuses (throws) a call whose buffers are not those the spec describes: checked before
  // every execute, integer compares only.
  void check_call(int nparam, void **params, const int *ndims, int64_t *const *shapes,
                  const char *const *dtypes) const;
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
  int64_t next(const char *name, int64_t lo, int64_t hi) {  // a word that must be in [lo, hi]
    const int64_t v = next();
    if (v < lo || v > hi)
      throw Error{std::string("spec: ") + name + " = " + std::to_string(v) + " outside [" +
                  std::to_string(lo) + ", " + std::to_string(hi) + "]"};
    return v;
  }
  size_t words_left() const { return spec_.size() - cursor_; }
  void read_kernels(int64_t count);
  void read_values(int64_t count);

  struct Step {
    int kind;
    std::vector<int64_t> f;
  };

  int declared_values_ = 0;        // the spec's values (steps add more: copies, views)
  int input_value_ = -1;
  int64_t constants_floats_ = 0;  // the constants array holds at least this many floats
  int layout_ = LAYOUT_ANY;
  int64_t uid_ = 0;
  std::vector<ExternalKernel> kernels_;  // external kernels, by index
  std::vector<Value> values_;
  std::vector<std::pair<int, int>> copies_;  // (value, its copy in another layout)
  std::vector<Step> steps_;
  std::vector<Action> actions_;
  std::vector<PackedWeight> packed_;
  Buffer arena_storage_;
  char *arena_ = nullptr;
  Buffer scratchpad_storage_;
  Memory scratchpad_;
  size_t scratchpad_size_ = 0;
  int output_value_ = -1;
  double total_us_ = 0;  // whole calls since the last reset
  int64_t calls_ = 0;

  Value &value(int64_t id) {
    if (id < 0 || id >= (int64_t)values_.size()) throw Error{"value id out of range"};
    return values_[id];
  }
  int add_temp(const Dims &dims, dnnl_memory_desc_t md, int step);
  int add_view(int of, Md md, const Dims &dims, int step);
  int in_layout(int id, int step, Md want);
  int plain(int id, int step);
  int channels_last(int id, int step);
  int strided(int id, int step);
  void define(int id, const_dnnl_memory_desc_t md);
  int packed_weight(int id, const_dnnl_memory_desc_t want, bool copy_anyway = false);
  void add(PrimitiveDesc pd, std::vector<std::pair<int, int>> args, int step,
           const char *label = "step");
  void add_step(int index, PrimitiveDesc pd, std::vector<std::pair<int, int>> args);
  void reorder(int from, int to, int step, const_dnnl_memory_desc_t from_md = nullptr);
  Attr attributes(const PostOps &posts, std::vector<std::pair<int, int>> &args);
  void build_step(int index, const Step &step);
  // one per kind of step, from its decoded struct (step_specs.h, native_steps.h)
  void build_conv(int index, const ConvStep &s);
  void build_pool(int index, const PoolStep &s);
  void build_eltwise(int index, const EltwiseStep &s);
  void build_binary(int index, const BinaryStep &s);
  void build_concat(int index, const ConcatStep &s);
  void build_matmul(int index, const MatMulStep &s);
  PrimitiveDesc matmul_as_conv(int index, const MatMulStep &s, int src,
                               std::vector<std::pair<int, int>> &args);
  void build_reduce(int index, const ReduceStep &s);
  void build_norm(int index, const NormStep &s);
  void build_resample(int index, const SourceToDestination &s);
  void build_softmax(int index, const SoftmaxStep &s);
  void build_transpose(int index, const TransposeStep &s);
  void build_reshape(int index, const SourceToDestination &s);
  void build_slice(int index, const SliceStep &s);
  void build_external(int index, const ExternalStep &s);
  void build_winograd(int index, const WinogradStep &s);
  void build_gemm_conv(int index, const GemmConvStep &s);
  void build_pointwise_depthwise(int index, const PointwiseDepthwiseStep &s);
  void add_native_conv(int index, const NativeOperands &v, int src,
                       std::shared_ptr<NativeConv> conv, std::string info);
  void add_native(int index, std::shared_ptr<NativeCall> call, std::string info);
  void add_native_action(int index, std::shared_ptr<NativeCall> call, std::string info);
  bool build_channel_scale(int index, const BinaryStep &s);
  void plan_memory();
};


}  // namespace
