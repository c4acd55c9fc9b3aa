"""``aedenoise denoise``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denoise", help="(not yet implemented)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aedenoise.errors import AedenoiseError

    raise AedenoiseError("'denoise' is not implemented yet")
