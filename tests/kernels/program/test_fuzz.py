"""The program runtime's boundaries under fire: small valid programs (spec.py) whose spec words,
constants length, input and output shapes, ranks, dtypes and parameter count are mutated at
random; every call must return 0 or be refused (status 1, a one-line ProgramLastError), never
crash. The fuzz loop runs in a child process so that a crash fails the test naming its seed and
case instead of killing the test worker. Then each named hazard on its own."""
from __future__ import annotations

import ctypes
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu.packing import (pack_dense_weight, pack_gemm_conv_weight,
                                      pack_pointwise_depthwise, pack_winograd_nhwc_weight)
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program import spec as s

ROOT = Path(__file__).resolve().parents[3]
CASES = 3000
MAX_RANK = 12  # shape arrays are this long, so a rank that lies reads no stranger's memory


@dataclass
class Base:
    """A valid program: its spec words, input, constants array and output shape."""

    name: str
    words: np.ndarray
    x: np.ndarray
    constants: np.ndarray
    output_shape: tuple[int, ...]


def _program(name, rng, x, constants, temps, output_shape, steps, kernels=()) -> Base:
    """Values: the input (0), the constants (1..), the temporaries, then the output."""
    packed, offsets = s.pack_constants(constants)
    values = [s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape)]
    values += [s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)]
    values += [s.ValueDecl(s.Role.TEMP, -1, tuple(d)) for d in temps]
    values.append(s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, tuple(output_shape)))
    spec = s.ProgramSpec(int(rng.integers(1, 2**40)), s.Layout.ANY, tuple(values), tuple(steps),
                         tuple(kernels))
    return Base(name, spec.encode(), x, packed, tuple(output_shape))


