"""Every bad input to a command gets one line naming the problem and the fix, exit status 2, no traceback, and no
file left behind. A row per input: the command line (built in the test's own folder), the exit code, and a
fragment of the message. The rows are grouped by what they exercise; docs/bad-input.md is their table."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from theworld.cli.main import app


@dataclass(frozen=True)
class Row:
    """`args(folder)` is the command line; `prepare(folder)` makes the bad files it names."""

    id: str
    args: Callable[[Path], list[str]]
    fragment: str
    prepare: Callable[[Path], None] = field(default=lambda folder: None)
    exit_code: int = 2


EXAMPLE_IMAGE = str(Path(__file__).resolve().parents[1] / "examples" / "toyworld_scene.png")

# Models that cannot or must not be loaded (filled by the loading work).
LOADING_ROWS: list[Row] = []

# Images, videos and audio that cannot be used, or exceed a bound (filled by the media work).
MEDIA_ROWS: list[Row] = []

# Options, questions, specs and output paths (filled by the command-line work).
COMMAND_ROWS: list[Row] = []

ROWS = LOADING_ROWS + MEDIA_ROWS + COMMAND_ROWS


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_gets_one_clear_line(row: Row, tmp_path: Path, monkeypatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    row.prepare(inputs)
    before = sorted(inputs.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, row.args(inputs))
    output = result.output
    assert result.exit_code == row.exit_code, output
    assert "Traceback" not in output, output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"one error line expected, got: {output!r}"
    assert row.fragment.lower() in errors[0].lower(), output
    left = sorted(path for path in tmp_path.rglob("*") if path.parent != tmp_path or path.name != "inputs")
    assert [path for path in left if path not in before] == [], "a refused command must leave no file behind"
