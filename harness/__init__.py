"""Pieces that the tests and the benchmarks share: throwaway services to run against.

Not part of the asyncrpc package (the wheel ships asyncrpc/ alone): pytest
(``pythonpath = ["."]``) and ``python -m benchmarks`` find it in the repository.
"""
