"""The flows' functions in one process, for fast unit tests (see :mod:`harness.in_process`)."""

from harness.in_process import in_process

__all__ = ["in_process"]
