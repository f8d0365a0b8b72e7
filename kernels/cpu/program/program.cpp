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
//
// Every boundary validates: the spec's header, values and each step's fields are checked where
// the program is built (step_specs.h, native_steps.h: one struct per kind of step), and every
// call's parameters against the spec before it runs (Program::check_call); anything else is
// refused with status 1 and a one-line reason (ProgramLastError), never read out of bounds.
//
// One translation unit: errors.h (Error, check: the bottom), runtime.h (the ABI check, the
// threadpool, the engine), handles.h (owned oneDNN handles), memory.h (memory descriptors),
// program.h (the Program class), spec_reader.h (the spec's reading, each call's checks),
// step_specs.h and native_steps.h (the steps' fields decoded and validated; native and external
// kernel steps), build_helpers.h (values, layouts and primitives under construction), steps.h
// (building each kind of step), and here building, memory planning, execution and the entry
// points. Each header includes what it names, so the includes run one way, errors.h at the
// bottom.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "spec_reader.h"
#include "steps.h"
#include "matmul_as_conv.h"

// An entry point the tuner finds by name (ctypes, ops.Custom): exported, unmangled.
#define C_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void Program::build() {
  const int steps = (int)steps_.size();
  for (int i = 0; i < steps; i++) build_step(i, steps_[i]);
  Value &out = values_[output_value_];
  if (!out.md.md) throw Error{"the output is never computed"};
  Md want(plain_md(out.dims));
  // The output buffer is MindSpore's: a result in another layout, or a reshape of a
  // temporary (which lives in the arena), is copied into it by a last reorder.
  if (!dnnl_memory_desc_equal(out.md.md, want.md) || out.alias >= 0) {
    const int64_t index = out.index;
    out.role = ROLE_TEMP;
    out.index = -1;
    const int final_out = add_temp(out.dims, clone(want.md), steps);  // `out` is gone now
    values_[final_out].role = ROLE_OUTPUT;
    values_[final_out].index = index;
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
  arena_ = arena_storage_.data();
  for (int i = 0; i < n; i++) {
    Value &v = values_[i];
    if (!v.md.md) continue;
    void *handle = nullptr;
    if (v.alias < 0 && v.role == ROLE_TEMP && v.offset >= 0) handle = arena_ + v.offset;
    check(dnnl_memory_create(v.memory.out(), v.md.md, runtime().engine, handle), "memory");
  }
  for (int i = 0; i < n; i++) {  // aliases point into their root's buffer
    Value &v = values_[i];
    int r = root(i);
    if (r != i && values_[r].role == ROLE_TEMP && values_[r].offset >= 0)
      dnnl_memory_set_data_handle(v.memory.get(), arena_ + values_[r].offset);
  }
  for (PackedWeight &p : packed_) {
    dnnl_memory_set_data_handle(values_[p.packed].memory.get(), p.storage.data());
  }
  if (scratchpad_size_) {
    scratchpad_storage_.resize(scratchpad_size_ + 64);
    char *aligned = scratchpad_storage_.data();
    dnnl_dims_t dims{(int64_t)scratchpad_size_ / 4 + 1};
    Md md;
    check(dnnl_memory_desc_create_with_tag(&md.md, 1, dims, dnnl_f32, dnnl_a), "scratchpad md");
    check(dnnl_memory_create(scratchpad_.out(), md.md, runtime().engine, aligned), "scratchpad");
  }
}

void *Program::pointer(void **params, const Value &v) const {
  if (v.role == ROLE_CONST) return static_cast<float *>(params[kConstants]) + v.index;
  return params[v.index];
}

