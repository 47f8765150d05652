"""What the tests and the benchmarks share: isolated real processes, started and always stopped."""
