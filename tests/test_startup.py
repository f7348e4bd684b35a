"""No command makes a user wait for nothing: `--help` imports no torch, transformers or diffusers, help reads whole
at 80 columns, and the lazy package still registers TheWorld with the Auto classes on first use.

benchmarks/startup.py measures the times themselves (docs/performance.md); these tests pin what decides them."""

import os
import re
import subprocess
import sys

import pytest
from transformers import AutoConfig
from typer.testing import CliRunner

import theworld
from theworld.cli.main import app

HEAVY = ("torch", "transformers", "diffusers")
COMMANDS = [command.name for command in app.registered_commands]


def run_python(code: str) -> str:
    """`code` in a fresh interpreter (this one imported torch long ago); its stdout, or the test fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_help_imports_no_torch_transformers_or_diffusers() -> None:
    """Every registered command, so a new one (`serve`) is checked as soon as main.py adds it."""
    heavy = run_python(
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from theworld.cli.main import app\n"
        f"for args in [['--help'], *[[name, '--help'] for name in {COMMANDS!r}]]:\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0 and 'Usage' in result.output, (args, result.output)\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))"
    )
    assert heavy == "[]", f"`theworld ... --help` imported {heavy}: import them inside the command instead"


def test_import_theworld_is_lazy() -> None:
    assert run_python(f"import sys, theworld; print(sorted(n for n in {HEAVY!r} if n in sys.modules))") == "[]"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_reads_whole_at_80_columns(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"] if command else ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    assert max(map(len, result.output.splitlines())) <= 80, result.output


def test_chat_help_names_every_spelling_of_its_options() -> None:
    """The infer_chat spellings (`--ckpt_dir`, `--audio_in`, `--audio_out`) work, so help shows them whole."""
    shown = set(re.findall(r"--[\w-]+", CliRunner().invoke(app, ["chat", "--help"], env={"COLUMNS": "80"}).output))
    assert {"--model", "--ckpt-dir", "--ckpt_dir", "--audio-in", "--audio_in", "--audio-out", "--audio_out"} <= shown


def test_train_help_states_the_shipped_recipes_own_defaults() -> None:
    """`theworld train`'s overrides default to None (the recipe decides), so their help spells the recipe's values:
    importing the settings there would import torch. This keeps the words and the recipe from drifting apart."""
    from theworld.modeling.presets import PRESETS
    from theworld.training.settings import SETTINGS

    recipe = SETTINGS["full"]
    output = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    help_text = " ".join(re.sub("[\u2502\u256d\u256e\u2570\u256f\u2500]", " ", output).split())
    assert f"world steps ({PRESETS[recipe.preset]['world']['num_world_steps']})" in help_text
    assert f"faded motion trails ({recipe.vae_trail_weight:g})" in help_text
    assert f"{recipe.vae_init} (its own, as the shipped model)" in help_text
    assert recipe.asked_facts and "(the shipped model has them)" in help_text


@pytest.mark.slow
def test_first_public_name_registers_the_auto_classes() -> None:
    """The README's order: `import theworld`, then `theworld.DEFAULT_MODEL` through the Auto classes."""
    loaded = run_python(
        "import theworld\n"
        "from transformers import AutoConfig, AutoProcessor\n"
        "path = theworld.DEFAULT_MODEL\n"
        "print(type(AutoConfig.from_pretrained(path)).__name__, type(AutoProcessor.from_pretrained(path)).__name__,"
        " type(AutoConfig.from_pretrained(path + '/talker')).__name__)"
    )
    assert loaded == "TheWorldConfig TheWorldProcessor TalkerConfig"


@pytest.mark.slow
def test_importing_the_model_package_registers_the_auto_classes() -> None:
    """`from theworld.modeling import ...` alone (no `theworld.<name>` access) is enough for the Auto classes."""
    loaded = run_python(
        "from theworld.modeling import DEFAULT_MODEL\n"
        "from transformers import AutoConfig, AutoProcessor\n"
        "print(type(AutoConfig.from_pretrained(DEFAULT_MODEL)).__name__,"
        " type(AutoProcessor.from_pretrained(DEFAULT_MODEL)).__name__)"
    )
    assert loaded == "TheWorldConfig TheWorldProcessor"


def test_register_is_public_and_idempotent() -> None:
    theworld.register()
    theworld.register()
    assert type(AutoConfig.for_model("theworld")).__name__ == "TheWorldConfig"
    assert "register" in theworld.__all__ and "TheWorld" in dir(theworld)
