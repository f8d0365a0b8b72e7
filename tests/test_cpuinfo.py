import pytest

from tuner import cpuinfo

TWO_PROCESSORS = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw

processor\t: 1
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw
"""


@pytest.fixture
def cpuinfo_file(tmp_path, monkeypatch):
    def write(text: str | None):
        path = tmp_path / "cpuinfo"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(cpuinfo, "CPUINFO", path)
        cpuinfo._first_processor.cache_clear()
        return path

    yield write
    cpuinfo._first_processor.cache_clear()


def test_the_first_processor_gives_name_flags_and_a_description(cpuinfo_file):
    cpuinfo_file(TWO_PROCESSORS)
    assert cpuinfo.model_name() == "Intel(R) Xeon(R) Processor"
    assert cpuinfo.flags() == {"fpu", "sse2", "avx", "avx2", "fma", "avx512f", "avx512bw"}
    assert cpuinfo.description() == "Intel(R) Xeon(R) Processor (family 6 model 167, AVX-512)"


def test_an_unreadable_cpuinfo_leaves_no_flags_and_a_name_from_python(cpuinfo_file):
    cpuinfo_file(None)
    assert cpuinfo.flags() == frozenset()
    assert cpuinfo.model_name()  # platform.processor() or the machine's architecture
    assert cpuinfo.description().endswith("(no AVX)")


@pytest.mark.parametrize("flags, isa", [
    ({"avx", "avx2", "fma", "avx512f"}, "AVX-512"), ({"avx", "avx2", "fma"}, "AVX2+FMA"),
    ({"avx", "avx2"}, "AVX"), ({"sse2"}, "no AVX")])
def test_the_widest_vector_instructions_are_named(flags, isa):
    assert cpuinfo.vector_isa(frozenset(flags)) == isa
