"""``openyolox`` command line: one module per sub-command.

Each module in this package defines ``add_parser(subparsers)`` and ``run(args) -> int``.
User errors (:class:`openyolox.errors.OpenYoloxError`, missing files, bad values) print one
line and exit 1; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# sub-command name -> module in this package
COMMANDS = {
    "train": "train",
    "val": "val",
    "val-track": "val_track",
    "predict": "predict",
    "track": "track",
    "export": "export",
    "benchmark": "benchmark",
    "check-data": "check_data",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the hint to --help), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _build_parser(available: dict) -> argparse.ArgumentParser:
    parser = _Parser(prog="openyolox", description="YOLOX object detection")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in available.items():
        module.add_parser(sub)
    return parser


def _available_commands() -> dict:
    found = {}
    for name, mod_name in COMMANDS.items():
        try:
            found[name] = importlib.import_module(f"openyolox.cli.{mod_name}")
        except ModuleNotFoundError as exc:  # command not implemented in this build
            if exc.name != f"openyolox.cli.{mod_name}":
                raise
    return found


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    available = _available_commands()
    parser = _build_parser(available)
    # `openyolox train` with no arguments is the main job: argparse handles it as usual.
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from openyolox.errors import OpenYoloxError, user_message

    try:
        return int(available[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("openyolox: interrupted", file=sys.stderr)
        return 130
    except (OpenYoloxError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as exc:
        if debug:
            raise
        print(f"openyolox {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours, or a library failing where we did not expect it
        if debug:
            raise
        print(f"openyolox {args.command}: internal error: {type(exc).__name__}: {user_message(exc)[:500]} "
              f"(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
