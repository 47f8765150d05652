"""Pieces that tests, benchmarks and the product share: throwaway services to run against."""
