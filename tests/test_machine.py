"""The CPU facts a study run records, so that seconds measured on different machines are told apart."""
from nerqa_helpers import machine

CPUINFO = """processor\t: 0
model name\t: {model}
flags\t\t: fpu sse sse2 {flags}

processor\t: 1
model name\t: {model}
flags\t\t: fpu sse sse2 {flags}
"""


def test_cpu_description_names_the_model_and_its_widest_vector_instructions(tmp_path):
    for flags, widest in (("avx avx2 fma", "AVX2"), ("avx2 avx512f avx512bw", "AVX-512"),
                          ("avx2 avx512f avx512_bf16", "AVX512-BF16"), ("avx2 avx512f amx_bf16 amx_tile", "AMX-BF16")):
        path = tmp_path / "cpuinfo"
        path.write_text(CPUINFO.format(model="AMD EPYC", flags=flags))
        assert machine.cpu_description(path) == f"AMD EPYC, {widest}"
    path.write_text(CPUINFO.format(model="Some CPU", flags="neon"))
    assert machine.cpu_description(path) == "Some CPU"
    assert machine.cpu_description(tmp_path / "missing")  # a platform name, never an error


def test_cpu_speed_is_a_rate_that_grows_with_the_work_done_per_second():
    small, large = machine.cpu_speed(size=16, repeats=2), machine.cpu_speed(size=256, repeats=4)
    assert 0 < small < large  # a 16 x 16 product spends its time in overhead, not arithmetic
    facts = machine.cpu_facts()
    assert set(facts) == {"cpu", "cpu_gflops"} and facts["cpu_gflops"] > 0
