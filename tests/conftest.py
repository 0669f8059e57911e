"""Test session fixtures: one real embedded stack (SeaweedFS + tansu + registry) on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import Settings
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from schemas.codec import EventCodec
from streams.codec_factory import make_codec


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The embedded stack, started once for the session on free loopback ports."""
    data_dir = tmp_path_factory.mktemp("rlsizer-stack")
    with EmbeddedStack(data_dir, ports=StackPorts.free()) as running:
        yield running


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
def codec(settings: Settings) -> EventCodec:
    """The event codec on the stack's schema registry."""
    return make_codec(settings)
