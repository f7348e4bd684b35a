"""Sample specs in Cosmos' formats, validated into `WorldSpec`s.

- Cosmos-Predict2.5: one JSON object per file (`-i a.json b.json 'assets/*.json'`).
- Cosmos-Predict1: a batch JSONL, one `{"visual_input": ..., "prompt": ...}` per line (`--batch-input-path`).

Input paths resolve relative to the spec file. Every problem becomes a one-line `SpecError` naming the
problem and the fix; `load_specs` collects them so that the good samples still run.
"""

from __future__ import annotations

import dataclasses
import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theworld.world.backends import INFERENCE_TYPES

__all__ = [
    "ALLOWED_KEYS",
    "RESOLUTION_PRESETS",
    "SpecBatch",
    "SpecError",
    "WorldSpec",
    "check_overrides",
    "load_specs",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}
RESOLUTION_PRESETS = {"256": (256, 320), "480": (480, 832), "720": (704, 1280)}  # (height, width)
MAX_FRAMES = 2048
ALLOWED_KEYS = (
    "inference_type",
    "name",
    "prompt",
    "negative_prompt",
    "input_path",
    "seed",
    "num_output_frames",
    "num_input_frames",
    "guidance",
    "num_steps",
    "resolution",
    "fps",
    "top_p",
    "temperature",
)


class SpecError(ValueError):
    """A spec that cannot run; `str()` is one line: where, what is wrong, what to do."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


@dataclass(frozen=True)
class WorldSpec:
    """One validated sample. `None` means "not set here": a CLI value or the backend default applies."""

    name: str
    prompt: str
    inference_type: str
    source: str
    input_path: Path | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    num_output_frames: int | None = None
    num_input_frames: int | None = None
    guidance: float | None = None
    num_steps: int | None = None
    resolution: tuple[int, int] | None = None
    fps: int | None = None
    top_p: float | None = None
    temperature: float | None = None

    def with_overrides(self, **overrides: Any) -> WorldSpec:
        """A copy where every override that is not None wins (CLI beats spec)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["input_path"] = str(self.input_path) if self.input_path else None
        out["resolution"] = list(self.resolution) if self.resolution else None
        return out


@dataclass
class SpecBatch:
    specs: list[WorldSpec]
    errors: list[SpecError]


