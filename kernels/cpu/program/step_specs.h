// Each kind of step as a named struct, decoded from its positional fields (spec.py's
// ``fields()``) and validated in one place: the field count exact, every integer in its range
// before it is narrowed, every operand a declared value of a plausible role, and the shapes of
// the operands consistent with what the step computes wherever a kernel that takes raw pointers
// (the native and external steps) or the runtime's own indexing would otherwise trust them.
// oneDNN checks the rest of a primitive's geometry itself. Anything not understood is an error.
// Part of program.cpp's translation unit.
#pragma once
#include <string>
#include <vector>

#include "program.h"

namespace {

constexpr int64_t kMaxElements = (int64_t(1) << 31) - 1;  // of a value
constexpr int64_t kMaxGeometry = int64_t(1) << 16;  // strides, windows, padding, offsets
constexpr int64_t kMaxImpl = 1024;                   // an implementation's rank in oneDNN's list
constexpr int64_t kMaxPostOps = 32;
constexpr int64_t kMaxConcat = 1024;

// The values the spec declares, as the decoders see them (their roles and dimensions).
struct Declared {
  const std::vector<Value> &values;
  int count;
  const Dims &dims(int id) const { return values[id].dims; }
  int role(int id) const { return values[id].role; }
  int64_t floats(int id) const { return dims_size(values[id].dims); }
};

// Reads one step's fields in order; every read names the field it takes.
class Fields {
 public:
  // `reads` collects the operands the step reads (Program::build_step checks that an earlier
  // step, or the spec, defined each).
  Fields(const std::vector<int64_t> &f, int step, const char *kind, const Declared &declared,
         std::vector<int> &reads)
      : f_(f), step_(step), kind_(kind), declared_(declared), reads_(reads) {}

  Error error(const std::string &what) const {
    return Error{"step " + std::to_string(step_) + " (" + kind_ + "): " + what};
  }
  // A field in [lo, hi]; else refused, saying `why` (or the range).
  int64_t integer(const char *name, int64_t lo, int64_t hi, const char *why = nullptr) {
    const int64_t v = take(name);
    if (v < lo || v > hi)
      throw error(std::string(name) + " = " + std::to_string(v) + ": " +
                  (why ? std::string(why)
                       : "outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"));
    return v;
  }
  int activation(const char *name, int64_t last) {  // 0 (none) to `last`
    const int64_t v = take(name);
    if (v < 0 || v > last) throw error("activation " + std::to_string(v) + " unknown");
    return (int)v;
  }
  bool flag(const char *name) { return integer(name, 0, 1) != 0; }
  double real(const char *name) { return as_double(take(name)); }
  int operand(const char *name) {
    const int id = (int)integer(name, 0, declared_.count - 1);
    reads_.push_back(id);
    return id;
  }
  int optional(const char *name) {  // an operand or -1 (none)
    const int id = (int)integer(name, -1, declared_.count - 1);
    if (id >= 0) reads_.push_back(id);
    return id;
  }
  int result(const char *name) {  // a value the step writes: a temporary or the output
    const int id = (int)integer(name, 0, declared_.count - 1);
    if (declared_.role(id) != ROLE_TEMP && declared_.role(id) != ROLE_OUTPUT)
      throw error(std::string(name) + " (value " + std::to_string(id) +
                  ") is an input or a constant: a step writes only temporaries and the output");
    return id;
  }
  void done() const {
    if (at_ != f_.size())
      throw error(std::to_string(f_.size()) + " fields, this kind has " + std::to_string(at_));
  }
  const Declared &declared() const { return declared_; }

  // Shape requirements, each a refusal naming the step.
  void rank(int id, size_t want, const char *name) const {
    if (declared_.dims(id).size() != want)
      throw error(std::string(name) + " must be " + std::to_string(want) + "-D");
  }
  void same_dims(int a, int b, const char *what) const {
    if (declared_.dims(a) != declared_.dims(b)) throw error(std::string(what) + " differ");
  }
  void at_least(int id, int64_t floats, const char *name) const {
    if (declared_.floats(id) < floats)
      throw error(std::string(name) + " has " + std::to_string(declared_.floats(id)) +
                  " elements, the step reads " + std::to_string(floats));
  }
  void constant(int id, const char *name) const {
    if (declared_.role(id) != ROLE_CONST) throw error(std::string(name) + " must be a constant");
  }

