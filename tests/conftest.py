"""Shared test fixtures."""
import pytest


@pytest.fixture(autouse=True)
def _process_settings_restored():
    """metaplastic.fast.enable records the chosen implementation in runtime.SETTINGS (for
    config.json) and runtime caches its int8 measurement per process; tests that fake a
    measurement or a choice must not leak it into later tests."""
    from metaplastic import runtime

    settings, measured = dict(runtime.SETTINGS), dict(runtime._MEASURED)
    yield
    runtime.SETTINGS.clear()
    runtime.SETTINGS.update(settings)
    runtime._MEASURED.clear()
    runtime._MEASURED.update(measured)
