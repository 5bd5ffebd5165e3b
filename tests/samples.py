"""The real ITCH 5.0 samples the tests read (``data/itch`` of the shared folder beside the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "itch"
"""Where the samples live: ``../shared/data/itch`` from the project root."""


def sample(name: str = "") -> Path:
    """The sample ``name`` (or the folder); a test that needs a missing sample fails and says why."""
    path = SAMPLES_DIR / name if name else SAMPLES_DIR
    if not path.exists():
        pytest.fail(
            f"ITCH sample {path} not found: the tests read real samples from ../shared/data/itch "
            "beside the project root (clone the project next to the shared folder)",
            pytrace=False,
        )
    return path


class _Samples:
    """``SAMPLES / name``: the path of a sample, failing the test clearly when it is missing."""

    def __truediv__(self, name: str) -> Path:
        return sample(name)


SAMPLES = _Samples()
