"""The Python session manager (sync and asyncio) and ``coordctl session``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from coord_client import AsyncClient, Client
from coord_client.errors import CoordError

from ..session.conftest import assert_clean


def test_sync_session_manager(coord):
    with Client(coord.target) as client:
        new = client.session.create("alice", {"role": b"admin"}, idle=60, absolute=600, label="laptop")
        assert new.token not in repr(new)
        v = client.session.validate(new.token, attributes=["role"])
        assert v and v.session is not None and v.session.attributes == {"role": b"admin"}
        assert v.session.label == "laptop" and v.session.subject == "alice"
        assert (v.session.absolute_expire_time - v.session.create_time).total_seconds() == 600
        u = client.session.update(new.token, set={"cart": b"[]"}, increment={"visits": 2})
        assert u and u.version == 2 and u.increments == {"visits": 2}
        stale = client.session.update(new.token, remove=["cart"], if_version=1)
        assert not stale and stale.conflict_version == 2
        rotated = client.session.rotate(new.token, grace=30)
        assert rotated and rotated.token and rotated.token != new.token
        assert client.session.validate(new.token)  # inside the grace
        assert (
            not client.session.rotate(new.token) and client.session.rotate(new.token).reason == "superseded"
        )
        other = client.session.create("alice")
        assert [s.session_id for s in client.session.iter_sessions("alice", page_size=1)] == [
            new.session.session_id,
            other.session.session_id,
        ]
        assert client.session.revoke_all("alice", except_session_id=other.session.session_id) == 1
        assert client.session.validate(rotated.token).reason == "revoked"
        assert client.session.revoke(other.token)
        assert not client.session.revoke(session_id=other.session.session_id)
        with pytest.raises(CoordError) as caught:
            client.session.validate("not-a-token")
        assert caught.value.reason == "SESSION_TOKEN_MALFORMED"
        with pytest.raises(ValueError):
            client.session.revoke()
        assert_clean(coord, [new.token, rotated.token, other.token])


def test_async_session_manager(coord):
    async def main() -> None:
        async with AsyncClient(coord.target) as client:
            new = await client.session.create("bob", {"n": b"1"}, max_sessions=1, on_limit="evict_oldest")
            newer = await client.session.create("bob", max_sessions=1, on_limit="evict_oldest")
            assert newer.evicted_session_ids == [new.session.session_id]
            assert (await client.session.validate(new.token)).reason == "evicted"
            results = await asyncio.gather(
                *(client.session.update(newer.token, set={f"k{i}": b"v"}) for i in range(20))
            )
            assert all(results)
            v = await client.session.validate(newer.token, attributes="*")
            assert v.session is not None and len(v.session.attributes) == 20
            rotated = await client.session.rotate(newer.token)
            assert rotated.token
            assert await client.session.validate(newer.token)  # the server's default grace
            login = await client.session.rotate_on_login(rotated.token)
            assert (await client.session.validate(rotated.token)).reason == "superseded"  # no grace
            rotated = login
            assert [s.session_id async for s in client.session.iter_sessions("bob")] == [
                newer.session.session_id
            ]
            assert (await client.session.list("bob")).next_page_token == ""
            assert await client.session.revoke(rotated.token)
            assert await client.session.revoke_all("bob") == 0

    asyncio.run(main())


def _ctl(target: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", "--target", target, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


def test_coordctl_session_commands(coord_single):
    target = coord_single.target
    made = _ctl(
        target, "session", "create", "carol", "--idle", "10m", "--attr", "role=admin", "--label", "cli"
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cs1_") and "not shown again" in made.stderr
    second = _ctl(target, "--json", "session", "create", "carol")
    data = json.loads(second.stdout)
    assert data["token"].startswith("cs1_") and data["session"]["subject"] == "carol"

    valid = _ctl(target, "session", "validate", "-", "--attr", "*", "--touch", stdin=token + "\n")
    assert valid.returncode == 0, valid.stderr
    assert "valid: carol" in valid.stdout and "role=admin" in valid.stdout

    listed = _ctl(target, "--json", "session", "list", "carol")
    ids = [s["session_id"] for s in json.loads(listed.stdout)["sessions"]]
    assert len(ids) == 2 and ids[1] == data["session"]["session_id"]

    assert _ctl(target, "session", "revoke", "-", stdin=token).returncode == 0
    again = _ctl(target, "session", "validate", token)
    assert again.returncode == 1 and "revoked" in again.stderr
    assert _ctl(target, "session", "revoke", token).returncode == 1

    everyone = _ctl(target, "--json", "session", "revoke-all", "carol", "--except", ids[0])
    assert json.loads(everyone.stdout) == {"revoked_count": 1}
    bad = _ctl(target, "session", "validate", "nonsense")
    assert bad.returncode == 2 and "SESSION_TOKEN_MALFORMED" in bad.stderr
    assert _ctl(target, "session", "revoke", "--id", data["session"]["session_id"]).returncode == 1