def base_programs(seed: int, external: str = "") -> list[Base]:
    """``external``: "<library>:Conv2dDense:<register rows>", a built dense kernel (or "")."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    relu, add = s.PostOp(s.Alg.RELU), s.PostOp(s.Alg.ADD, operand=3)
    programs = [
        _program("conv_relu", rng, normal(1, 3, 8, 8), [normal(4, 3, 3, 3), normal(4)], [],
                 (1, 4, 8, 8), [s.Conv(0, 1, 2, 3, 1, (1, 1), (1, 1, 1, 1), posts=(relu,))]),
        _program("conv_add", rng, normal(1, 4, 8, 8),
                 [normal(4, 4, 3, 3), normal(4), normal(1, 4, 8, 8)], [], (1, 4, 8, 8),
                 [s.Conv(0, 1, 2, 4, 1, (1, 1), (1, 1, 1, 1), posts=(add,))]),
        _program("pool", rng, normal(1, 3, 8, 8), [], [], (1, 3, 4, 4),
                 [s.Pool(0, 1, s.Alg.POOL_MAX, (2, 2), (2, 2), (0, 0, 0, 0))]),
        _program("matmul", rng, normal(4, 8), [normal(8, 5), normal(1, 5)], [], (4, 5),
                 [s.MatMul(0, 1, 2, 3)]),
        _program("reshape_eltwise", rng, normal(1, 3, 8, 8), [], [(3, 64)], (3, 64),
                 [s.Reshape(0, 1), s.Eltwise(1, 2, s.Alg.RELU)]),
        _program("concat", rng, normal(1, 3, 8, 8), [normal(1, 2, 8, 8)], [], (1, 5, 8, 8),
                 [s.Concat((0, 1), 2, 1)]),
        _program("slice_transpose", rng, normal(1, 4, 6, 6), [], [(1, 2, 6, 6)], (1, 6, 6, 2),
                 [s.Slice(0, 1, (0, 1, 0, 0)), s.Transpose(1, 2, (0, 2, 3, 1))]),
        _program("layernorm", rng, normal(4, 8), [normal(8), normal(8)], [], (4, 8),
                 [s.LayerNorm(0, 1, 2, 3, 1e-5)]),
    ]
    if {"avx2", "fma"} <= cpu_flags():  # the runtime's own kernels (raw pointers)
        w1, w3 = normal(16, 16, 1, 1), normal(16, 16, 3, 3)
        programs += [
            _program("gemm_conv", rng, normal(1, 16, 8, 8),
                     [pack_gemm_conv_weight(w1, 1), normal(16)], [], (1, 16, 8, 8),
                     [s.GemmConv(0, 1, 2, 3, None, (1, 1), 1, 0, 0, 4, 1, 1, 1)]),
            _program("winograd_residual", rng, normal(1, 16, 8, 8),
                     [pack_winograd_nhwc_weight(w3, 4, 1), normal(16), normal(1, 16, 8, 8)], [],
                     (1, 16, 8, 8), [s.Winograd(0, 1, 2, 4, 3, 4, 6, 1, 16, 64, 1, 1, 1, 1)]),
            # expansion 8 -> 16, depthwise 3x3 stride 2, projection 16 -> 8 plus a residual
            _program("pointwise_depthwise", rng, normal(1, 8, 8, 8),
                     [pack_pointwise_depthwise(normal(16, 8, 1, 1), normal(16),
                                               normal(16, 1, 3, 3), normal(16),
                                               normal(8, 16, 1, 1), normal(8)),
                      normal(1, 8, 4, 4)], [], (1, 8, 4, 4),
                     [s.PointwiseDepthwise(0, 1, 3, 2, 1, 1, 2, 2, 8, 1, 1, 16,
                                           projection_channels=8, residual=2)]),
        ]
    if external:  # a hand-written kernel of kernels/cpu as an external step
        path, entry, rows = external.rsplit(":", 2)
        weight = pack_dense_weight(normal(8, 16, 3, 3), int(rows))
        programs.append(_program(
            "external_dense", rng, normal(1, 16, 6, 6), [weight, normal(8)], [], (1, 8, 6, 6),
            [s.External(0, 1, 2, 3, None, 0, (3, 3), (1, 1), (1, 1, 1, 1), 1)],
            kernels=(f"{path}:{entry}",)))
    return programs


class Caller:
    """RunProgram through ctypes with every argument under the caller's control."""

    def __init__(self, library: str):
        lib = ctypes.CDLL(library)
        self.function = lib.RunProgram
        self.function.restype = ctypes.c_int
        self.last_error = lib.ProgramLastError
        self.last_error.restype = ctypes.c_char_p

    def __call__(self, arrays, ndims=None, dtypes=None) -> int:
        count = len(arrays)
        ndims = [max(1, a.ndim) for a in arrays] if ndims is None else ndims
        shapes = []
        for a in arrays:
            dims = list(a.shape or (1,))[:MAX_RANK]
            shapes.append((ctypes.c_int64 * MAX_RANK)(*(dims + [0] * (MAX_RANK - len(dims)))))
        names = {np.dtype(np.float32): b"float32", np.dtype(np.int64): b"int64"}
        dtypes = [names[a.dtype] for a in arrays] if dtypes is None else dtypes
        return self.function(
            count, (ctypes.c_void_p * count)(*[a.ctypes.data for a in arrays]),
            (ctypes.c_int * count)(*ndims),
            (ctypes.POINTER(ctypes.c_int64) * count)(
                *[ctypes.cast(x, ctypes.POINTER(ctypes.c_int64)) for x in shapes]),
            (ctypes.c_char_p * count)(*dtypes), None, None)


def _boundary(rng: random.Random, word: int, n_words: int) -> int:
    value = rng.choice([0, -1, 1, 2, 3, 16, 64, 2**31 - 1, 2**31, -2**31, 2**62, -2**63,
                       2**63 - 1, word + 1, word - 1, word * 2, n_words, n_words + 1,
                       rng.randint(-10, 100)])
    return (value + 2**63) % 2**64 - 2**63  # an int64


