"""The web dashboard: the running system drawn live in a browser, and driven from it.

The supervisor process serves it next to its control server (:mod:`.serve`):
the replicas come straight from the :class:`~asyncrpc.supervise.supervisor.Supervisor`,
invocations and call graphs from :mod:`asyncrpc.invocations`, log tails from
:mod:`asyncrpc.supervise.log_files`, flow calls from :mod:`asyncrpc.ops.call`,
and the crash demo is `asyncrpc demo crash` run as a child (:mod:`.demo_run`).
The page (``static/``) is plain HTML, CSS and JavaScript shipped in the package,
so it works offline.
"""
