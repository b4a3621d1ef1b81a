"""Fake helpdesks on real sockets, for tests, benchmarks and the demo."""
