"""One local stack for the integration tests that only need it running (session scope).

The lifecycle test brings up and tears down its own stack; everything else shares this one.
"""

from __future__ import annotations

import pytest

from itchflow.stack.manager import Stack

from .stackutil import stack_config


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory):
    config = stack_config(tmp_path_factory.mktemp("stack-home"), partitions=4)
    stack = Stack(config)
    try:
        stack.up()
        yield config
    finally:
        stack.down()
