"""How long a user waits: `theworld --help` and `theworld ask` against the time Python takes to import torch and
transformers, all in one run on the same machine.

    OMP_NUM_THREADS=1 python benchmarks/startup.py            # 5 rounds
    OMP_NUM_THREADS=1 python benchmarks/startup.py --rounds 3

Each command is a fresh process, timed from start to exit (wall clock), with OMP_NUM_THREADS=1; its CPU time (user +
system) is printed beside, as the steadier figure on a machine shared with other work. The commands take turns
round by round, so a machine that gets busier midway slows all of them alike. Rows:
- `import torch, transformers`: the baseline the target is set against;
- the third-party imports `ask` cannot do without (Gemma 3's model and processor classes from transformers, the
  world encoder's VAE classes from diffusers), so the part of `ask` that TheWorld's own code decides is visible;
- `theworld --help`, and `theworld ask` on the example scene with the shipped model.
"""

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "toyworld_scene.png"
QUESTION = "where will the red shape be after 2 steps?"
BASELINE = "import torch, transformers"
THIRD_PARTY = (
    "import torch, transformers; from transformers import Gemma3ForConditionalGeneration, Gemma3Processor; "
    "from diffusers import AutoencoderKLCosmos, AutoencoderKLWan"
)


def commands() -> dict[str, list[str]]:
    """Each row's name and its command line; `theworld` is the installed script, as a user runs it."""
    script = shutil.which("theworld", path=str(Path(sys.executable).parent))
    theworld = [script] if script else [sys.executable, "-m", "theworld.cli.main"]
    return {
        "import torch, transformers": [sys.executable, "-c", BASELINE],
        "third-party imports of ask": [sys.executable, "-c", THIRD_PARTY],
        "theworld --help": [*theworld, "--help"],
        "theworld ask": [*theworld, "ask", str(EXAMPLE.relative_to(ROOT)), QUESTION],
    }


def seconds(command: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of `command`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Runs of each command (3 to 5 is usual).")
    rounds = parser.parse_args().rounds
    rows = commands()
    for name, command in rows.items():
        print(f"{name}: {shlex.join(command)}")
        seconds(command)  # untimed: the first run after an install also writes bytecode
    walls: dict[str, list[float]] = {name: [] for name in rows}
    cpus: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, command in rows.items():
            wall, cpu = seconds(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    median = {name: statistics.median(runs) for name, runs in walls.items()}
    cpu = {name: statistics.median(runs) for name, runs in cpus.items()}
    print(f"\nseconds, {rounds} runs each, OMP_NUM_THREADS=1")
    print(f"{'':28} {'min':>6} {'median':>7} {'max':>6} {'CPU median':>11}")
    for name, runs in walls.items():
        print(f"{name:28} {min(runs):6.2f} {median[name]:7.2f} {max(runs):6.2f} {cpu[name]:11.2f}")
    baseline, third_party, ask = "import torch, transformers", "third-party imports of ask", "theworld ask"
    print(
        f"\ntheworld ask / import torch, transformers: {median[ask] / median[baseline]:.2f}x "
        f"(CPU {cpu[ask] / cpu[baseline]:.2f}x; target: at most 1.5x)"
    )
    print(
        f"third-party imports of ask / import torch, transformers: {median[third_party] / median[baseline]:.2f}x "
        f"(CPU {cpu[third_party] / cpu[baseline]:.2f}x)"
    )
    print(
        f"theworld ask / its third-party imports: {median[ask] / median[third_party]:.2f}x "
        f"(CPU {cpu[ask] / cpu[third_party]:.2f}x)"
    )


if __name__ == "__main__":
    main()
