// Reading a program's spec (its header, external kernels, values and steps' fields) and
// checking each call's parameters against it: what the spec and the caller may say is
// validated here, before anything is built or run. Part of program.cpp's translation unit.
#pragma once
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "program.h"
#include "step_specs.h"

namespace {

constexpr int64_t kMaxConstantOffset = int64_t(1) << 40;      // floats
constexpr int64_t kMaxKernelPath = 4096;                      // bytes
constexpr int64_t kMaxSpecWords = int64_t(1) << 26;
constexpr int kInputIndex = 1, kOutputIndex = 3;              // params indices


// External kernels: "<library path>:<entry point>", [n_bytes, bytes packed 8 to a word...].
void Program::read_kernels(int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const int64_t length = next("kernel path length", 1, kMaxKernelPath);
    if ((size_t)(length + 7) / 8 > words_left()) throw Error{"spec ends in a kernel path"};
    std::string text;
    for (int64_t w = 0; w < (length + 7) / 8; w++) {
      int64_t word = next();
      text.append(reinterpret_cast<const char *>(&word), 8);
    }
    text.resize(length);
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find('\0') != std::string::npos)
      throw Error{"external kernel without entry point: " + text};
    void *handle = dlopen(text.substr(0, colon).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw Error{std::string("cannot load ") + text + ": " + dlerror()};
    const std::string entry = text.substr(colon + 1);
    void *symbol = dlsym(handle, entry.c_str());
    if (!symbol) throw Error{"no entry point " + text};
    ExternalKernel kernel;
    kernel.function = reinterpret_cast<AotKernel>(symbol);
    auto ask = [&](const char *name) {  // a layout parameter the library reports
      void *query = dlsym(handle, name);
      if (!query) throw Error{text + ": no " + name};
      const int64_t v = reinterpret_cast<int (*)()>(query)();
      if (v < 1 || v > 64) throw Error{text + ": " + name + " " + std::to_string(v)};
      return v;
    };
    if (entry == "Conv2dDense") {
      kernel.kind = EXTERNAL_DENSE;
      kernel.register_rows = ask("Conv2dDenseRegisterRows");
    } else if (entry == "Conv2dDepthwise") {
      kernel.kind = EXTERNAL_DEPTHWISE;
    } else if (entry == "Conv2dWinograd") {
      kernel.kind = EXTERNAL_WINOGRAD;
      kernel.register_rows = ask("Conv2dWinogradRegisterRows");
      kernel.tile_size = ask("Conv2dWinogradTileSize");
    } else {
      throw Error{"external kernel " + entry + " unknown: the runtime cannot bound its weights"};
    }
    kernels_.push_back(kernel);
  }
}

// Values: [role, index, ndims, dims...]. One input (params[1]) and one output (params[3]);
// constants inside the constants array (params[2]) at their offsets; dims positive, fewer
// than 2^31 elements a value.
void Program::read_values(int64_t count) {
  int inputs = 0, outputs = 0;
  for (int64_t i = 0; i < count; i++) {
    const std::string name = "value " + std::to_string(i);
    Value v;
    v.role = (int)next("value role", ROLE_INPUT, ROLE_OUTPUT);
    v.index = next();
    const int64_t ndims = next("value rank", 1, DNNL_MAX_NDIMS);
    int64_t elements = 1;
    for (int64_t d = 0; d < ndims; d++) {
      v.dims.push_back(next("dimension", 1, kMaxElements));
      elements *= v.dims.back();  // both factors below 2^31: no overflow
      if (elements > kMaxElements) throw Error{name + ": 2^31 elements or more"};
    }
    switch (v.role) {
      case ROLE_INPUT:
        if (v.index != kInputIndex) throw Error{name + ": the input is parameter 1"};
        inputs++;
        input_value_ = (int)i;
        break;
      case ROLE_OUTPUT:
        if (v.index != kOutputIndex) throw Error{name + ": the output is parameter 3"};
        outputs++;
        output_value_ = (int)i;
        break;
      case ROLE_CONST:  // offset + elements: both bounded, no overflow
        if (v.index < 0 || v.index > kMaxConstantOffset)
          throw Error{name + ": constant offset " + std::to_string(v.index) + " outside [0, 2^40]"};
        constants_floats_ = std::max(constants_floats_, v.index + elements);
        break;
      default:
        if (v.index != -1) throw Error{name + ": a temporary's index is -1"};
    }
    if (v.role == ROLE_INPUT || v.role == ROLE_CONST) v.md = Md(plain_md(v.dims));
    values_.push_back(std::move(v));
  }
  if (inputs != 1 || outputs != 1)
    throw Error{"a program has one input and one output, the spec declares " +
                std::to_string(inputs) + " and " + std::to_string(outputs)};
}

