"""Who may reach the `postgres` node, and as whom: listen addresses, pg_hba.conf and login roles.

A fresh data directory trusts loopback only (initdb's ``trust`` for
127.0.0.1 and ::1): right for one machine, closed to every other. To serve
nodes on other hosts, `asyncrpc postgres` takes:

- ``--listen ADDR`` (repeatable): the addresses Postgres listens on
  (``listen_addresses``), 127.0.0.1 unless given;
- ``--allow CIDR`` (repeatable): networks whose clients may log in, each with
  a password checked by ``scram-sha-256``. The lines go in a block of
  ``pg_hba.conf`` that every start rewrites (:data:`HBA_BEGIN` to
  :data:`HBA_END`); Postgres is refused a start while any line of the file
  trusts a non-loopback address without a password;
- ``--role NAME=VARIABLE`` (repeatable): a login role, member of
  ``resonate_worker``, whose password is read from the environment variable
  ``VARIABLE``. Only the variable's name is on the command line (which any
  local user can read); the password goes to Postgres as a SCRAM verifier
  computed here, never as text;
- ``--reader NAME`` (repeatable): a role that may ``SELECT`` from
  ``resonate.promises`` (the call graph: ``tree``, the gateway's ``/graph``,
  the detached chain's result).

Parsing is here and pure; :mod:`asyncrpc.postgres.local` applies it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

#: Where Postgres listens unless told otherwise.
LOOPBACK = "127.0.0.1"
HBA_FILE = "pg_hba.conf"
HBA_BEGIN = "# asyncrpc: begin. Written by `asyncrpc postgres --allow`; every start rewrites it."
HBA_END = "# asyncrpc: end"
#: The one method for clients that are not on loopback.
NETWORK_METHOD = "scram-sha-256"
#: The role resonate.sql creates with the wire entry points.
WORKER_ROLE = "resonate_worker"

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AccessError(ValueError):
    """An access option is not valid, or the data directory would be open; says what to do."""


@dataclass(frozen=True)
class Role:
    """A login role for one service: its name and its password (read from ``variable``)."""

    name: str
    variable: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Access:
    """Where Postgres listens, which networks may log in, and the roles to create."""

    listen: tuple[str, ...] = (LOOPBACK,)
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    roles: tuple[Role, ...] = ()
    readers: tuple[str, ...] = ()

    @property
    def listen_addresses(self) -> str:
        """The value of Postgres's ``listen_addresses``."""
        return ",".join(self.listen)

    @property
    def needs_sql(self) -> bool:
        """Whether applying this needs statements run in the database (roles, grants)."""
        return bool(self.roles or self.readers)


def parse_listen(values: Iterable[str]) -> tuple[str, ...]:
    """``--listen`` values: IP addresses, or ``*`` for every address; 127.0.0.1 when none."""
    found: list[str] = []
    for value in values:
        if value != "*":
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                raise AccessError(
                    f"--listen {value!r} is not valid: give an IP address of this machine "
                    "(e.g. 10.0.0.5), or '*' for all of them"
                ) from None
        if value not in found:
            found.append(value)
    return tuple(found) or (LOOPBACK,)