def _reshaped(rng: random.Random, shape: tuple[int, ...]) -> tuple[int, ...]:
    dims = list(shape)
    how = rng.choice(["grow", "shrink", "drop", "add", "swap"])
    axis = rng.randrange(len(dims))
    if how == "grow":
        dims[axis] += rng.choice([1, 2, 7])
    elif how == "shrink":
        dims[axis] = max(1, dims[axis] - rng.choice([1, 2])) if dims[axis] > 1 else 2
    elif how == "drop" and len(dims) > 1:
        dims.pop(axis)
    elif how == "add":
        dims.insert(axis, rng.choice([1, 2]))
    else:
        dims = dims[::-1] if dims != dims[::-1] else [d + 1 for d in dims]
    return tuple(dims)


MUTATIONS = (["word"] * 6 + ["field"] * 6 + ["words"] * 4
             + ["truncate", "extend", "constants", "constants", "input", "output", "ndims",
                "dtype", "nparam", "valid"])


def mutated_case(rng: random.Random, base: Base):
    """(description, arrays, ndims or None, dtypes or None, expect success) for one case."""
    words = base.words.copy()
    x, constants = base.x, base.constants
    out = np.zeros(base.output_shape, np.float32)
    ndims = dtypes = None
    kind = rng.choice(MUTATIONS)
    text = kind
    if kind in ("word", "field", "words"):
        first = _steps_at(words) if kind == "field" else 0  # "field": in the steps
        for _ in range(1 if kind != "words" else rng.randint(2, 4)):
            at = rng.randrange(first, len(words))
            words[at] = _boundary(rng, int(words[at]), len(words))
            text += f"[{at}]={int(words[at])}"
    elif kind == "truncate":
        words = words[:rng.randrange(1, len(words))]
        text += f"[{len(words)}]"
    elif kind == "extend":
        extra = [_boundary(rng, 0, len(words)) for _ in range(rng.randint(1, 4))]
        words = np.concatenate([words, np.asarray(extra, np.int64)])
        text += f"{extra}"
    elif kind == "constants":
        size = rng.choice([0, 1, constants.size - 1, constants.size // 2, constants.size + 5])
        constants = np.resize(constants, max(size, 0)).astype(np.float32)
        text += f"[{constants.size} of {base.constants.size}]"
    elif kind == "input":
        x = np.zeros(_reshaped(rng, x.shape), np.float32)
        text += f"{x.shape}"
    elif kind == "output":
        out = np.zeros(_reshaped(rng, out.shape), np.float32)
        text += f"{out.shape}"
    elif kind == "ndims":
        ndims = [1, max(1, x.ndim), 1, max(1, out.ndim)]
        slot = rng.randrange(4)
        ndims[slot] = rng.choice([0, -1, ndims[slot] + 1, ndims[slot] - 1, MAX_RANK, 2**31 - 1])
        text += f"{ndims}"
    elif kind == "dtype":
        dtypes = [b"int64", b"float32", b"float32", b"float32"]
        dtypes[rng.randrange(4)] = rng.choice([b"float16", b"int32", b"int64", b"float64", b""])
        text += f"{dtypes}"
    arrays = [words, x, constants, out]
    if kind == "nparam":
        arrays = arrays[:3] if rng.random() < 0.5 else arrays + [np.zeros(4, np.float32)]
        text += f"={len(arrays)}"
    return f"{base.name} {text}", arrays, ndims, dtypes, kind == "valid"


def fuzz(library: str, seed: int, cases: int, log, external: str = "") -> dict:
    """Runs the cases; `log` gets each one's description before it runs (flushed), and any
    broken promise. Returns the counts."""
    rng = random.Random(seed)
    bases = base_programs(seed, external)
    call = Caller(library)
    counts = {"cases": 0, "accepted": 0, "refused": 0}
    for base in bases:  # each base program runs as it is
        status = call([base.words, base.x, base.constants, np.zeros(base.output_shape, np.float32)])
        if status != 0:
            raise AssertionError(f"valid program {base.name}: {call.last_error().decode()}")
    for case in range(cases):
        text, arrays, ndims, dtypes, valid = mutated_case(rng, rng.choice(bases))
        log(f"CASE {case} {text}")
        status = call(arrays, ndims, dtypes)
        counts["cases"] += 1
        if status == 0:
            counts["accepted"] += 1
            continue
        message = call.last_error().decode("utf-8", "replace")
        if status != 1 or valid or not message or not message.isprintable():
            raise AssertionError(f"case {case} ({text}): status {status}, message {message!r}")
        counts["refused"] += 1
    return counts


def child_main() -> None:
    """python -c '...child_main()' <library> <seed> <cases> [<external>]: prints CASE lines,
    then COUNTS."""
    library, seed, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    external = sys.argv[4] if len(sys.argv) > 4 else ""

    def log(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        counts = fuzz(library, seed, cases, log, external)
    except AssertionError as error:
        log(f"FAILED {error}")
        sys.exit(2)
    log(f"COUNTS {counts['cases']} {counts['accepted']} {counts['refused']}")


def _run_child(library: Path, seed: int, cases: int, external: str = ""
               ) -> tuple[int, list[str], str]:
    code = ("import sys; sys.path.insert(0, %r); "
            "from tests.kernels.program.test_fuzz import child_main; child_main()" % str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, str(library), str(seed), str(cases),
                           external],
                          cwd=ROOT, capture_output=True, text=True, errors="replace",
                          timeout=600)
    return done.returncode, done.stdout.splitlines(), done.stderr


@pytest.fixture(scope="module")
def external(library) -> str:
    """The dense kernel of kernels/cpu, built, as base_programs takes it ("" without AVX-512)."""
    if "avx512f" not in cpu_flags():
        return ""
    from tuner.kernels.cpu.library import ENTRY_POINTS, weight_layout

    built = library.build("conv2d_dense", {})
    assert built.ok, built.error
    rows = weight_layout("conv2d_dense", built.library).register_rows
    return f"{built.library}:{ENTRY_POINTS['conv2d_dense']}:{rows}"


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_programs_are_run_or_refused_never_crash(program_library, external, seed):
    started = time.monotonic()
    status, lines, stderr = _run_child(program_library, seed, CASES, external)
    elapsed = time.monotonic() - started
    cases = [line for line in lines if line.startswith("CASE ")]
    if status != 0:
        last = cases[-1] if cases else "(before the first case)"
        failed = [line for line in lines if line.startswith("FAILED ")]
        detail = failed[-1] if failed else f"exit status {status}: {stderr.strip()[-1500:]}"
        pytest.fail(f"seed {seed}, {last}: {detail}")
    _, total, accepted, refused = lines[-1].split()
    total, accepted, refused = int(total), int(accepted), int(refused)
    print(f"seed {seed}: {total} cases, {accepted} run, {refused} refused in {elapsed:.1f} s")
    assert total == CASES == len(cases)
    assert refused >= CASES // 2, "too few mutations refused: is the runtime checking anything?"
    assert accepted >= CASES // 50, "too few mutations run: the valid programs no longer build"


# ---------------------------------------------------------------------------------------------
# Each named hazard on its own (in this process: a crash here is the failure).

@pytest.fixture(scope="module")
def conv(program_library):
    (base,) = [b for b in base_programs(7) if b.name == "conv_add"]
    return Caller(str(program_library)), base


def _refused(call, arrays, needle):
    assert call(arrays) == 1
    message = call.last_error().decode()
    assert message and "\n" not in message and needle in message, message
    return message


def _arrays(base, words=None, x=None, constants=None, out=None):
    return [base.words if words is None else words, base.x if x is None else x,
            base.constants if constants is None else constants,
            np.zeros(base.output_shape, np.float32) if out is None else out]


def test_the_valid_program_runs(conv):
    call, base = conv
    assert call(_arrays(base)) == 0, call.last_error()


def test_constants_shorter_than_the_spec_says(conv):
    call, base = conv
    _refused(call, _arrays(base, constants=base.constants[:-1].copy()), "constants array has")


def test_an_input_smaller_than_the_spec(conv):
    call, base = conv
    _refused(call, _arrays(base, x=np.zeros((1, 4, 8, 7), np.float32)), "the input is")


def test_an_output_smaller_than_the_spec(conv):
    call, base = conv
    _refused(call, _arrays(base, out=np.zeros((1, 4, 7, 8), np.float32)), "the output is")


def _steps_at(words) -> int:
    """The index of the first step's kind in a valid spec (spec.py's encoding)."""
    at = 7
    for _ in range(int(words[6])):  # kernels: n_bytes, then the bytes 8 to a word
        at += 1 + (int(words[at]) + 7) // 8
    for _ in range(int(words[3])):  # values: role, index, ndims, dims
        at += 3 + int(words[at + 2])
    return at


def _step_fields_at(base: Base) -> int:
    """The index of the first step's first field in the spec (after its kind and field count)."""
    return _steps_at(base.words) + 2


def test_an_operand_index_out_of_range(conv):
    call, base = conv
    words = base.words.copy()
    words[_step_fields_at(base)] = 5  # the conv's src: there are five values
    _refused(call, _arrays(base, words=words), "src = 5")


def test_a_binary_post_op_operand_out_of_range(conv):
    call, base = conv
    words = base.words.copy()
    words[_step_fields_at(base) + 14 + 1 + 2] = 99  # posts: count, (kind, alg, operand, 0)
    _refused(call, _arrays(base, words=words), "post-op operand = 99")


def test_a_huge_constant_offset(conv):
    call, base = conv
    words = base.words.copy()
    words[7 + 7 + 1] = 2**62  # the first constant's offset (after the input's 3 + 4 words)
    _refused(call, _arrays(base, words=words), "constant offset")
    words[7 + 7 + 1] = 2**40 - 1  # in range, but past the array's end
    _refused(call, _arrays(base, words=words), "constants array has")


def test_a_step_writing_a_constant(conv):
    call, base = conv
    words = base.words.copy()
    words[_step_fields_at(base) + 3] = 1  # the conv's dst: the weights
    _refused(call, _arrays(base, words=words), "a step writes only temporaries and the output")


def test_a_wrong_field_count(conv):
    call, base = conv
    at = _step_fields_at(base)
    fewer = np.concatenate([base.words[:at - 1], [base.words[at - 1] - 1], base.words[at:-1]])
    _refused(call, _arrays(base, words=fewer.astype(np.int64)), "fields")
    more = np.concatenate([base.words[:at - 1], [base.words[at - 1] + 1], base.words[at:], [0]])
    _refused(call, _arrays(base, words=more.astype(np.int64)), "fields")


def test_a_wrong_parameter_count_or_dtype(conv):
    call, base = conv
    _refused(call, _arrays(base)[:3], "expected a spec, an input, the constants and one output")
    assert call(_arrays(base), dtypes=[b"int64", b"float16", b"float32", b"float32"]) == 1
    assert "float16" in call.last_error().decode()


def test_convolution_weights_computed_by_a_step(program_library):
    """Packed once per constants buffer, a convolution's weights must be a constant: weights a
    step computes are refused (they were read through the parameters at index -1)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    base = _program("computed_weights", rng, x, [weight, np.zeros(4, np.float32)],
                    [weight.shape], (1, 4, 8, 8),
                    [s.Eltwise(1, 3, s.Alg.RELU), s.Conv(0, 3, 2, 4, 1, (1, 1), (1, 1, 1, 1))])
    _refused(Caller(str(program_library)), _arrays(base), "weights must be a constant")
