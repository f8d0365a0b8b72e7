"""A bundle's table of contents (``bundle.json``): what it holds, each file's size and sha256,
and the instruction sets its libraries were compiled for. Read from an untrusted directory:
every name is a plain relative path inside the bundle, every value is checked."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tuner.errors import UsageError, shown

BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
EXPORT = "best.json"
MAX_PROGRAMS = 10_000
# The instruction-set extensions of /proc/cpuinfo that g++ -march=native may use: a bundle
# compiled where one is present does not run where it is missing.
ISA_FLAGS = frozenset({
    "sse3", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "movbe", "aes", "pclmulqdq", "avx",
    "f16c", "fma", "avx2", "bmi1", "bmi2", "abm", "adx", "sha_ni", "rdrnd", "rdseed",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi",
    "avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "gfni", "vaes", "vpclmulqdq", "amx_tile", "amx_bf16", "amx_int8",
})


class BundleError(UsageError):
    """A bundle that cannot be loaded here: one line ``<bundle>: <what is wrong>``."""


@dataclass(frozen=True)
class StoredProgram:
    """One program of the tuned network planned at ``batch``: its cell name, the cells it
    replaces (``("",)``: the whole network), its input and output shapes, and its files: the
    encoded spec (int64, its external kernels named as in ``BundleManifest.kernels``) and its
    packed constants (float32), both ``.npy``; ``steps``: what each step computes
    (ProgramCell.steps)."""

    name: str
    replaces: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    spec: str
    constants: str
    steps: tuple[dict, ...] = ()
    batch: int = 1


@dataclass(frozen=True)
class BundleManifest:
    """``isa``: the instruction-set flags of the CPU the libraries were compiled on (``cpu``);
    ``runtime``: the program runtime library; ``kernels``: ``<library>:<entry point>`` of every
    external kernel the programs call; ``weights``: a MindSpore checkpoint of the parameters
    outside programs (None when the whole network is one program); ``files``: every file's
    size and sha256 (path -> [size, sha256])."""

    isa: tuple[str, ...]
    cpu: str
    mindspore_version: str
    runtime: str | None
    kernels: tuple[str, ...]
    programs: tuple[StoredProgram, ...]
    weights: str | None
    files: dict[str, tuple[int, str]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = {path: list(entry) for path, entry in sorted(self.files.items())}
        return {"bundle_version": BUNDLE_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "BundleManifest":
        def fail(key: str, reason: str) -> BundleError:
            return BundleError(f"{source}: {key}: {reason}")

        if not isinstance(data, dict) or data.get("bundle_version") != BUNDLE_VERSION:
            raise BundleError(f"{source}: not a bundle manifest of version {BUNDLE_VERSION}")
        files = data.get("files")
        if not isinstance(files, dict):
            raise fail("files", "expected an object")
        checked_files = {}
        for path, entry in files.items():
            _relative(path, f"files.{path}", fail)
            if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int
                    and entry[0] >= 0 and isinstance(entry[1], str) and len(entry[1]) == 64):
                raise fail(f"files.{path}", f"{shown(entry)} is not [size, sha256]")
            checked_files[path] = (entry[0], entry[1])

        def listed(value: Any, key: str) -> str:
            _relative(value, key, fail)
            if value not in checked_files:
                raise fail(key, f"{shown(value)} is not among the bundle's files")
            return value

        isa = _strings(data.get("isa"), "isa", fail)
        kernels = _strings(data.get("kernels"), "kernels", fail)
        for k, kernel in enumerate(kernels):
            library, _, entry = kernel.rpartition(":")
            listed(library, f"kernels[{k}]")
            if not entry.isidentifier():
                raise fail(f"kernels[{k}]", f"{shown(entry)} is not an entry point")
        programs = data.get("programs")
        if not isinstance(programs, list) or len(programs) > MAX_PROGRAMS:
            raise fail("programs", "expected a list")
        stored = []
        for k, program in enumerate(programs):
            key = f"programs[{k}]"
            if not isinstance(program, dict):
                raise fail(key, "expected an object")
            stored.append(StoredProgram(
                name=_string(program.get("name"), f"{key}.name", fail),
                replaces=_strings(program.get("replaces"), f"{key}.replaces", fail),
                input_shape=_shape(program.get("input_shape"), f"{key}.input_shape", fail),
                output_shape=_shape(program.get("output_shape"), f"{key}.output_shape", fail),
                spec=listed(program.get("spec"), f"{key}.spec"),
                constants=listed(program.get("constants"), f"{key}.constants"),
                steps=tuple(s for s in program.get("steps", []) if isinstance(s, dict)),
                batch=_shape([program.get("batch")], f"{key}.batch", fail)[0]))
        runtime, weights = data.get("runtime"), data.get("weights")
        return cls(isa=isa, cpu=_string(data.get("cpu"), "cpu", fail),
                   mindspore_version=_string(data.get("mindspore_version"), "mindspore_version",
                                             fail),
                   runtime=None if runtime is None else listed(runtime, "runtime"),
                   kernels=kernels, programs=tuple(stored),
                   weights=None if weights is None else listed(weights, "weights"),
                   files=checked_files)

    def check_files(self, directory: Path) -> None:
        """BundleError unless every file has the size and sha256 recorded for it."""
        for path, (size, digest) in self.files.items():
            file = directory / path
            try:
                actual = file.stat().st_size
                if actual == size:
                    actual_digest = file_digest(file)
            except OSError as exc:
                raise BundleError(f"{directory}: {path}: cannot read ({exc.strerror})") from None
            if actual != size or actual_digest != digest:
                raise BundleError(f"{directory}: {path}: size or sha256 differs from "
                                  f"{MANIFEST} (a damaged or altered bundle)")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> BundleManifest:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: cannot read ({type(exc).__name__})") from None
    return BundleManifest.from_dict(data, str(path))


def _relative(value: Any, key: str, fail) -> None:
    if not isinstance(value, str) or not value:
        raise fail(key, f"{shown(value)} is not a file name")
    parts = PurePosixPath(value).parts
    if value.startswith("/") or "\\" in value or any(p in ("..", ".") for p in parts):
        raise fail(key, f"{shown(value)} is not a path inside the bundle")


def _string(value: Any, key: str, fail) -> str:
    if not isinstance(value, str):
        raise fail(key, f"{shown(value)} is not a string")
    return value


def _strings(value: Any, key: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(key, f"{shown(value)} is not a list of strings")
    return tuple(value)


def _shape(value: Any, key: str, fail) -> tuple[int, ...]:
    if not (isinstance(value, list) and 1 <= len(value) <= 8
            and all(type(v) is int and 0 < v < 2 ** 31 for v in value)):
        raise fail(key, f"{shown(value)} is not a shape")
    return tuple(value)
