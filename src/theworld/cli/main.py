"""The `theworld` command: a thin typer app; each subcommand lives in its own module."""

import typer

app = typer.Typer(
    name="theworld",
    help="World-aware multimodal inference: ask, chat, generate worlds, train and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
