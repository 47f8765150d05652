"""A worker node: one Resonate process in its group, running one durable function.

One of the processes of the running system, beside the server, Postgres and the
gateway: it builds on the lesson (which function, which group) and the network
transports, and knows nothing of the supervisor that starts it.

- :mod:`.worker`: join the server, register the node's function, print the ready line, run.
- :mod:`.log_output`: its log lines, as every process writes them, for less CPU per line.
"""
