"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from itchflow.book import native


@pytest.fixture(params=["python", "native"])
def book_implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once with the order-book stage on the Python book and once on the C book
    (``ITCHFLOW_BOOK``, see :mod:`itchflow.book.native`). The C book must be built: `./dev setup`."""
    if request.param == "native" and not native.AVAILABLE:
        pytest.fail(f"the C book {native.TARGET.name} is not built: run `./dev setup` (needs gcc)")
    monkeypatch.setenv("ITCHFLOW_BOOK", request.param)
    return str(request.param)
