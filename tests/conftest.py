"""Shared test fixtures."""
import pytest


@pytest.fixture(autouse=True)
def _int8_products_default():
    """runtime.setup decides per machine whether CPU products run in int8 (a process-wide
    switch); tests that exercise the int8 path must not depend on what an earlier in-process
    run decided, so every test starts from the layers' default (int8 where it applies)."""
    from metaplastic import layers

    saved = layers.TERNARY_INT8["enabled"]
    layers.TERNARY_INT8["enabled"] = True
    yield
    layers.TERNARY_INT8["enabled"] = saved
