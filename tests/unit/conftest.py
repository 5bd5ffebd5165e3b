"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from itchflow import extensions


@pytest.fixture(params=["python", "native"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once on the pure-Python order book and normalizer and once on their C twins
    (``ITCHFLOW_NATIVE``, see :mod:`itchflow.extensions`). The C code must be built: `./dev setup`."""
    if request.param == "native":
        missing = [e.target.name for e in extensions.EXTENSIONS if not e.target.exists()]
        if missing:
            pytest.fail(f"{', '.join(missing)} not built: run `./dev setup` (needs gcc)")
    monkeypatch.setenv("ITCHFLOW_NATIVE", request.param)
    return str(request.param)
