"""CLI subcommands: each module defines ``add_parser(subparsers)`` and ``main(args) -> int``."""