def _int(src: str, key: str, value: Any, lo: int, hi: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(src, f"{key}={value!r} is impossible; {fix}")
    return value


def _float(src: str, key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise SpecError(src, f"{key}={value!r} is out of range; use a number in [{lo}, {hi}]")
    return float(value)


def parse_resolution(src: str, value: Any) -> tuple[int, int]:
    """ "480" / "720" presets, "HxW", or [H, W]; both sides positive multiples of 16."""
    fix = f"use one of {sorted(RESOLUTION_PRESETS)}, 'HxW' or [H, W] with multiples of 16"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if value in RESOLUTION_PRESETS:
            return RESOLUTION_PRESETS[value]
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise SpecError(src, f"resolution={value!r} is not understood; {fix}")
        value = [int(p) for p in parts]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SpecError(src, f"resolution={value!r} is not understood; {fix}")
    height, width = value
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0 or side % 16 or side > 4096:
            raise SpecError(src, f"resolution={list(value)!r} is impossible; {fix} (at most 4096)")
    return height, width


def _check_fields(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate the numeric fields and the resolution that are set (not None) in `raw`."""
    checked: dict[str, Any] = {}
    if raw.get("seed") is not None:
        checked["seed"] = _int(source, "seed", raw["seed"], 0, 2**63 - 1, "use an integer >= 0")
    for key in ("num_output_frames", "num_input_frames"):
        if raw.get(key) is not None:
            checked[key] = _int(source, key, raw[key], 1, MAX_FRAMES, f"use an integer in [1, {MAX_FRAMES}]")
    if raw.get("num_steps") is not None:
        checked["num_steps"] = _int(source, "num_steps", raw["num_steps"], 1, 1000, "use 1..1000 steps")
    if raw.get("fps") is not None:
        checked["fps"] = _int(source, "fps", raw["fps"], 1, 240, "use an integer fps in [1, 240]")
    if raw.get("guidance") is not None:
        checked["guidance"] = _float(source, "guidance", raw["guidance"], 0.0, 100.0)
    if raw.get("top_p") is not None:
        checked["top_p"] = _float(source, "top_p", raw["top_p"], 0.0, 1.0)
    if raw.get("temperature") is not None:
        checked["temperature"] = _float(source, "temperature", raw["temperature"], 0.0, 100.0)
    if raw.get("resolution") is not None:
        checked["resolution"] = parse_resolution(source, raw["resolution"])
    return checked


def check_overrides(overrides: dict[str, Any], source: str = "command line") -> dict[str, Any]:
    """Validate command-line overrides with the same rules as spec fields; unset (None) ones are dropped."""
    raw = {k: v for k, v in overrides.items() if v is not None}
    if raw.get("inference_type") is not None and raw["inference_type"] not in INFERENCE_TYPES:
        raise SpecError(
            source, f"inference_type={raw['inference_type']!r} is unknown; use one of {list(INFERENCE_TYPES)}"
        )
    return {**raw, **_check_fields(raw, source)}


def _infer_type(input_path: Path | None) -> str:
    if input_path is None:
        return "text2world"
    return "image2world" if input_path.suffix.lower() in IMAGE_SUFFIXES else "video2world"


def parse_spec(raw: Any, source: str, base_dir: Path, default_name: str) -> WorldSpec:
    """Validate one spec object; relative `input_path`s resolve against `base_dir`."""
    if not isinstance(raw, dict):
        raise SpecError(source, f"expected a JSON object, got {type(raw).__name__}; wrap the fields in {{...}}")
    unknown = sorted(set(raw) - set(ALLOWED_KEYS))
    if unknown:
        raise SpecError(source, f"unknown key(s) {unknown}; allowed keys are {list(ALLOWED_KEYS)}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SpecError(source, 'missing or empty "prompt"; add a text prompt')
    for key in ("name", "negative_prompt"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise SpecError(source, f"{key} must be a string, got {raw[key]!r}")

    input_path = None
    if raw.get("input_path") not in (None, ""):
        if not isinstance(raw["input_path"], str):
            raise SpecError(source, f"input_path must be a string path, got {raw['input_path']!r}")
        input_path = (base_dir / Path(raw["input_path"]).expanduser()).resolve()
        if not input_path.is_file():
            raise SpecError(
                source,
                f"input_path {raw['input_path']!r} not found (looked at {input_path}); "
                "fix the path, which is relative to the spec file",
            )

    inference_type = raw.get("inference_type") or _infer_type(input_path)
    if inference_type not in INFERENCE_TYPES:
        raise SpecError(source, f"inference_type={inference_type!r} is unknown; use one of {list(INFERENCE_TYPES)}")
    if inference_type != "text2world" and input_path is None:
        raise SpecError(source, f"{inference_type} needs an input; set input_path to an image or video")

    checked = _check_fields(raw, source)
    n_in, n_out = checked.get("num_input_frames"), checked.get("num_output_frames")
    if n_in is not None and n_out is not None and n_in >= n_out:
        raise SpecError(source, f"num_output_frames={n_out} must exceed num_input_frames={n_in}; raise it")

    return WorldSpec(
        name=raw.get("name") or default_name,
        prompt=prompt,
        negative_prompt=raw.get("negative_prompt"),
        inference_type=inference_type,
        input_path=input_path,
        source=source,
        **checked,
    )


def _expand(pattern: str) -> list[Path]:
    """Shell-style glob expansion for patterns that reached us quoted; plain paths pass through."""
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        if not matches:
            raise SpecError(pattern, "the pattern matched no files; check the glob")
        return [Path(m) for m in matches]
    return [Path(pattern).expanduser()]


def _load_json_file(path: Path) -> WorldSpec:
    source = str(path)
    if not path.is_file():
        raise SpecError(source, "spec file not found; check the path given to -i")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpecError(source, f"not valid JSON ({err}); fix the syntax") from None
    return parse_spec(raw, source, path.resolve().parent, default_name=path.stem)


def _load_jsonl(path: Path, batch: SpecBatch) -> None:
    if not path.is_file():
        batch.errors.append(SpecError(str(path), "batch file not found; check --batch-input-path"))
        return
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        source = f"{path}:{lineno}"
        try:
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise SpecError(source, f"not valid JSON ({err.msg}); fix or remove the line") from None
            if isinstance(raw, dict) and "visual_input" in raw:
                if "input_path" in raw:
                    raise SpecError(source, "both visual_input and input_path given; keep one")
                raw = dict(raw)
                raw["input_path"] = raw.pop("visual_input")
            default_name = f"{path.stem}_{lineno:04d}"
            if isinstance(raw, dict) and isinstance(raw.get("input_path"), str) and raw["input_path"]:
                default_name = Path(raw["input_path"]).stem
            batch.specs.append(parse_spec(raw, source, path.resolve().parent, default_name))
        except SpecError as err:
            batch.errors.append(err)


def load_specs(inputs: list[str] | None = None, batch_input_path: str | None = None) -> SpecBatch:
    """Load `-i` JSON specs (globs expanded here, each file once), then a Predict1 JSONL batch."""
    batch = SpecBatch(specs=[], errors=[])
    seen: set[Path] = set()
    for pattern in inputs or []:
        try:
            paths = _expand(pattern)
        except SpecError as err:
            batch.errors.append(err)
            continue
        for path in paths:
            if path.resolve() in seen:  # named twice, e.g. explicitly and by a glob: run once
                continue
            seen.add(path.resolve())
            try:
                batch.specs.append(_load_json_file(path))
            except SpecError as err:
                batch.errors.append(err)
    if batch_input_path:
        _load_jsonl(Path(batch_input_path).expanduser(), batch)
    return batch
