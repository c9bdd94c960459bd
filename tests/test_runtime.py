"""Process-wide runtime settings: float32 precision, subnormal flushing, devices."""
import pytest
import torch

from metaplastic import runtime
from metaplastic.errors import ConfigError


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