def parse_allow(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``--allow`` values: networks in CIDR form (10.0.0.0/24, or one host as 10.0.0.7/32)."""
    networks = []
    for value in values:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as error:
            raise AccessError(
                f"--allow {value!r} is not valid ({error}): give a network in CIDR form, "
                "e.g. 10.0.0.0/24, or one host as 10.0.0.7/32"
            ) from None
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_role(value: str, env: Mapping[str, str]) -> Role:
    """``--role NAME=VARIABLE``: the role, with the password from the environment variable."""
    name, sep, variable = value.partition("=")
    if not sep or not _ROLE_NAME.fullmatch(name) or not _VARIABLE.fullmatch(variable):
        raise AccessError(
            f"--role {value!r} is not valid: give NAME=VARIABLE, a role name (lower-case "
            "letters, digits, '_') and the environment variable that holds its password, "
            "e.g. --role asyncrpc_b=ASYNCRPC_B_PASSWORD (never the password itself)"
        )
    if name in ("postgres", WORKER_ROLE) or name.startswith("pg_"):
        raise AccessError(
            f"--role {name}: that role belongs to Postgres or resonate.sql; choose another name"
        )
    password = env.get(variable, "")
    if not password:
        raise AccessError(
            f"--role {name}={variable}: the environment variable {variable} is not set (or "
            f"empty); export the password for {name} in it first"
        )
    return Role(name, variable, password)


def parse_reader(value: str) -> str:
    """``--reader NAME``: a role name."""
    if not _ROLE_NAME.fullmatch(value):
        raise AccessError(
            f"--reader {value!r} is not valid: give a role name (lower-case letters, digits, '_')"
        )
    return value


def parse_access(
    *,
    listen: Iterable[str] = (),
    allow: Iterable[str] = (),
    roles: Iterable[str] = (),
    readers: Iterable[str] = (),
    env: Mapping[str, str],
) -> Access:
    """Every access option, checked; :class:`AccessError` says what is wrong."""
    return Access(
        listen=parse_listen(listen),
        allow=parse_allow(allow),
        roles=tuple(parse_role(value, env) for value in roles),
        readers=tuple(dict.fromkeys(parse_reader(value) for value in readers)),
    )


# -- pg_hba.conf ---------------------------------------------------------------


def hba_block(allow: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> list[str]:
    """The lines this project owns in pg_hba.conf: one password login per allowed network."""
    lines = [f"host all all {network} {NETWORK_METHOD}" for network in allow]
    return [HBA_BEGIN, *lines, HBA_END] if lines else []


def with_block(text: str, block: list[str]) -> str:
    """``text`` (a pg_hba.conf) with this project's block replaced by ``block``."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == HBA_BEGIN:
            inside = True
        elif inside and line.strip() == HBA_END:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join([*kept, "", *block] if block else kept) + "\n"


def open_trust_lines(text: str) -> list[str]:
    """Lines of a pg_hba.conf that let a non-loopback client in without a password.

    A ``host*`` line reads ``DATABASE USER ADDRESS METHOD`` or, with a bare IP,
    ``DATABASE USER IP MASK METHOD``; ``samehost`` is this machine's own addresses.
    """
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 5 or not fields[0].startswith("host"):
            continue
        address, rest = fields[3], fields[4:]
        mask = None
        if "/" not in address and _ip(address) and rest and _ip(rest[0]):
            mask, rest = rest[0], rest[1:]
        if not rest or rest[0] != "trust" or address == "samehost":
            continue
        if not _is_loopback(address, mask):
            found.append(line.strip())
    return found


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_loopback(address: str, mask: str | None) -> bool:
    """Whether ``address`` (CIDR, IP and mask, or a name) covers loopback only."""
    try:
        if mask is not None:
            network = ipaddress.ip_network(f"{address}/{mask}", strict=False)
        else:
            network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False  # all, samenet, a host name: beyond this machine
    return network.is_loopback


def write_hba(pgdata: Path, access: Access) -> None:
    """Rewrite this project's block of ``pgdata``'s pg_hba.conf; refuse an open one."""
    path = pgdata / HBA_FILE
    text = with_block(path.read_text(), hba_block(access.allow))
    open_lines = open_trust_lines(text)
    if open_lines:
        raise AccessError(
            f"{path} lets clients in without a password from beyond this machine: "
            f"{'; '.join(open_lines)}. Change those lines to {NETWORK_METHOD} (or remove "
            "them) and use --allow CIDR instead."
        )
    if text != path.read_text():
        path.write_text(text)


# -- roles -----------------------------------------------------------------------


def apply_roles(conn: psycopg.Connection, access: Access) -> None:
    """Create or update the login roles and grant the readers, as a superuser on ``conn``."""
    from psycopg import sql

    for role in access.roles:
        name = sql.Identifier(role.name)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
        verifier = conn.pgconn.encrypt_password(
            role.password.encode(), role.name.encode(), NETWORK_METHOD.encode()
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(name, sql.Literal(verifier.decode()))
        )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(WORKER_ROLE), name))
    for reader in access.readers:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reader]).fetchone()
        if not exists:
            raise AccessError(
                f"--reader {reader}: there is no such role; create it with --role {reader}=VARIABLE"
            )
        conn.execute(
            sql.SQL("GRANT SELECT ON resonate.promises TO {}").format(sql.Identifier(reader))
        )
