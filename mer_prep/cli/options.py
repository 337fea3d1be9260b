"""The option shapes the commands share, each spelt once: a count with a lower bound, a repeated
value, a choice, a version tag. ``click.option`` with its keywords is what each returns; the
commands keep their own names, defaults and help."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _names(flag: str, dest: str | None) -> tuple[str, ...]:
    return (flag,) if dest is None else (flag, dest)


def count_option(
    flag: str,
    *,
    default: int | None,
    help: str,
    minimum: int = 1,
    maximum: int | None = None,
    metavar: str | None = None,
    dest: str | None = None,
) -> Decorator:
    """A whole number from ``minimum`` (to ``maximum``); its default shown unless None."""
    return click.option(
        *_names(flag, dest),
        type=click.IntRange(min=minimum, max=maximum),
        default=default,
        show_default=default is not None,
        metavar=metavar,
        help=help,
    )


def repeated_option(flag: str, dest: str, *, metavar: str, help: str) -> Decorator:
    """An option given any number of times: a tuple of its values under ``dest``."""
    return click.option(flag, dest, multiple=True, metavar=metavar, help=help)


def choice_option(
    flag: str,
    choices: Sequence[str],
    *,
    help: str | None = None,
    default: str | None = None,
    dest: str | None = None,
    required: bool = False,
) -> Decorator:
    """One of ``choices``; its default shown unless None."""
    return click.option(
        *_names(flag, dest),
        type=click.Choice(list(choices)),
        default=default,
        show_default=default is not None,
        required=required,
        help=help,
    )


def version_option(flag: str = "--version", metavar: str = "V") -> Decorator:
    """A store version tag, the latest when not given (its value goes to ``version``)."""
    return click.option(
        flag,
        "version",
        default=None,
        metavar=metavar,
        help="A version tag (v-...) [default: the latest version].",
    )


def flag_option(flag: str, help: str) -> Decorator:
    """An on/off switch, off unless given."""
    return click.option(flag, is_flag=True, help=help)
