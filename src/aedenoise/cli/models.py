"""``aedenoise models``: what can be trained, what ships ready to use, and the photo defaults.

Four sections on stdout: the registered architectures (``aedenoise train --model``),
the shipped weights with their channels, task, default marker, description and model
card (``aedenoise denoise --model``, ``aedenoise evaluate --method``), the photo
defaults for gray and color images (``aedenoise denoise`` without ``--model``,
``aedenoise evaluate --method auto``), saying plainly when one is not installed, and
the classical methods.
"""

from __future__ import annotations

import argparse

KINDS = {1: "gray", 3: "color"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model architectures, shipped weights and the photo defaults",
                       description="List the model architectures, the shipped weights (with the default photo "
                                   "denoisers) and the classical methods.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("\n".join(listing()))
    return 0


def listing() -> list[str]:
    """The lines ``aedenoise models`` prints."""
    from aedenoise.classical import list_baselines
    from aedenoise.errors import ConfigError
    from aedenoise.models import list_models, model_entry
    from aedenoise.pretrained import default_pretrained, list_pretrained, pretrained_weights

    lines = ["Architectures (aedenoise train --model NAME):"]
    lines += [f"  {name:<16} {model_entry(name).description}" for name in list_models()]

    lines += ["", "Shipped weights (aedenoise denoise --model NAME, aedenoise evaluate --method NAME):"]
    names = list_pretrained()
    if not names:
        lines.append("  none installed")
    for name in names:
        w = pretrained_weights(name)
        kind = KINDS.get(w.channels, f"{w.channels}-channel")
        marker = f"  [default for {kind} photos]" if w.default_for_photos else ""
        lines += [f"  {name:<16} {w.channels} channel(s) ({kind}), task {w.task}{marker}",
                  f"  {'':<16} {w.description}",
                  f"  {'':<16} model card: {w.card_path}"]

    lines += ["", "Photo defaults (aedenoise denoise without --model; aedenoise evaluate --method auto):"]
    for channels, kind in KINDS.items():
        try:
            lines.append(f"  {kind:<6} {default_pretrained(channels)}")
        except ConfigError:
            lines.append(f"  {kind:<6} none installed ({kind} images need 'aedenoise denoise --model'; "
                         f"'aedenoise evaluate --method auto' cannot run on {kind} data)")

    lines += ["", "Classical methods (aedenoise denoise --model NAME, aedenoise evaluate --method NAME):",
              "  " + ", ".join(list_baselines())]
    return lines
