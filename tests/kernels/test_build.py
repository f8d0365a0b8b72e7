import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import needs_avx512
from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.build import build_variant


@needs_avx512
def test_second_build_is_a_cache_hit(library):
    first = library.build("conv2d_depthwise", {"ow_vectors": 1, "oh_rows": 2})
    second = library.build("conv2d_depthwise", {"ow_vectors": 1, "oh_rows": 2})
    assert first.ok and first.library.exists()
    assert second.ok and second.cached and second.library == first.library
    other = library.build("conv2d_depthwise", {"ow_vectors": 2, "oh_rows": 2})
    assert other.ok and other.library != first.library


def test_failed_build_is_a_record_with_the_compiler_message(tmp_path):
    source = tmp_path / "broken.cpp"
    source.write_text('extern "C" int Broken() { return undeclared_name; }\n')
    result = build_variant(source, {"X": "1"}, tmp_path / "cache")
    assert not result.ok and result.library is None and not result.cached
    assert "undeclared_name" in result.error
    assert not list((tmp_path / "cache").glob("*.so"))


def test_cache_key_covers_included_headers(tmp_path):
    header = tmp_path / "part.h"
    source = tmp_path / "main.cpp"
    header.write_text("#define VALUE 1\n")
    source.write_text('#include "part.h"\nextern "C" int Value() { return VALUE; }\n')
    first = build_variant(source, {}, tmp_path)
    header.write_text("#define VALUE 2\n")
    second = build_variant(source, {}, tmp_path)
    assert first.ok and second.ok and not second.cached
    assert Path(first.library) != Path(second.library)


def test_flags_are_read_from_the_cpu():
    flags = cpu_flags()
    assert "sse2" in flags and all(" " not in flag for flag in flags)


SMALL = 'extern "C" int Value() { return 7; }\n'


@pytest.fixture
def small_source(tmp_path) -> Path:
    source = tmp_path / "small.cpp"
    source.write_text(SMALL)
    return source


def test_a_new_cache_directory_is_private_and_each_library_has_its_size_and_hash(small_source):
    cache = small_source.parent / "cache" / "kernels"
    result = build_variant(small_source, {}, cache)
    assert result.ok and not result.cached
    assert cache.stat().st_mode & 0o777 == 0o700
    sidecar = json.loads(result.library.with_name(result.library.name + ".sha256").read_text())
    assert sidecar == {"size": result.library.stat().st_size,
                       "sha256": hashlib.sha256(result.library.read_bytes()).hexdigest()}
    assert build_variant(small_source, {}, cache).cached


@pytest.mark.parametrize("damage", ["truncated", "without sidecar", "planted"])
def test_a_library_that_does_not_match_its_record_is_rebuilt(small_source, damage):
    cache = small_source.parent / "cache"
    library = build_variant(small_source, {}, cache).library
    built = library.read_bytes()
    if damage == "truncated":  # mapping it would kill the process with SIGBUS
        library.write_bytes(built[: len(built) // 3])
    elif damage == "without sidecar":
        library.with_name(library.name + ".sha256").unlink()
    else:  # another library under the expected name, with a sidecar of its own
        library.write_bytes(b"\x7fELF planted")
        library.with_name(library.name + ".sha256").write_text(
            json.dumps({"size": 1, "sha256": "0" * 64}))
    again = build_variant(small_source, {}, cache)
    assert again.ok and not again.cached and again.library == library
    assert library.stat().st_size == len(built)
    assert build_variant(small_source, {}, cache).cached


def test_a_cache_others_can_write_to_is_refused_in_one_line(small_source):
    cache = small_source.parent / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    result = build_variant(small_source, {}, cache)
    assert not result.ok and result.library is None and "\n" not in result.error
    assert result.error == (f"kernel cache {cache}: writable by group or others (mode 777): "
                            "refused (chmod go-w it or set $TUNER_KERNEL_CACHE)")
    assert not list(cache.iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_cache_of_another_user_is_refused(small_source):
    cache = small_source.parent / "theirs"
    cache.mkdir(mode=0o700)
    os.chown(cache, 4242, -1)
    result = build_variant(small_source, {}, cache)
    assert not result.ok and result.error.startswith(
        f"kernel cache {cache}: owned by user 4242, not this user (0): refused")