void Program::read() {
  if (next() != kMagic) throw Error{"not a program spec"};
  if (next() != kVersion) throw Error{"spec version mismatch"};
  uid_ = next();
  const int64_t n_values = next("value count", 2, (int64_t)words_left() / 4);
  const int64_t n_steps = next("step count", 0, (int64_t)words_left() / 2);
  layout_ = (int)next("layout", LAYOUT_ANY, LAYOUT_BLOCKED);
  read_kernels(next("kernel count", 0, (int64_t)words_left() / 2));
  read_values(n_values);
  declared_values_ = (int)n_values;
  for (int64_t i = 0; i < n_steps; i++) {
    Step step;
    step.kind = (int)next("step kind", STEP_CONV, STEP_GEMM_CONV);
    const int64_t n = next();
    if (n < 0 || n > (int64_t)words_left())
      throw Error{"spec: step " + std::to_string(i) + " has " + std::to_string(n) +
                  " fields, " + std::to_string(words_left()) + " words are left"};
    step.f.assign(spec_.begin() + cursor_, spec_.begin() + cursor_ + n);
    cursor_ += n;
    steps_.push_back(std::move(step));
  }
  if (words_left() != 0)
    throw Error{"spec: " + std::to_string(words_left()) + " words after the last step"};
}

// The parameters of a call against the spec: their dtypes (where given), the input's and the
// output's dims exactly, the constants array long enough for every constant.
void Program::check_call(int nparam, void **params, const int *ndims, int64_t *const *shapes,
                         const char *const *dtypes) const {
  static const char *const kDtypes[4] = {"int64", "float32", "float32", "float32"};
  static const char *const kNames[4] = {"the spec", "the input", "the constants", "the output"};
  if (nparam != 4) throw Error{"expected a spec, an input, the constants and one output"};
  for (int k = 0; k < 4; k++) {
    if (dtypes && dtypes[k] && std::strcmp(dtypes[k], kDtypes[k]) != 0)
      throw Error{std::string(kNames[k]) + " is " + dtypes[k] + ", expected " + kDtypes[k]};
    if (!shapes[k] || (!params[k] && k != 2)) throw Error{std::string(kNames[k]) + " is missing"};
  }
  for (int k : {kInputIndex, kOutputIndex}) {
    const Dims &want = values_[k == kInputIndex ? input_value_ : output_value_].dims;
    bool same = ndims[k] == (int)want.size();
    for (int d = 0; same && d < ndims[k]; d++) same = shapes[k][d] == want[d];
    if (!same)
      throw Error{std::string(kNames[k]) + " is " +
                  dims_text(Dims(shapes[k], shapes[k] + std::max(0, std::min(ndims[k], 12)))) +
                  ", the spec says " + dims_text(want)};
  }
  if (ndims[kConstants] < 1 || ndims[kConstants] > DNNL_MAX_NDIMS)
    throw Error{"the constants array has rank " + std::to_string(ndims[kConstants])};
  int64_t floats = 1;
  for (int d = 0; d < ndims[kConstants]; d++) {
    const int64_t size = shapes[kConstants][d];
    if (size < 0 || __builtin_mul_overflow(floats, size, &floats))
      throw Error{"the constants array's dimensions are not a size"};
  }
  if (floats < constants_floats_ || (constants_floats_ > 0 && !params[kConstants]))
    throw Error{"the constants array has " + std::to_string(floats) +
                " floats, the spec's constants need " + std::to_string(constants_floats_)};
}

}  // namespace
