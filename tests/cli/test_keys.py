"""`turnstream keys ...` and `serve`'s refusal to open a network port without keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from turnstream.cli.keys import is_loopback
from turnstream.cli.main import app


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_secret_once_and_list_never_shows_it(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    code, out, _ = _run("keys", "create", "--name", "ci", "--project", "alpha", "--db", db)
    assert code == 0
    secret = out.strip()
    assert secret.startswith("sk-ts-")
    code, listing, _ = _run("keys", "list", "--db", db)
    assert code == 0
    assert "ci" in listing
    assert "alpha" in listing
    assert secret[:12] in listing
    assert secret not in listing
    code, _, err = _run("keys", "create", "--name", "ci", "--db", db)
    assert code == 1
    assert "already exists" in err


@pytest.mark.parametrize("by", ["name", "prefix"])
def test_revoke_by_name_or_prefix(tmp_path: Path, by: str) -> None:
    db = str(tmp_path / "k.db")
    secret = _run("keys", "create", "--name", "ci", "--db", db)[1].strip()
    code, out, _ = _run("keys", "revoke", "ci" if by == "name" else secret[:12], "--db", db)
    assert code == 0
    assert "revoked ci" in out
    assert "revoked" in _run("keys", "list", "--db", db)[1]
    assert _run("keys", "revoke", "ci", "--db", db)[0] == 1


def test_serving_beyond_loopback_without_keys_refuses_and_names_keys_create(
    tmp_path: Path,
) -> None:
    code, _, err = _run("serve", "--host", "0.0.0.0", "--db", str(tmp_path / "s.db"), "--no-local")
    assert code == 2
    assert "turnstream keys create" in err
    assert "--insecure-no-auth" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
