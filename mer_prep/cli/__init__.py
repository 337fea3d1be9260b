"""`mer-prep` command line. The group and its error handling live here; the commands, by what
they work on, in ``preprocess`` (run, serve, demo, list) and ``stores`` (info, split, audit,
export, verify).

Prefect is imported only by the commands that launch flows, after PREFECT_HOME and the
no-telemetry settings are fixed, so a run never writes outside its own home or phones home.
Every name a command is given (dataset, recipe, label scheme, roots, adapter options) is checked
before Prefect starts. An error prints one line (``error: ...``) and exits with the code of its
class (``mer_prep.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import click

from mer_prep.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, MerPrepError


class _Commands(click.Group):
    """The command group: one line per error, the valid names in ``--help``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MerPrepError as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {_one_line(error)}", err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (`mer-prep info STORE | head`)
            _silence_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)
        except Exception as error:  # a bug: say so in one line, not 90
            if ctx.params.get("debug"):
                raise
            click.echo(
                f"internal error: {type(error).__name__}: {_one_line(error)} (run again "
                f"with --debug for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)

    def format_epilog(self, _ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from mer_prep.datasets import dataset_names
        from mer_prep.labels import schemes
        from mer_prep.recipes import builtin_recipes

        with formatter.section("Names"):
            formatter.write_dl(
                [
                    ("datasets", ", ".join(dataset_names())),
                    ("recipes", ", ".join(sorted(builtin_recipes())) + " (or a recipe YAML file)"),
                    ("label schemes", ", ".join(schemes())),
                ]
            )
        with formatter.section("Exit codes"):
            formatter.write_dl(
                [
                    ("0", "success"),
                    ("1", "nothing processed / leaks found"),
                    ("2", "bad usage or input"),
                    ("3", "store problem"),
                    ("4", "missing server, model file or extra"),
                    ("70", "internal error"),
                    ("130", "cancelled (Ctrl-C, SIGTERM)"),
                    ("141", "output closed early (| head): nothing said"),
                ]
            )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what is still
    buffered for the closed pipe raises nothing more at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _one_line(error: BaseException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mer-prep", prog_name="mer-prep")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def main(debug: bool) -> None:
    """mer-prep: preprocessing pipeline and versioned feature store for micro-expressions."""


# the commands register themselves on ``main``
from mer_prep.cli import (  # noqa: E402,F401
    compare,
    demo,
    preprocess,
    show,
    spot,  # registers `spot`
    spotting,  # registers `score-spots`
    stores,
    train,
)
