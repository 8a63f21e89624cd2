"""The benchmark tool: ``python -m bench <subcommand> [options]`` from the repository root.

Each subcommand is a module of this package with ``add_arguments(parser)`` and ``main(args)``,
listed in ``bench.__main__.COMMANDS``; ``bench.common`` holds what they share. The results
they produced, each under the command that reproduces it, are in docs/benchmarks.md.
"""
