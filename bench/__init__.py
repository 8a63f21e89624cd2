"""Benchmarks, one subcommand each: python -m bench <subcommand> (see bench/__main__.py)."""
