"""`asyncrpc postgres`'s access options: what is valid, and the pg_hba.conf block they write."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncrpc.postgres.access import (
    HBA_BEGIN,
    HBA_END,
    AccessError,
    open_trust_lines,
    parse_access,
    with_block,
    write_hba,
)

#: What initdb --auth=trust writes (comments cut): loopback only.
INITDB_HBA = """\
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
"""


def test_defaults_listen_on_loopback_and_let_nobody_else_in() -> None:
    access = parse_access(env={})
    assert access.listen_addresses == "127.0.0.1"
    assert (access.allow, access.roles, access.readers) == ((), (), ())
    assert not access.needs_sql


def test_roles_take_their_password_from_the_environment_only() -> None:
    access = parse_access(
        listen=["10.0.0.5", "10.0.0.5", "*"],
        allow=["10.0.0.0/24"],
        roles=["asyncrpc_b=PW_B"],
        readers=["asyncrpc_b"],
        env={"PW_B": "s3cret"},
    )
    assert access.listen_addresses == "10.0.0.5,*"
    [role] = access.roles
    assert (role.name, role.variable, role.password) == ("asyncrpc_b", "PW_B", "s3cret")
    assert "s3cret" not in repr(access)
    assert access.needs_sql


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"listen": ["db.internal"]}, "give an IP address"),
        ({"allow": ["10.0.0.5/24"]}, "CIDR form"),
        ({"allow": ["everyone"]}, "CIDR form"),
        ({"roles": ["asyncrpc_b"]}, "NAME=VARIABLE"),
        ({"roles": ["asyncrpc_b=s3cret!"]}, "NAME=VARIABLE"),
        ({"roles": ["Robert'); DROP=PW"]}, "NAME=VARIABLE"),
        ({"roles": ["asyncrpc_b=UNSET_VARIABLE"]}, "UNSET_VARIABLE is not set"),
        ({"roles": ["postgres=PW"]}, "choose another name"),
        ({"roles": ["resonate_worker=PW"]}, "choose another name"),
        ({"readers": ["a b"]}, "role name"),
    ],
)
def test_a_bad_option_says_what_is_valid(options: dict[str, list[str]], says: str) -> None:
    with pytest.raises(AccessError, match=says):
        parse_access(env={"PW": "x"}, **options)


def test_the_block_is_replaced_not_repeated_and_removed_when_nothing_is_allowed() -> None:
    once = with_block(INITDB_HBA, [HBA_BEGIN, "host all all 10.0.0.0/24 scram-sha-256", HBA_END])
    twice = with_block(once, [HBA_BEGIN, "host all all 10.0.1.0/24 scram-sha-256", HBA_END])
    assert once.count(HBA_BEGIN) == twice.count(HBA_BEGIN) == 1
    assert "10.0.0.0/24" not in twice and "10.0.1.0/24 scram-sha-256" in twice
    assert with_block(twice, []) == INITDB_HBA


def test_trust_beyond_loopback_is_found() -> None:
    assert open_trust_lines(INITDB_HBA) == []
    assert open_trust_lines("host all all 10.0.0.0/24 scram-sha-256\n") == []
    for line in (
        "host all all 0.0.0.0/0 trust",
        "hostssl all all 10.0.0.7 255.255.255.255 trust",
        "host all all all trust",
        "host all all samenet trust",
    ):
        assert open_trust_lines(line) == [line], line


def test_write_hba_opens_allowed_networks_with_passwords_and_refuses_an_open_file(
    tmp_path: Path,
) -> None:
    hba = tmp_path / "pg_hba.conf"
    hba.write_text(INITDB_HBA)
    write_hba(tmp_path, parse_access(allow=["10.77.0.0/24"], env={}))
    assert "host all all 10.77.0.0/24 scram-sha-256" in hba.read_text()

    hba.write_text(INITDB_HBA + "host all all 0.0.0.0/0 trust\n")
    with pytest.raises(AccessError, match="without a password"):
        write_hba(tmp_path, parse_access(env={}))
