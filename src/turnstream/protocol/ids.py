"""Opaque wire ids: a short prefix naming the object, then 48 random hex characters.

Clients treat ids as opaque; the prefixes only make logs readable and follow what
OpenAI sends (`resp_`, `msg_`, `fc_`, `call_`, `rs_`, `conv_`). `fco_` (stored
`function_call_output` items) and `item_` (anything else) are our own choice.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["ID_PREFIXES", "new_id"]

ID_PREFIXES: Final = frozenset({"resp", "msg", "fc", "call", "rs", "conv", "fco", "item"})
"""The prefixes `new_id` accepts."""

_RANDOM_BYTES: Final = 24


def new_id(prefix: str) -> str:
    """A fresh id such as `resp_0f3a…` (prefix, underscore, 48 hex characters).

    Args:
        prefix: One of `ID_PREFIXES` (`"resp"`, `"msg"`, `"fc"`, `"call"`, ...).

    Raises:
        ValueError: The prefix is not a known one (a typo would otherwise leak to
            the wire).
    """
    if prefix not in ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}; expected one of {sorted(ID_PREFIXES)}")
    # os.urandom is a CSPRNG and cheaper than secrets.token_hex's extra call layers.
    return f"{prefix}_{os.urandom(_RANDOM_BYTES).hex()}"
