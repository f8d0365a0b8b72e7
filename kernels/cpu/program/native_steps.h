// The steps that kernels taking raw pointers run: an external AOT kernel of kernels/cpu, and
// the runtime's own Winograd, GEMM and pointwise+depthwise convolutions (winograd.h,
// gemm_conv.h, pointwise_depthwise.h). No oneDNN descriptor checks their operands, so each
// decoder checks the operands' dimensions against the step's geometry: a kernel reads and
// writes exactly the elements of the values it is given. Part of program.cpp's translation
// unit.
#pragma once
#include "channel_scale.h"
#include "step_specs.h"

namespace {

// The operands every native convolution step starts with: src, weights, bias (-1: none; the
// pointwise_depthwise step has none), dst, residual (-1: none).
constexpr int64_t kMaxBlock = 4096;  // tiles or channels of a native kernel's block

struct NativeOperands {
  int src, weights, bias, dst, residual;
};

NativeOperands read_native_operands(Fields &in, bool with_bias) {
  NativeOperands o;
  o.src = in.operand("src");
  o.weights = in.operand("weights");
  o.bias = with_bias ? in.operand("bias") : -1;
  o.dst = in.result("dst");
  if (with_bias) o.residual = in.optional("residual");
  return o;
}

// src and dst 4-D (NCHW dims) of one batch, weights and bias constants, the bias one value per
// output channel, the residual of dst's dimensions.
void check_native_operands(const Fields &in, const NativeOperands &o) {
  in.rank(o.src, 4, "src");
  in.rank(o.dst, 4, "dst");
  const Dims &x = in.declared().dims(o.src), &y = in.declared().dims(o.dst);
  if (x[0] != y[0]) throw in.error("src and dst batches differ");
  in.constant(o.weights, "weights");
  if (o.bias >= 0) {
    in.constant(o.bias, "bias");
    in.at_least(o.bias, y[1], "bias");
  }
  if (o.residual >= 0) in.same_dims(o.residual, o.dst, "residual and dst dimensions");
}

// Where a window of `kernel` taps at `stride`, `pad` before, puts `out` outputs over `in`
// inputs, the padding after it implies must be in [-(stride - 1), kernel - 1].
void check_window(const Fields &in, int64_t size, int64_t out, int64_t kernel, int64_t stride,
                  int64_t pad, const char *axis) {
  const int64_t after = (out - 1) * stride + kernel - size - pad;
  if (after < -(stride - 1) || after > kernel - 1)
    throw in.error(std::string("the ") + axis + " size " + std::to_string(out) +
                   " of dst does not follow from src's " + std::to_string(size) +
                   " and the window");
}

struct ExternalStep {  // src, weights, bias, dst, residual (-1), kernel, KH KW SH SW PT PB PL PR ACT
  NativeOperands v;
  int kernel;
  int32_t geometry[9];  // conv_common.h's GeometryIndex order
};

ExternalStep decode_external(Fields in, const std::vector<ExternalKernel> &kernels) {
  ExternalStep s;
  s.v = read_native_operands(in, true);
  s.kernel = (int)in.integer("kernel", 0, (int64_t)kernels.size() - 1);
  const char *names[9] = {"KH", "KW", "SH", "SW", "PT", "PB", "PL", "PR", "activation"};
  for (int k = 0; k < 9; k++)
    s.geometry[k] = (int32_t)(k < 8 ? in.integer(names[k], k < 4 ? 1 : 0, kMaxGeometry)
                                    : in.activation(names[k], 2));
  in.done();
  check_native_operands(in, s.v);
  const Dims &x = in.declared().dims(s.v.src), &y = in.declared().dims(s.v.dst);
  const int32_t kh = s.geometry[0], kw = s.geometry[1], sh = s.geometry[2], sw = s.geometry[3];
  const int64_t oh = (x[2] + s.geometry[4] + s.geometry[5] - kh) / sh + 1,
                ow = (x[3] + s.geometry[6] + s.geometry[7] - kw) / sw + 1;
  if (x[2] + s.geometry[4] + s.geometry[5] < kh || x[3] + s.geometry[6] + s.geometry[7] < kw ||
      oh != y[2] || ow != y[3])
    throw in.error("dst's spatial size does not follow from src's and the geometry");
  // the packed weights' size, as tuner/kernels/cpu/packing.py's pack_weight writes them
  const ExternalKernel &kernel = kernels[s.kernel];
  const int64_t rows = kernel.register_rows, panels = (y[1] + rows - 1) / rows * rows;
  int64_t floats = 0;
  switch (kernel.kind) {
    case EXTERNAL_DENSE:
      floats = panels * x[1] * kh * kw;
      break;
    case EXTERNAL_DEPTHWISE:
      if (x[1] != y[1]) throw in.error("a depthwise kernel keeps the channels");
      floats = y[1] * kh * kw;
      break;
    case EXTERNAL_WINOGRAD:
      if (kh != 3 || kw != 3 || sh != 1 || sw != 1)
        throw in.error("the Winograd kernel runs 3x3 windows of stride 1");
      floats = (kernel.tile_size + 2) * (kernel.tile_size + 2) * panels * x[1];
      break;
  }
  in.at_least(s.v.weights, floats, "weights");
  return s;
}

struct WinogradStep {  // src, weights, bias, dst, residual, m, rows, vecs, tile_block, oc_block,
                       // tasks_per_thread, pad_top, pad_left, activation, raw_weights
  NativeOperands v;
  int m, rows, vecs, tile_block, oc_block, tasks_per_thread, pad_top, pad_left, activation;
  bool raw_weights;
};

WinogradStep decode_winograd(Fields in) {
  WinogradStep s;
  s.v = read_native_operands(in, true);
  s.m = (int)in.integer("tile_size", 1, 16);  // the kernel says which it has (2, 4)
  s.rows = (int)in.integer("register_rows", 1, 64);
  s.vecs = (int)in.integer("register_vectors", 1, 64);
  s.tile_block = (int)in.integer("tile_block", 1, kMaxBlock);  // per-thread buffers
  s.oc_block = (int)in.integer("oc_block", 1, kMaxBlock);
  s.tasks_per_thread = (int)in.integer("tasks_per_thread", 1, 1024);
  s.pad_top = (int)in.integer("pad_top", 0, 2);
  s.pad_left = (int)in.integer("pad_left", 0, 2);
  s.activation = in.activation("activation", 2);
  s.raw_weights = in.flag("raw_weights");
  in.done();
  check_native_operands(in, s.v);
  const Dims &x = in.declared().dims(s.v.src), &y = in.declared().dims(s.v.dst);
  check_window(in, x[2], y[2], 3, 1, s.pad_top, "height");
  check_window(in, x[3], y[3], 3, 1, s.pad_left, "width");
  return s;
}

struct GemmConvStep {  // src, weights, bias, dst, residual, kh, kw, stride, pad_top, pad_left,
                       // rows, vecs, tasks_per_thread, activation, depth_block
  NativeOperands v;
  int kh, kw, stride, pad_top, pad_left, rows, vecs, tasks_per_thread, activation, depth_block;
};

GemmConvStep decode_gemm_conv(Fields in) {
  GemmConvStep s;
  s.v = read_native_operands(in, true);
  const char *window = "a window of at least 1x1, a positive stride and padding smaller than "
                       "the window";
  s.kh = (int)in.integer("kernel height", 1, 64, window);
  s.kw = (int)in.integer("kernel width", 1, 64, window);
  s.stride = (int)in.integer("stride", 1, 64, window);
  s.pad_top = (int)in.integer("pad_top", 0, s.kh - 1, window);
  s.pad_left = (int)in.integer("pad_left", 0, s.kw - 1, window);
  s.rows = (int)in.integer("register_rows", 1, 64);
  s.vecs = (int)in.integer("register_vectors", 1, 64);
  s.tasks_per_thread = (int)in.integer("tasks_per_thread", 1, 1024);
  s.activation = in.activation("activation", 3);
  s.depth_block = (int)in.integer("depth_block", 0, INT32_MAX);
  in.done();
  check_native_operands(in, s.v);
  const Dims &x = in.declared().dims(s.v.src), &y = in.declared().dims(s.v.dst);
  check_window(in, x[2], y[2], s.kh, s.stride, s.pad_top, "height");
  check_window(in, x[3], y[3], s.kw, s.stride, s.pad_left, "width");
  // a gathered row (a window's inputs) and all of them indexed by int and int64
  const int64_t depth = (int64_t)s.kh * s.kw * x[1];
  if (depth > INT32_MAX || depth * y[0] * y[2] * y[3] > kMaxElements)
    throw in.error("the gathered windows would hold 2^31 floats or more");
  return s;
}

struct PointwiseDepthwiseStep {  // src, weights, dst, stride, pad_top, pad_left, act1, act2,
                                 // rows, vecs, tasks_per_thread, channels, projection channels
                                 // (0: none), residual (-1), act3, window, expand
  NativeOperands v;
  int stride, pad_top, pad_left, act1, act2, rows, vecs, tasks_per_thread, channels, projection,
      act3, window;
  bool expand;
};

PointwiseDepthwiseStep decode_pointwise_depthwise(Fields in) {
  PointwiseDepthwiseStep s;
  s.v = read_native_operands(in, false);
  const char *window = "a 3x3 or 5x5 window of stride 1 or 2 and padding up to half the window";
  s.stride = (int)in.integer("stride", 1, 2, window);
  s.pad_top = (int)in.integer("pad_top", 0, 2, window);
  s.pad_left = (int)in.integer("pad_left", 0, 2, window);
  s.act1 = in.activation("pointwise activation", 3);
  s.act2 = in.activation("depthwise activation", 3);
  s.rows = (int)in.integer("register_rows", 1, 64);
  s.vecs = (int)in.integer("register_vectors", 1, 64);
  s.tasks_per_thread = (int)in.integer("tasks_per_thread", 1, 1024);
  s.channels = (int)in.integer("channels", 1, kMaxGeometry);
  s.projection = (int)in.integer("projection channels", 0, kMaxGeometry);
  s.v.residual = in.optional("residual");
  s.act3 = in.activation("projection activation", 3);
  s.window = (int)in.integer("window", 3, 5, window);
  s.expand = in.flag("expand");
  in.done();
  check_native_operands(in, s.v);
  const Dims &y = in.declared().dims(s.v.dst);
  if (y[1] != (s.projection ? s.projection : s.channels))
    throw in.error("output channels differ from the step's");
  if (s.v.residual >= 0 && !s.projection) throw in.error("a residual needs a projection");
  return s;
}

void Program::build_external(int index, const ExternalStep &s) {
  auto call = std::make_shared<ExternalCall>();
  call->kernel = kernels_[s.kernel].function;
  int src = plain(s.v.src, index);
  define(s.v.dst, Md(plain_md(value(s.v.dst).dims)).md);
  call->values = {src, s.v.weights, s.v.bias};
  if (s.v.residual >= 0) call->values.push_back(plain(s.v.residual, index));
  call->values.push_back(s.v.dst);
  call->geometry.assign(s.geometry, s.geometry + 9);
  for (int id : call->values) value(id).last_use = std::max(value(id).last_use, index);
  Action action;
  action.step = index;
  action.label = "step";
  action.info = "external";
  action.external = call;
  for (int id : call->values) action.args.push_back({0, id});
  actions_.push_back(std::move(action));
}

void Program::build_winograd(int index, const WinogradStep &s) {
  const int src = channels_last(s.v.src, index);
  const Dims &in = value(src).dims, &out = value(s.v.dst).dims;
  WinogradShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3], (int)out[1],
                      (int)out[2], (int)out[3], s.pad_top, s.pad_left, s.m, s.rows, s.vecs,
                      s.tile_block, s.oc_block, s.tasks_per_thread, s.activation,
                      s.raw_weights ? 1 : 0};
  add_native_conv(index, s.v, src, std::make_shared<WinogradConv>(shape),
                  "winograd_nhwc:F(" + std::to_string(shape.m) + "x" + std::to_string(shape.m) +
                      ",3x3)" + (shape.raw_weights ? ":raw_weights" : ""));
}

