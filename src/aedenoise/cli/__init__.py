"""Command-line entry point: ``aedenoise <command> ...``.

Each command lives in its own small module with ``add_parser(subparsers)``;
the work happens in the library. User errors print one line and exit 1
(``--debug`` shows the traceback). The top of the house: may import any layer, and
nothing in the library imports it. Library imports sit inside the commands, so
``aedenoise --help`` starts without loading torch.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import import_module

from aedenoise.errors import AedenoiseError
from aedenoise.version import __version__

COMMANDS = ("train", "adapt", "evaluate", "denoise", "report", "models", "demo", "export", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aedenoise", description="Image denoising with convolutional autoencoders.")
    parser.add_argument("--version", action="version", version=f"aedenoise {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"aedenoise.cli.{name}").add_parser(sub)
    return parser


_default_format = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings this package raises for the user (they name the file) as one plain line; others as Python shows them."""
    if category.__module__.startswith("aedenoise"):
        return f"aedenoise: warning: {message}\n"
    return _default_format(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.formatwarning = _format_warning
            return int(args.func(args) or 0)
    except AedenoiseError as err:
        if args.debug:
            raise
        print(f"aedenoise: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aedenoise: interrupted", file=sys.stderr)
        return 130
