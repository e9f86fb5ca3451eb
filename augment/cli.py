"""The `moon` command line. Each subcommand lives with its package and registers itself here.

Command modules expose `add_commands(subparsers)`, which only declares arguments and sets `func`; heavy imports
(Ray, torch, spaCy models) happen inside the handlers so that `moon --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from augment.core.errors import user_error

# Modules that contribute subcommands, in help order. A module that is missing (a package not installed in this
# runtime) is skipped, so the Airflow image's `moon` still plans and validates without the trainer.
COMMAND_MODULES = (
    "augment.commands",
    "augment.ops.commands",
    "ner.cli",
    "model.cli",
    "model.sweep_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moon",
        description="MOON2.0 co-augmentation: enrich product catalogues into multimodal training shards.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name.split(".")[0]):
                continue
            raise
        module.add_commands(subparsers)
    _verbose_after_the_command(parser)
    return parser


def _verbose_after_the_command(parser: argparse.ArgumentParser) -> None:
    """`-v` is also taken after a command (`moon train ... -v`, `moon ner eval ... -v`): every subcommand's parser
    gets it, with no default of its own, so that `moon -v train ...` keeps working."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():  # aliases share a parser
                if "-v" not in sub._option_string_actions:
                    sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                     help="debug logging (also before the command)")
                _verbose_after_the_command(sub)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `moon plan | head`: the reader left; stop quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        # a mistake in what the user asked for (a path, a config key, an input): one line, no traceback (-v shows it)
        kind = user_error(exc)
        if kind is None and not isinstance(exc, OSError):
            raise
        logging.getLogger("moon").debug("traceback", exc_info=True)
        if kind is None:  # storage that cannot be reached or read (S3 down, a network error, a full disk): one line
            from augment.core.storage import unreachable_hint

            print(f"error: {exc}{unreachable_hint(exc)}", file=sys.stderr)
            return 1
        print(f"{kind}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
