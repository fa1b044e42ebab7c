"""The precision policy on mocked devices: bf16 from compute capability 8.0, fp16 on 7.x, bf16 on a CPU
with bfloat16 instructions, fp32 on other CPUs."""
import platform

import pytest
import torch

from nerqa_helpers import precision
from nerqa_helpers.precision import precision_for


@pytest.fixture()
def gpu(monkeypatch):
    """A mocked CUDA device whose compute capability the test sets; bf16 'supported' everywhere, as on a T4."""
    def set_capability(major, minor):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    return set_capability


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16"), ((6, 1), "no")])
def test_gpus_by_compute_capability(gpu, capability, expected):
    gpu(*capability)
    assert precision_for("cuda") == expected
    assert precision_for() == expected  # no device named: the GPU


def test_the_cpu_and_mps_train_in_float32(gpu):  # conftest sets NERQA_CPU_BF16=0
    assert precision_for("cpu") == "no"
    assert precision_for("mps") == "no"
    gpu(9, 0)
    assert precision_for("cpu") == "no"


ZEN4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512vl\n"  # AVX-512, no bf16
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"


@pytest.mark.parametrize("cpuinfo, expected", [(ZEN4, True), (SKYLAKE, False), (SAPPHIRE_RAPIDS, True),
                                               ("processor\t: 0\n", False)])
def test_a_cpu_trains_in_bf16_only_with_bf16_instructions(tmp_path, monkeypatch, cpuinfo, expected):
    monkeypatch.delenv("NERQA_CPU_BF16")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert precision.cpu_has_native_bf16(tmp_path / "cpuinfo") is expected
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: expected)
    assert precision_for("cpu") == ("bf16" if expected else "no")
    assert precision_for("cpu", "no") == "no"  # an override still wins


def test_the_cpu_check_elsewhere_and_by_hand(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(ZEN4)
    monkeypatch.delenv("NERQA_CPU_BF16")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")  # Apple silicon: float32
    assert precision.cpu_has_native_bf16(tmp_path / "cpuinfo") is False
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert precision.cpu_has_native_bf16(tmp_path / "missing") is False  # no /proc: macOS, Windows
    monkeypatch.setenv("NERQA_CPU_BF16", "1")
    assert precision.cpu_has_native_bf16(tmp_path / "missing") is True and precision_for("cpu") == "bf16"
    monkeypatch.setenv("NERQA_CPU_BF16", "0")
    assert precision.cpu_has_native_bf16(tmp_path / "cpuinfo") is False
    monkeypatch.setenv("NERQA_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="NERQA_CPU_BF16"):
        precision.cpu_has_native_bf16()


def test_without_a_gpu_cuda_falls_back_to_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision_for() == "no" and precision_for("cuda") == "no"


def test_an_override_wins_and_a_bad_one_is_refused(gpu):
    gpu(7, 5)
    assert precision_for("cuda", "bf16") == "bf16"
    assert precision_for("cpu", "fp16") == "fp16"
    assert precision_for("cuda", "no") == "no"
    assert precision_for("cuda", "auto") == "fp16"
    with pytest.raises(ValueError, match="mixed precision"):
        precision_for("cuda", "fp8")


def test_autocast_follows_the_policy(gpu):
    assert isinstance(precision.autocast_for("cpu"), type(precision.autocast_for("cpu")))
    with precision.autocast_for("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with precision.autocast_for("cpu", override="bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 0), "bf16")])
def test_make_accelerator_asks_the_policy(gpu, monkeypatch, capability, expected):
    from nerqa_helpers import training

    gpu(*capability)
    seen = {}
    monkeypatch.setattr(training, "Accelerator", lambda **kwargs: seen.update(kwargs))
    training.make_accelerator(training.TrainingConfig())
    assert seen["mixed_precision"] == expected
    training.make_accelerator(training.TrainingConfig(mixed_precision="no"))
    assert seen["mixed_precision"] == "no"
    training.make_accelerator(training.TrainingConfig(cpu=True))
    assert seen["mixed_precision"] == "no"


def test_a_balancer_that_writes_gradients_by_hand_never_gets_fp16(gpu, monkeypatch, capsys):
    from types import SimpleNamespace

    from nerqa_helpers import training

    from nerqa_helpers.extensions import GradNorm, PCGrad

    seen = {}
    monkeypatch.setattr(training, "Accelerator", lambda **kwargs: seen.update(kwargs))
    assert PCGrad.supports_loss_scaling is False and getattr(GradNorm, "supports_loss_scaling", True)
    by_hand = SimpleNamespace(supports_loss_scaling=False)
    gpu(7, 5)
    training.make_accelerator(training.TrainingConfig(), by_hand)
    assert seen["mixed_precision"] == "no" and "float32" in capsys.readouterr().out
    gpu(8, 0)
    training.make_accelerator(training.TrainingConfig(), by_hand)
    assert seen["mixed_precision"] == "bf16"  # bf16 needs no loss scaling


def test_a_second_run_in_the_same_process_may_ask_for_another_precision():
    """As notebook 04 does: a float32 CPU drift guard, then the real run in the policy's precision."""
    from accelerate import Accelerator

    from nerqa_helpers import training

    Accelerator(cpu=True, mixed_precision="no")
    assert training.make_accelerator(training.TrainingConfig(cpu=True, mixed_precision="bf16")).mixed_precision == "bf16"
    assert training.make_accelerator(training.TrainingConfig(cpu=True, mixed_precision="no")).mixed_precision == "no"
