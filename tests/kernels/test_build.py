from pathlib import Path

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
