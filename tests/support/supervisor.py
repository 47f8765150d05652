"""A stand-in for `asyncrpc server` / `asyncrpc node`, and plans and runs of a supervisor with it.

The stand-in (FAKE_CHILD, run with `python -c`) takes the same command lines as
`asyncrpc server` / `asyncrpc node`: the server and gateway answer GET /healthz,
worker nodes print the READY_MARKER line. FAKE_FAIL=b makes b exit at start,
FAKE_HANG=a makes a never get ready.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import Plan, ReplicaSpec
from asyncrpc.supervise.supervisor import Supervisor
from harness.isolation import free_port

FAKE_CHILD = r"""
import http.server, os, signal, sys, time
args = sys.argv[1:]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
def opt(name):
    return args[args.index(name) + 1] if name in args else None
name = "server" if args[0] == "server" else args[1]
if name in os.environ.get("FAKE_FAIL", "").split(","):
    print(f"{name}: boom, cannot start", flush=True)
    sys.exit(3)
print(f"{name}: started with {' '.join(args)}", flush=True)
if name in os.environ.get("FAKE_HANG", "").split(","):
    time.sleep(600)
if name in ("server", "gateway"):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
        def log_message(self, *_):
            pass
    server = http.server.HTTPServer(("127.0.0.1", int(opt("--port"))), Health)
    server.serve_forever()
print(f"asyncrpc: ready node={name} id={opt('--id')} delay={opt('--delay')}", flush=True)
while True:
    time.sleep(1)
"""
FAKE_PROGRAM = (sys.executable, "-c", FAKE_CHILD)


def make_plan(run_dir: Path, *workers: ReplicaSpec, **options: object) -> Plan:
    server_port = free_port()
    return Plan(
        run_dir=run_dir,
        server_url=f"http://127.0.0.1:{server_port}",
        embedded_server=True,
        server_port=server_port,
        gateway_port=free_port(),
        replicas=[ReplicaSpec("server"), ReplicaSpec("gateway"), *workers],
        program=FAKE_PROGRAM,
        **options,  # type: ignore[arg-type]
    )


def refs_of(supervisor: Supervisor) -> list[ProcessRef]:
    return [replica.ref for replica in supervisor.replicas.values() if replica.ref is not None]


def run(
    coroutine_factory: Callable[[], Awaitable[None]],
    supervisor: Supervisor,
    reaper: list[ProcessRef],
) -> None:
    async def main() -> None:
        try:
            await coroutine_factory()
        finally:
            reaper.extend(refs_of(supervisor))
            await supervisor.stop_all()

    asyncio.run(main())