void Program::execute(void **params) {
  auto call_started = std::chrono::steady_clock::now();
  SpinPool::Hold hold(*runtime().pool);  // the pool's threads spin from one primitive to the next
  auto root = [&](int id) {
    while (values_[id].alias >= 0) id = values_[id].alias;
    return id;
  };
  for (size_t i = 0; i < values_.size(); i++) {
    Value &v = values_[i];
    int r = root((int)i);
    const Value &owner = values_[r];
    if ((owner.role == ROLE_INPUT || owner.role == ROLE_CONST || owner.role == ROLE_OUTPUT) &&
        owner.index >= 0 && v.memory) {
      void *handle = pointer(params, owner);
      if (handle == v.bound) continue;  // a compiled graph passes the same buffers every call
      check(dnnl_memory_set_data_handle(v.memory.get(), handle), "bind");
      v.bound = handle;
    }
  }
  dnnl_stream_t stream = runtime().stream;
  for (PackedWeight &p : packed_) {
    const void *source = pointer(params, values_[root(p.source)]);  // p.source may be a view
    if (source == p.packed_from) continue;  // the constants of a compiled graph keep their place
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, values_[p.source].memory.get()},
                               {DNNL_ARG_TO, values_[p.packed].memory.get()}};
    check(dnnl_primitive_execute(p.reorder.get(), stream, 2, args), "pack weights");
    p.packed_from = source;

  }
  std::vector<dnnl_exec_arg_t> args;
  std::vector<void *> pointers;
  for (Action &a : actions_) {
    if (a.native) {
      const std::vector<int> &ids = a.native->values;
      void *operand[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
      for (size_t k = 0; k < ids.size(); k++)
        if (ids[k] >= 0)
          check(dnnl_memory_get_data_handle(values_[ids[k]].memory.get(), &operand[k]), "operand");
      auto started = std::chrono::steady_clock::now();
      a.native->conv->run(static_cast<const float *>(operand[0]),
                          static_cast<const float *>(operand[1]),
                          static_cast<const float *>(operand[2]),
                          static_cast<const float *>(operand[3]), static_cast<float *>(operand[4]),
                          *runtime().pool);
      a.total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                              started).count();
      a.calls++;
      continue;
    }
    if (a.external) {
      pointers.clear();
      for (int id : a.external->values) {
        void *handle = nullptr;
        check(dnnl_memory_get_data_handle(values_[id].memory.get(), &handle), "external operand");
        pointers.push_back(handle);
      }
      auto started = std::chrono::steady_clock::now();
      {
        SpinPool::Pause pause(*runtime().pool);  // the kernel runs OpenMP threads of its own
        run_external(*a.external, pointers, values_);
      }
      a.total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                              started).count();
      a.calls++;
      continue;
    }
    args.clear();
    for (auto &[arg, id] : a.args) args.push_back({arg, values_[id].memory.get()});
    if (scratchpad_) args.push_back({DNNL_ARG_SCRATCHPAD, scratchpad_.get()});
    auto started = std::chrono::steady_clock::now();
    check(dnnl_primitive_execute(a.primitive.get(), stream, (int)args.size(), args.data()),
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

// Why the last failed call failed: one line of printable ASCII (a spec's bytes may be anything)
// in a buffer that never moves, written under a lock (MindSpore calls from its own threads).
char last_error_text[1024] = "";
std::mutex last_error_mutex;

void set_last_error(const std::string &message) {
  std::lock_guard<std::mutex> lock(last_error_mutex);
  const size_t n = std::min(message.size(), sizeof last_error_text - 1);
  for (size_t i = 0; i < n; i++) {
    const char c = message[i];
    last_error_text[i] = c >= 0x20 && c <= 0x7e ? c : c == '\n' ? ' ' : '?';
  }
  last_error_text[n] = '\0';
  std::fprintf(stderr, "tuner program runtime: %s\n", last_error_text);
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

C_EXPORT int RunProgram(int nparam, void **params, int *ndims, int64_t **shapes,
                         const char **dtypes, void *stream, void *extra) {
  (void)stream;
  (void)extra;
  try {
    if (nparam != 4 || !params || !ndims || !shapes)
      throw Error{"expected a spec, an input, the constants and one output"};
    if (ndims[0] != 1 || !shapes[0] || !params[0] || shapes[0][0] < 1 ||
        shapes[0][0] > kMaxSpecWords)
      throw Error{"the spec is not a 1-D int64 tensor of 1 to 2^26 words"};
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
      program->read();
      program->check_call(nparam, params, ndims, shapes, dtypes);  // before building anything
      program->build();
      entry->second = program.release();
    }
    entry->second->check_call(nparam, params, ndims, shapes, dtypes);
    entry->second->execute(params);
    return 0;
  } catch (const Error &error) {
    set_last_error(error.message);
  } catch (const std::exception &error) {
    set_last_error(error.what());
  }
  return 1;
}

// Why the last failed call (of any program) failed, for the caller to say; empty if none has.
C_EXPORT const char *ProgramLastError() { return last_error_text; }

// What a built program spends its time on (Program::timings) since the last reset, which
// ``reset`` (non-zero) also does; empty if the program has not run yet. For profiles.
C_EXPORT const char *ProgramTimings(const int64_t *spec, int64_t length, int reset) {
  static thread_local std::string text;
  text = "";
  if (!spec || length < 1 || length > kMaxSpecWords) return text.c_str();
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
C_EXPORT const char *ProgramRuntimeCheck() {
  static thread_local std::string text;
  try {
    runtime();
    text = "";
  } catch (const Error &error) {
    text = error.message;
  }
  return text.c_str();
}
