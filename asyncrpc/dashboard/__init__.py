"""The web dashboard: the running system drawn live in a browser, and driven from it.

The supervisor process serves it next to its control server (:mod:`.serve`):
the replicas come straight from the :class:`~asyncrpc.supervise.supervisor.Supervisor`,
invocations and call graphs from :mod:`asyncrpc.readers.server_reader`, log tails from
:mod:`asyncrpc.supervise.log_files`, flow calls from :mod:`asyncrpc.ops.call`,
and the crash demo is `asyncrpc demo crash` run as a child (:mod:`.demo_run`).
The page (``static/``) is plain HTML, CSS and JavaScript shipped in the package,
so it works offline: ``common.js`` (the API, the one clock), ``graph.js`` (the call graph
and its tree), ``timeline.js``, ``promises.js`` (the browser and the detail),
``overview.js`` and ``app.js``, which puts them together.

It is a front end, beside the demo: above ops and supervise, whose functions its
buttons call, and below the CLI and the entry points, which hand
:func:`.serve.open_dashboard` to the supervisor process they run.

- :mod:`.serve`: serving it in the supervisor process, next to the control server.
- :mod:`.app`: the page, its JSON API and its event feed (a FastAPI app).
- :mod:`.access`: who may use it: this machine's browser, and with a token, who knows it.
- :mod:`.events`: the live feed: one server-sent event per source, sent when it changes.
- :mod:`.invocation_json`: the invocations it lists and the call graph it draws, as JSON.
- :mod:`.promise_json`: the promise browser's pages, a promise's detail (why it waits), the
  overview, as JSON.
- :mod:`.demo_run`: the crash demo started from the page, as a child, its output kept.
"""
