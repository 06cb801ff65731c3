"""Benchmarks (not tests): run them as modules, e.g. `python -m bench.ledger_chain`."""
