"""Process-wide runtime settings: float32 precision, subnormal flushing, devices."""
import pytest
import torch

from metaplastic.errors import ConfigError
from metaplastic.method import runtime


@pytest.fixture
def restore_denormals():
    yield
    torch.set_flush_denormal(False)


def subnormal_survives() -> bool:
    x = torch.full((100_000,), 1e-30)  # large enough to run on every intra-op thread
    return bool((x * 1e-10).count_nonzero() == x.numel())  # 1e-40 is subnormal in float32


def test_setup_flushes_subnormals_unless_asked_to_keep_them(restore_denormals):
    runtime.setup("cpu", seed=0)
    assert not subnormal_survives()
    assert torch.tensor(1e-39).item() == 0.0
    assert torch.tensor(1.2e-38).item() > 0  # the smallest normal float32 values are untouched
    runtime.setup("cpu", seed=0, keep_denormals=True)
    assert subnormal_survives()


def test_setup_keeps_float32_matmuls_exact():
    runtime.setup("cpu", allow_tf32=False)
    assert torch.get_float32_matmul_precision() == "highest"
    assert not torch.backends.cuda.matmul.allow_tf32


def test_unavailable_devices_are_refused_with_a_message():
    with pytest.raises(ConfigError, match="not a device name"):
        runtime.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            runtime.resolve_device("cuda")


def _no_usable_gpu(monkeypatch, cuda_build):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)


def test_auto_device_on_cpu_with_a_visible_gpu_warns(monkeypatch, capsys):
    _no_usable_gpu(monkeypatch, "13.0")
    monkeypatch.setattr(runtime, "visible_gpu", lambda: "/dev/nvidia0 exists")
    assert runtime.resolve_device("auto") == torch.device("cpu")
    err = capsys.readouterr().err
    assert "warning: --device auto runs on the CPU" in err and "/dev/nvidia0" in err
    assert "driver" in err and "580.65.06" in err and "--device cpu" in err


def test_auto_device_warning_for_a_cpu_only_torch(monkeypatch, capsys):
    _no_usable_gpu(monkeypatch, None)
    monkeypatch.setattr(runtime, "visible_gpu", lambda: "nvidia-smi is installed")
    runtime.resolve_device("auto")
    err = capsys.readouterr().err
    assert "CPU-only build" in err and "--device cpu" in err


def test_no_warning_without_a_gpu_or_with_an_explicit_cpu(monkeypatch, capsys):
    _no_usable_gpu(monkeypatch, "13.0")
    monkeypatch.setattr(runtime, "visible_gpu", lambda: None)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(runtime, "visible_gpu", lambda: "/dev/nvidia0 exists")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert capsys.readouterr().err == ""


def test_visible_gpu_evidence(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    monkeypatch.setattr(runtime, "Path", lambda p: tmp_path / "absent")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert runtime.visible_gpu() is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert runtime.visible_gpu() == "CUDA_VISIBLE_DEVICES=0,1"
    monkeypatch.setattr(runtime.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert runtime.visible_gpu() == "nvidia-smi is installed"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # GPUs hidden on purpose
    assert runtime.visible_gpu() is None


def test_setup_records_its_process_settings(restore_denormals):
    runtime.setup("cpu", seed=0)
    settings = runtime.recorded_settings()
    assert settings["denormals_flushed"] is True and "allocator_tuned" in settings
    runtime.setup("cpu", seed=0, keep_denormals=True)
    assert runtime.recorded_settings()["denormals_flushed"] is False


def test_environment_records_the_process_settings(monkeypatch):
    from metaplastic.runs import provenance

    monkeypatch.setitem(runtime.SETTINGS, "cpu_int8_products", False)
    monkeypatch.setitem(runtime.SETTINGS, "implementation", "reference: ...")
    env = provenance.environment_summary()
    assert env["cpu_int8_products"] is False and env["implementation"] == "reference: ..."
