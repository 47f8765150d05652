"""How the running system looks on a terminal, drawn with rich.

Above ops and supervise (it draws the records they return) and below the CLI and the
demo that print with it; it decides nothing and starts nothing.

- :mod:`.status_table`: the status table and the replicas' prefixed, coloured output lines.
- :mod:`.call_graph_tree`: a call graph, one line per promise, coloured by state.
- :mod:`.promise_views`: a search's table of promises, and everything about one.
- :mod:`.progress`: which replicas are ready while `up --detach` waits.
"""
