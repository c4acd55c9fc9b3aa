"""``aedenoise models``: list architectures (and shipped weights)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model architectures and shipped weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aedenoise.models import list_models, model_entry

    print("Architectures (aedenoise train --model NAME):")
    for name in list_models():
        print(f"  {name:<16} {model_entry(name).description}")
    return 0
