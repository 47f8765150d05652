"""Hosts on one machine: Linux network namespaces on a private bridge, for multi-host tests.

:class:`Lan` makes one namespace per host, each with one interface (``eth0``)
and an address in a private range, plus a *switch* namespace holding the
bridge that joins them. Nothing is created in the namespace the test runs in:
every link is made directly between a host's namespace and the switch's
(``ip link add eth0 netns HOST type veth peer name PEER netns SWITCH``), so
traffic goes only between namespaces made here, and no outside address is
ever reached.

:meth:`Lan.cut` takes a host's port off the bridge: its packets go nowhere
and no reset comes back, as when a cable is pulled or a firewall drops a
link; :meth:`Lan.mend` puts it back. :meth:`Lan.close` deletes every
namespace (and with them every link and the bridge); it is safe to call after
a partial set-up, and the names are unique per run, so a failed run leaves
nothing another can trip over.

Needs root and ``ip netns``: :func:`unavailable` says why not, for a skip.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

#: The bridge's name inside the switch namespace.
BRIDGE = "br0"
#: The interface each host has.
HOST_DEVICE = "eth0"
NETNS_DIR = "/var/run/netns"


class LanError(RuntimeError):
    """An ``ip`` command failed; the message has its output."""


def ip(*args: str) -> None:
    """Run ``ip ARGS``; :class:`LanError` with its output when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise LanError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"arpc{secrets.token_hex(3)}-probe"
    try:
        ip("netns", "add", probe)
    except LanError as error:
        return f"`ip netns add` fails here: {error}"
    with contextlib.suppress(LanError):
        ip("netns", "del", probe)
    return None


@dataclass
class Host:
    """One namespace on the LAN: its name, its address, and its port on the switch."""

    name: str
    namespace: str
    address: str
    port: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Lan:
    """Hosts joined by a bridge, in a /24 of a private range (``10.77.0.0/24`` by default)."""

    prefix: str = field(default_factory=lambda: f"arpc{secrets.token_hex(3)}")
    network: str = "10.77.0"
    hosts: dict[str, Host] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def cidr(self) -> str:
        return f"{self.network}.0/24"

    def _namespace(self, name: str) -> str:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def build(self, names: list[str]) -> Lan:
        """The switch and one host per name (addresses .1, .2, ... in that order)."""
        self._namespace(self.switch)
        ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.switch, "link", "set", BRIDGE, "up")
        for number, name in enumerate(names, start=1):
            namespace = self._namespace(f"{self.prefix}-{name}")
            host = Host(name, namespace, f"{self.network}.{number}", f"p{number}")
            ip(
                *("link", "add", HOST_DEVICE, "netns", namespace, "type", "veth"),
                *("peer", "name", host.port, "netns", self.switch),
            )
            ip("-n", self.switch, "link", "set", host.port, "master", BRIDGE)
            ip("-n", self.switch, "link", "set", host.port, "up")
            ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", HOST_DEVICE)
            ip("-n", namespace, "link", "set", HOST_DEVICE, "up")
            self.hosts[name] = host
        return self

    def cut(self, name: str) -> None:
        """Take ``name``'s port off the bridge: its packets are dropped, silently."""
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "nomaster")

    def mend(self, name: str) -> None:
        """Put ``name``'s port back on the bridge."""
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "master", BRIDGE)

    def close(self) -> list[str]:
        """Delete every namespace made here (hosts first, then the switch); what failed."""
        failed = []
        for namespace in reversed(self._made):
            try:
                ip("netns", "del", namespace)
            except LanError as error:
                failed.append(str(error))
        self._made.clear()
        return failed

    def remaining(self) -> list[str]:
        """Namespaces of this LAN that still exist (none after :meth:`close`)."""
        if not os.path.isdir(NETNS_DIR):
            return []
        return [name for name in os.listdir(NETNS_DIR) if name.startswith(f"{self.prefix}-")]


def in_namespace(host: Host) -> concurrent.futures.ThreadPoolExecutor:
    """A one-thread executor whose thread lives in ``host``'s network namespace.

    A namespace belongs to a thread: sockets the thread opens (an HTTP probe
    of the gateway, say) are the host's, at no cost of a process per probe.
    """

    def enter() -> None:
        with open(os.path.join(NETNS_DIR, host.namespace)) as handle:
            os.setns(handle.fileno(), os.CLONE_NEWNET)

    return concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=enter)


def run_in(executor: concurrent.futures.ThreadPoolExecutor, call: Callable[[], object]) -> object:
    """``call()`` on the executor's thread, waiting for its result."""
    return executor.submit(call).result(timeout=60)
