"""Which provider answers which public model name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from turnstream.protocol.errors import model_not_found
from turnstream.providers.base import Provider

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """Public model names mapped to providers. There is no fallback model: an
    unknown name is a 400 `model_not_found`, as on OpenAI."""

    def __init__(self, providers: Iterable[Provider], *, created_at: int = 0) -> None:
        self._providers: list[Provider] = list(providers)
        self._by_name: dict[str, Provider] = {}
        self.created_at = created_at
        for provider in self._providers:
            for name in provider.models():
                # the first provider to claim a name keeps it, so explicit
                # configuration listed first overrides the built-in defaults
                self._by_name.setdefault(name, provider)

    def get(self, name: str) -> Provider:
        try:
            return self._by_name[name]
        except KeyError:
            raise model_not_found(name) from None

    def names(self) -> Sequence[str]:
        return list(self._by_name)

    @property
    def providers(self) -> Sequence[Provider]:
        return self._providers

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._providers), return_exceptions=True)