 private:
  int64_t take(const char *name) {
    if (at_ >= f_.size())
      throw error(std::to_string(f_.size()) + " fields: no " + name + " (field " +
                  std::to_string(at_) + ")");
    return f_[at_++];
  }
  const std::vector<int64_t> &f_;
  size_t at_ = 0;
  int step_;
  const char *kind_;
  const Declared &declared_;
  std::vector<int> &reads_;
};

// Post-ops: [n, (kind, a, b, c) x n]; ELTWISE (alg, alpha bits, beta bits); BINARY (alg, value, 0).
struct PostOp {
  int kind = 0, alg = 0;
  float alpha = 0, beta = 0;
  int operand = -1;  // BINARY: the value combined with the result (its rank: the result's)
};
using PostOps = std::vector<PostOp>;

PostOps read_posts(Fields &in, size_t dst_rank) {
  PostOps posts((size_t)in.integer("post-op count", 0, kMaxPostOps));
  for (PostOp &p : posts) {
    p.kind = (int)in.integer("post-op kind", POST_ELTWISE, POST_BINARY);
    p.alg = (int)in.integer("post-op algorithm", 0, INT32_MAX);
    if (p.kind == POST_ELTWISE) {
      p.alpha = (float)in.real("post-op alpha");
      p.beta = (float)in.real("post-op beta");
    } else if (p.kind == POST_BINARY) {
      p.operand = in.operand("post-op operand");
      in.integer("post-op padding word", 0, 0);
      if (in.declared().dims(p.operand).size() != dst_rank)
        throw in.error("a binary post-op's operand must have the result's rank");
    } else {
      throw in.error("unknown post-op kind " + std::to_string(p.kind));
    }
  }
  return posts;
}

struct ConvStep {  // src, weights, bias (-1), dst, groups, stride[2], padding (t, l, b, r),
                   // dilation[2] (1: none), impl, posts
  int src, weights, bias, dst;
  int64_t groups, stride[2], pad_l[2], pad_r[2], dilation[2], impl;
  PostOps posts;
};

ConvStep decode_conv(Fields in) {
  ConvStep s;
  s.src = in.operand("src");
  s.weights = in.operand("weights");
  s.bias = in.optional("bias");
  s.dst = in.result("dst");
  s.groups = in.integer("groups", 1, kMaxGeometry);
  for (int64_t &v : s.stride) v = in.integer("stride", 1, kMaxGeometry);
  s.pad_l[0] = in.integer("pad top", -kMaxGeometry, kMaxGeometry);
  s.pad_l[1] = in.integer("pad left", -kMaxGeometry, kMaxGeometry);
  s.pad_r[0] = in.integer("pad bottom", -kMaxGeometry, kMaxGeometry);
  s.pad_r[1] = in.integer("pad right", -kMaxGeometry, kMaxGeometry);
  for (int64_t &v : s.dilation) v = in.integer("dilation", 1, kMaxGeometry);
  s.impl = in.integer("impl", 0, kMaxImpl);
  s.posts = read_posts(in, 4);
  in.done();
  in.rank(s.src, 4, "src");
  in.rank(s.weights, 4, "weights");
  in.rank(s.dst, 4, "dst");
  in.constant(s.weights, "weights");  // packed once, again only when the constants move
  if (in.declared().dims(s.weights)[0] % s.groups != 0)
    throw in.error("output channels not a multiple of the groups");
  return s;
}

struct PoolStep {  // src, dst, alg, kernel[2], stride[2], padding (t, l, b, r), posts
  int src, dst, alg;
  int64_t kernel[2], stride[2], pad_l[2], pad_r[2];
  PostOps posts;
};

PoolStep decode_pool(Fields in) {
  PoolStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  s.alg = (int)in.integer("algorithm", 0, INT32_MAX);
  for (int64_t &v : s.kernel) v = in.integer("kernel", 1, kMaxGeometry);
  for (int64_t &v : s.stride) v = in.integer("stride", 1, kMaxGeometry);
  s.pad_l[0] = in.integer("pad top", 0, kMaxGeometry);
  s.pad_l[1] = in.integer("pad left", 0, kMaxGeometry);
  s.pad_r[0] = in.integer("pad bottom", 0, kMaxGeometry);
  s.pad_r[1] = in.integer("pad right", 0, kMaxGeometry);
  s.posts = read_posts(in, 4);
  in.done();
  in.rank(s.src, 4, "src");
  in.rank(s.dst, 4, "dst");
  return s;
}

struct EltwiseStep {  // src, dst, alg, alpha, beta
  int src, dst, alg;
  float alpha, beta;
};

EltwiseStep decode_eltwise(Fields in) {
  EltwiseStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  s.alg = (int)in.integer("algorithm", 0, INT32_MAX);
  s.alpha = (float)in.real("alpha");
  s.beta = (float)in.real("beta");
  in.done();
  in.same_dims(s.src, s.dst, "src and dst dimensions");
  return s;
}

struct BinaryStep {  // src0, src1 (may broadcast), dst, alg, posts
  int src0, src1, dst, alg;
  PostOps posts;
};

BinaryStep decode_binary(Fields in) {
  BinaryStep s;
  s.src0 = in.operand("src0");
  s.src1 = in.operand("src1");
  s.dst = in.result("dst");
  s.alg = (int)in.integer("algorithm", 0, INT32_MAX);
  s.posts = read_posts(in, in.declared().dims(s.dst).size());
  in.done();
  in.same_dims(s.src0, s.dst, "src0 and dst dimensions (src0 must not broadcast)");
  if (in.declared().dims(s.src1).size() != in.declared().dims(s.dst).size())
    throw in.error("src1 must have dst's rank");
  return s;
}

struct ConcatStep {  // dst, axis, n, srcs
  int dst, axis;
  std::vector<int> srcs;
};

ConcatStep decode_concat(Fields in) {
  ConcatStep s;
  s.dst = in.result("dst");
  const size_t rank = in.declared().dims(s.dst).size();
  s.axis = (int)in.integer("axis", 0, (int64_t)rank - 1);
  s.srcs.resize((size_t)in.integer("source count", 1, kMaxConcat));
  for (int &src : s.srcs) {
    src = in.operand("src");
    if (in.declared().dims(src).size() != rank) throw in.error("sources must have dst's rank");
  }
  in.done();
  return s;
}

struct MatMulStep {  // src, weights, bias (-1), dst, transpose_src, transpose_weights, impl, posts
  int src, weights, bias, dst;
  bool transpose_src, transpose_weights;
  int64_t impl;
  PostOps posts;
};

MatMulStep decode_matmul(Fields in) {
  MatMulStep s;
  s.src = in.operand("src");
  s.weights = in.operand("weights");
  s.bias = in.optional("bias");
  s.dst = in.result("dst");
  s.transpose_src = in.flag("transpose_src");
  s.transpose_weights = in.flag("transpose_weights");
  s.impl = in.integer("impl", 0, kMaxImpl);
  s.posts = read_posts(in, in.declared().dims(s.dst).size());
  in.done();
  for (int id : {s.src, s.weights, s.dst})
    if (in.declared().dims(id).size() < 2) throw in.error("operands of at least 2 dimensions");
  return s;
}

struct ReduceStep {  // src, dst, alg
  int src, dst, alg;
};

ReduceStep decode_reduce(Fields in) {
  ReduceStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  s.alg = (int)in.integer("algorithm", 0, INT32_MAX);
  in.done();
  if (in.declared().dims(s.src).size() != in.declared().dims(s.dst).size())
    throw in.error("src and dst ranks differ");
  return s;
}

struct NormStep {  // LayerNorm: src, scale, shift, dst, eps; GroupNorm: ..., groups, eps
  int src, scale, shift, dst;
  int64_t groups = 0;
  float epsilon;
};

NormStep decode_norm(Fields in, bool grouped) {
  NormStep s;
  s.src = in.operand("src");
  s.scale = in.operand("scale");
  s.shift = in.operand("shift");
  s.dst = in.result("dst");
  const Dims &d = in.declared().dims(s.src);
  if (grouped) {
    if (d.size() < 2) throw in.error("src of at least 2 dimensions (channels on axis 1)");
    s.groups = in.integer("groups", 1, d[1]);
    if (d[1] % s.groups != 0) throw in.error("channels not a multiple of the groups");
  }
  s.epsilon = (float)in.real("epsilon");
  in.done();
  in.same_dims(s.src, s.dst, "src and dst dimensions");
  const int64_t channels = grouped ? d[1] : d.back();
  for (int id : {s.scale, s.shift})
    if (in.declared().floats(id) != channels || in.declared().dims(id).size() != 1)
      throw in.error("scale and shift must be 1-D of " + std::to_string(channels) + " elements");
  return s;
}

struct SoftmaxStep {  // src, dst, axis
  int src, dst, axis;
};

SoftmaxStep decode_softmax(Fields in) {
  SoftmaxStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  s.axis = (int)in.integer("axis", 0, (int64_t)in.declared().dims(s.src).size() - 1);
  in.done();
  in.same_dims(s.src, s.dst, "src and dst dimensions");
  return s;
}

struct TransposeStep {  // src, dst, perm: dst dimension i is src dimension perm[i]
  int src, dst;
  std::vector<int> perm;
};

TransposeStep decode_transpose(Fields in) {
  TransposeStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  const Dims &from = in.declared().dims(s.src), &to = in.declared().dims(s.dst);
  if (from.size() != to.size()) throw in.error("src and dst ranks differ");
  std::vector<bool> seen(from.size(), false);
  for (size_t i = 0; i < from.size(); i++) {
    const int axis = (int)in.integer("axis", 0, (int64_t)from.size() - 1);
    if (seen[axis]) throw in.error("perm is not a permutation");
    seen[axis] = true;
    if (to[i] != from[axis]) throw in.error("dst dimensions are not src's permuted");
    s.perm.push_back(axis);
  }
  in.done();
  return s;
}

struct SourceToDestination {  // Reshape (same element count), Resample (spatial axes scaled)
  int src, dst;
};

SourceToDestination decode_reshape(Fields in) {
  SourceToDestination s{in.operand("src"), in.result("dst")};
  in.done();
  if (in.declared().floats(s.src) != in.declared().floats(s.dst))
    throw in.error("a reshape keeps the element count");
  return s;
}

SourceToDestination decode_resample(Fields in) {
  SourceToDestination s{in.operand("src"), in.result("dst")};
  in.done();
  const Dims &from = in.declared().dims(s.src), &to = in.declared().dims(s.dst);
  if (from.size() != to.size() || from.size() < 3 || from[0] != to[0] || from[1] != to[1])
    throw in.error("src and dst differ in rank, batch or channels");
  return s;
}

struct SliceStep {  // src, dst, offsets: dst = src[offsets[i] : offsets[i] + dst.dims[i], ...]
  int src, dst;
  std::vector<int64_t> offsets;
};

SliceStep decode_slice(Fields in) {
  SliceStep s;
  s.src = in.operand("src");
  s.dst = in.result("dst");
  const Dims &from = in.declared().dims(s.src), &to = in.declared().dims(s.dst);
  if (from.size() != to.size()) throw in.error("src and dst ranks differ");
  for (size_t i = 0; i < from.size(); i++)
    s.offsets.push_back(in.integer("offset", 0, from[i] - to[i]));  // the view stays inside
  in.done();
  return s;
}

}  // namespace
