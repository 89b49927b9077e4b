"""Id generation."""

from __future__ import annotations

import re

import pytest

from turnstream.protocol import new_id
from turnstream.protocol.ids import ID_PREFIXES


@pytest.mark.parametrize("prefix", sorted(ID_PREFIXES))
def test_ids_have_the_prefix_and_at_least_32_hex_characters(prefix: str) -> None:
    assert re.fullmatch(rf"{prefix}_[0-9a-f]{{32,}}", new_id(prefix))


def test_ids_do_not_repeat() -> None:
    assert len({new_id("resp") for _ in range(1000)}) == 1000


def test_an_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id("rsp")
