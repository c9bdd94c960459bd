"""Shared test fixtures."""
import pytest


@pytest.fixture(autouse=True)
def _process_settings_restored():
    """metaplastic.fast.enable (the one --impl switch) records its choice in runtime.SETTINGS,
    which config.json's environment reports; a test's choice must not leak into later tests.
    (Tests that fake runtime's measurements do it with monkeypatch, which undoes itself; real
    measurements stay cached for the process, as in a run.)"""
    from metaplastic import runtime

    settings = dict(runtime.SETTINGS)
    yield
    runtime.SETTINGS.clear()
    runtime.SETTINGS.update(settings)
