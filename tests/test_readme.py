"""The README's Python example runs as written, on the shipped default model."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    example = next(block for block in blocks if "DEFAULT_MODEL" in block)
    monkeypatch.chdir(ROOT)
    exec(compile(example, "README.md", "exec"), {})
    answers = capsys.readouterr().out.strip().splitlines()
    assert len(answers) == 2 and all(answers)
