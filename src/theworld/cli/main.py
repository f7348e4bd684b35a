"""The `theworld` command: a thin typer app; each subcommand lives in its own module.

A subcommand's module imports only typer, the standard library and `theworld.cli.common` at its top, and the
library (torch, transformers, the model) inside the command, so `--help` and bad options answer at once;
tests/test_startup.py checks every registered command.
"""

import typer

from theworld.cli.ask import ask
from theworld.cli.chat import chat
from theworld.cli.evaluate import evaluate
from theworld.cli.serve import serve
from theworld.cli.train import train
from theworld.cli.world import world

app = typer.Typer(
    name="theworld",
    help="World-aware multimodal inference: ask, chat, generate worlds, train and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help wraps long option names at 80 columns where rich's table cuts them
)
app.command("ask")(ask)
app.command("chat")(chat)
app.command("train")(train)
app.command("eval")(evaluate)
app.command("world")(world)
app.command("serve")(serve)

if __name__ == "__main__":
    app()