void Program::build_gemm_conv(int index, const GemmConvStep &s) {
  const int src = channels_last(s.v.src, index);
  const Dims &in = value(src).dims, &out = value(s.v.dst).dims;
  GemmConvShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3], (int)out[1], (int)out[2],
                      (int)out[3], s.kh, s.kw, s.stride, s.pad_top, s.pad_left, s.rows, s.vecs,
                      s.tasks_per_thread, s.activation, s.depth_block};
  add_native_conv(index, s.v, src, std::make_shared<GemmConv>(shape),
                  "gemm_conv_nhwc:" + std::to_string(shape.rows) + "x" +
                      std::to_string(shape.vecs));
}

void Program::build_pointwise_depthwise(int index, const PointwiseDepthwiseStep &s) {
  // without the expansion the step copies src's rows itself: a blocked src as it is
  int src = s.v.src, src_block = 0;
  if (!s.expand)
    for (auto [block, tag] : {std::pair{16, dnnl_aBcd16b}, std::pair{8, dnnl_aBcd8b}})
      if (value(src).dims[1] % block == 0 &&
          dnnl_memory_desc_equal(value(src).md.md, Md(tagged_md(value(src).dims, tag)).md))
        src_block = block;
  if (!src_block) src = channels_last(src, index);
  const Dims &in = value(src).dims, &out = value(s.v.dst).dims;
  PointwiseDepthwiseShape shape{(int)in[0], (int)in[1], (int)in[2], (int)in[3], s.channels,
                                (int)out[2], (int)out[3], s.stride, s.pad_top, s.pad_left,
                                s.act1, s.act2, s.rows, s.vecs, s.tasks_per_thread,
                                s.projection, s.act3, s.window, s.expand ? 1 : 0, src_block};
  auto call = std::make_shared<NativeCall>();
  call->conv = std::make_shared<PointwiseDepthwise>(shape);
  int residual = s.v.residual >= 0 ? channels_last(s.v.residual, index) : -1;
  call->values = {src, s.v.weights, -1, residual, s.v.dst};
  add_native(index, call,
             std::string(s.projection ? "pointwise_depthwise_nhwc:projected"
                                      : "pointwise_depthwise_nhwc") +
                 (s.expand ? "" : ":no_expansion") +
                 (src_block ? ":nChw" + std::to_string(src_block) + "c_input" : ""));
}

