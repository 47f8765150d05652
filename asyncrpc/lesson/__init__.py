"""The lesson: which flows and nodes exist, and the durable functions they run.

What the example teaches, said once. It sits just above protocol and runtime and below
every process, so the server, the gateway, the nodes, the supervisor and the docs checks
all read the same tables and none repeats a name.

- :mod:`.topology`: the one table of flows, nodes, groups and the function each node runs.
- :mod:`.services`: the durable functions of the three flows (read it to learn the API).
"""
