"""The package's `__all__` lists exactly what it exports."""

from __future__ import annotations

import types

import pytest

import turnstream.engine
import turnstream.protocol
import turnstream.sse


@pytest.mark.parametrize("module", [turnstream.protocol, turnstream.engine, turnstream.sse])
def test_all_names_every_public_attribute_and_only_existing_ones(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", module.__name__).startswith("turnstream")
        and name != "annotations"
    }
    exported = set(module.__all__)
    assert exported <= set(vars(module))
    assert public <= exported


def test_all_has_no_duplicates() -> None:
    for module in (turnstream.protocol, turnstream.engine, turnstream.sse):
        assert len(module.__all__) == len(set(module.__all__))