// A native convolution run by `conv`: its residual channels-last too, then add_native.
void Program::add_native_conv(int index, const NativeOperands &v, int src,
                              std::shared_ptr<NativeConv> conv, std::string info) {
  auto call = std::make_shared<NativeCall>();
  call->conv = std::move(conv);
  const int residual = v.residual >= 0 ? channels_last(v.residual, index) : -1;
  call->values = {src, v.weights, v.bias, residual, v.dst};
  add_native(index, call, std::move(info));
}

// A step that a NativeCall runs: its weights (a constant of the size the kernel expects) in the
// program's own (huge-page) memory, as oneDNN's packed weights are; its result channels-last.
void Program::add_native(int index, std::shared_ptr<NativeCall> call, std::string info) {
  std::vector<int> &ids = call->values;
  const Value &weights = value(ids[1]);
  if (dims_size(weights.dims) != call->conv->weight_floats())
    throw Error{info + ": packed weights of " + std::to_string(dims_size(weights.dims)) +
                " floats, expected " + std::to_string(call->conv->weight_floats())};
  ids[1] = packed_weight(ids[1], weights.md.md, true);
  add_native_action(index, std::move(call), std::move(info));
}

// The action of a native step whose operands are ready: its result channels-last.
void Program::add_native_action(int index, std::shared_ptr<NativeCall> call, std::string info) {
  const std::vector<int> &ids = call->values;
  define(ids[4], Md(tagged_md(value(ids[4]).dims, dnnl_acdb)).md);
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

// A squeeze-and-excitation multiply (src0 4-D times a (N or 1, C, 1, 1) src1, no post-ops) as a
// ChannelScale on channels-last values; false (nothing built) for any other binary step.
bool Program::build_channel_scale(int index, const BinaryStep &s) {
  const Dims &x = value(s.src0).dims, &scale = value(s.src1).dims;
  if (s.alg != dnnl_binary_mul || !s.posts.empty() || x.size() != 4 || scale.size() != 4 ||
      (scale[0] != 1 && scale[0] != x[0]) || scale[1] != x[1] || scale[2] != 1 || scale[3] != 1)
    return false;
  auto call = std::make_shared<NativeCall>();
  call->conv = std::make_shared<ChannelScale>(
      ChannelScaleShape{x[0], x[2] * x[3], x[1], scale[0] == x[0] && x[0] > 1});
  call->values = {channels_last(s.src0, index), plain(s.src1, index), -1, -1, s.dst};
  add_native_action(index, std::move(call), "channel_scale_nhwc");
  return true;
}

}  // namespace
