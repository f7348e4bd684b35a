"""Sample specs in Cosmos' formats, validated into `WorldSpec`s (pydantic).

- Cosmos-Predict2.5: one JSON object per file (`-i a.json b.json 'assets/*.json'`).
- Cosmos-Predict1: a batch JSONL, one `{"visual_input": ..., "prompt": ...}` per line (`--batch-input-path`).

Input paths resolve relative to the spec file. Every problem becomes a one-line `SpecError` naming the
problem and the fix; `load_specs` collects them so that the good samples still run.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from theworld.world.backends import INFERENCE_TYPES

__all__ = [
    "ALLOWED_KEYS",
    "IMAGE_SUFFIXES",
    "RESOLUTION_PRESETS",
    "SampleSettings",
    "SpecBatch",
    "SpecError",
    "WorldSpec",
    "check_overrides",
    "load_specs",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
RESOLUTION_PRESETS = {"256": (256, 320), "480": (480, 832), "720": (704, 1280)}  # (height, width)
MAX_FRAMES = 2048
MAX_SEED = 2**63 - 1  # torch's and numpy's generators take any seed in [0, 2**63 - 1]
MAX_SIDE = 4096
ALLOWED_KEYS = (  # a spec file's keys, in the order a resolved spec.json lists them
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


def _spec_problem(message: str) -> PydanticCustomError:
    """A validation error whose message is already the whole line `SpecError` shows."""
    return PydanticCustomError("spec", message)


class SampleSettings(BaseModel):
    """What a spec and the command line both set. `None` means "not set here": the backend default applies.

    Each description says what to use instead of a value the field refuses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inference_type: Literal[INFERENCE_TYPES] | None = Field(None, description=f"one of {list(INFERENCE_TYPES)}")
    seed: int | None = Field(None, strict=True, ge=0, le=MAX_SEED, description="an integer in [0, 2**63 - 1]")
    num_output_frames: int | None = Field(
        None, strict=True, ge=1, le=MAX_FRAMES, description=f"an integer in [1, {MAX_FRAMES}]"
    )
    num_input_frames: int | None = Field(
        None, strict=True, ge=1, le=MAX_FRAMES, description=f"an integer in [1, {MAX_FRAMES}]"
    )
    guidance: float | None = Field(None, strict=True, ge=0.0, le=100.0, description="a number in [0.0, 100.0]")
    num_steps: int | None = Field(None, strict=True, ge=1, le=1000, description="1..1000 steps")
    resolution: tuple[int, int] | None = None
    fps: int | None = Field(None, strict=True, ge=1, le=240, description="an integer fps in [1, 240]")
    top_p: float | None = Field(None, strict=True, ge=0.0, le=1.0, description="a number in [0.0, 1.0]")
    temperature: float | None = Field(None, strict=True, ge=0.0, le=100.0, description="a number in [0.0, 100.0]")

    @field_validator("resolution", mode="before")
    @classmethod
    def _parse_resolution(cls, value: Any) -> tuple[int, int] | None:
        """ "480" / "720" presets, "HxW", or [H, W]; both sides positive multiples of 16."""
        if value is None:
            return None
        fix = f"use one of {sorted(RESOLUTION_PRESETS)}, 'HxW' or [H, W] with multiples of 16"
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            if value in RESOLUTION_PRESETS:
                return RESOLUTION_PRESETS[value]
            parts = value.lower().split("x")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise _spec_problem(f"resolution={value!r} is not understood; {fix}")
            value = [int(p) for p in parts]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise _spec_problem(f"resolution={value!r} is not understood; {fix}")
        for side in value:
            if isinstance(side, bool) or not isinstance(side, int) or side <= 0 or side % 16 or side > MAX_SIDE:
                raise _spec_problem(f"resolution={list(value)!r} is impossible; {fix} (at most {MAX_SIDE})")
        return value[0], value[1]

    @model_validator(mode="after")
    def _check_frames(self) -> SampleSettings:
        n_in, n_out = self.num_input_frames, self.num_output_frames
        if n_in is not None and n_out is not None and n_in >= n_out:
            raise _spec_problem(f"num_output_frames={n_out} must exceed num_input_frames={n_in}; raise it")
        return self


def _infer_type(input_path: Any) -> str:
    if input_path in (None, ""):
        return "text2world"
    return "image2world" if Path(str(input_path)).suffix.lower() in IMAGE_SUFFIXES else "video2world"


class WorldSpec(SampleSettings):
    """One validated sample: its settings, its text, its input, and where it was written (`source`).

    Validate a spec object with `context={"base_dir": folder}` to resolve a relative `input_path` there.
    """

    name: str = Field(strict=True, description="a string")
    prompt: str = Field(None, validate_default=True)  # a missing prompt gets the empty prompt's message
    inference_type: Literal[INFERENCE_TYPES] = Field(description=f"one of {list(INFERENCE_TYPES)}")
    negative_prompt: str | None = Field(None, strict=True, description="a string")
    input_path: Path | None = None
    source: str

    @model_validator(mode="before")
    @classmethod
    def _fill_inference_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("inference_type"):
            data = {**data, "inference_type": _infer_type(data.get("input_path"))}
        return data

    @field_validator("prompt", mode="before")
    @classmethod
    def _check_prompt(cls, value: Any, info: ValidationInfo) -> str:
        if value is not None and not isinstance(value, str):
            kind = type(value).__name__
            raise _spec_problem(f'"prompt" must be a string, got {kind} {value!r:.60}; use a string: quote the text')
        if (info.context or {}).get("prompt_optional") and not value:
            return ""  # Predict1's base models continue a visual input without text
        if not value or not value.strip():
            raise _spec_problem('missing or empty "prompt"; add a text prompt')
        return value

    @field_validator("input_path", mode="before")
    @classmethod
    def _resolve_input(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str | Path):
            raise _spec_problem(f"input_path must be a string path, got {value!r}")
        context = info.context or {}
        resolved = (Path(context.get("base_dir", ".")) / Path(value).expanduser()).resolve()
        if not resolved.is_file() and context.get("predict1") and Path(value).expanduser().resolve().is_file():
            resolved = Path(value).expanduser().resolve()  # Predict1 reads a batch's inputs from the working folder
        if not resolved.is_file():
            where = "the spec file"
            if context.get("predict1"):  # looked for beside the batch file, then in the working folder
                here = Path(context.get("base_dir", ".")).resolve() == Path.cwd()
                where = "the working folder" if here else "the batch file or the working folder"
            fix = f"fix the path, which is relative to {where}"
            problem = "is a directory, not a file" if resolved.is_dir() else "not found"
            raise _spec_problem(f"input_path {value!r} {problem} (looked at {resolved}); {fix}")
        return resolved

    @model_validator(mode="after")
    def _check_input(self) -> WorldSpec:
        if self.inference_type != "text2world" and self.input_path is None:
            raise _spec_problem(f"{self.inference_type} needs an input; set input_path to an image or video")
        return self

    def with_overrides(self, **overrides: Any) -> WorldSpec:
        """A copy where every override that is not None wins (CLI beats spec); raises a SpecError when the
        command line's frame counts and the spec's together are impossible."""
        spec = self.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        n_in, n_out = spec.num_input_frames, spec.num_output_frames
        if n_in is not None and n_out is not None and n_in >= n_out:
            raise SpecError(
                self.source,
                f"num_output_frames={n_out} must exceed num_input_frames={n_in} (spec and command line together); "
                "raise --num-output-frames or lower --num-input-frames",
            )
        return spec

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _problem(error: ErrorDetails) -> str:
    """The one line for pydantic's error: the key, the value it refused, and what to use instead."""
    if error["type"] == "spec":
        return error["msg"]
    key = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}; allowed keys are {list(ALLOWED_KEYS)}"
    field = WorldSpec.model_fields[key]
    if error["type"] == "literal_error":
        verdict = "is unknown"
    else:
        verdict = "is out of range" if float in get_args(field.annotation) else "is impossible"
    return f"{key}={error['input']!r} {verdict}; use {field.description}"


@dataclass
class SpecBatch:
    specs: list[WorldSpec]
    errors: list[SpecError]


def check_overrides(overrides: dict[str, Any], source: str = "command line") -> dict[str, Any]:
    """Validate command-line overrides with the same rules as spec fields; unset (None) ones are dropped."""
    try:
        settings = SampleSettings.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        raise SpecError(source, _problem(err.errors()[0])) from None
    return settings.model_dump(exclude_unset=True)


def parse_spec(raw: Any, source: str, base_dir: Path, default_name: str, predict1: bool = False) -> WorldSpec:
    """Validate one spec object; relative `input_path`s resolve against `base_dir`. A `predict1` spec (a Predict1
    visual input) with an input may leave the prompt out, and its input may also be relative to the working folder."""
    if not isinstance(raw, dict):
        raise SpecError(source, f"expected a JSON object, got {type(raw).__name__}; wrap the fields in {{...}}")
    unknown = sorted(set(raw) - set(ALLOWED_KEYS))  # `source` is a field, but the loader's to fill, not the file's
    if unknown:
        raise SpecError(source, f"unknown key(s) {unknown}; allowed keys are {list(ALLOWED_KEYS)}")
    values = {**raw, "name": raw.get("name") or default_name, "source": source}
    try:
        context = {
            "base_dir": base_dir,
            "predict1": predict1,
            "prompt_optional": predict1 and bool(raw.get("input_path")),
        }
        return WorldSpec.model_validate(values, context=context)
    except ValidationError as err:
        raise SpecError(source, _problem(err.errors()[0])) from None


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
            visual = isinstance(raw, dict) and "visual_input" in raw  # Predict1's line: the prompt is optional
            if visual:
                if "input_path" in raw:
                    raise SpecError(source, "both visual_input and input_path given; keep one")
                raw = dict(raw)
                raw["input_path"] = raw.pop("visual_input")
            default_name = f"{path.stem}_{lineno:04d}"
            if isinstance(raw, dict) and isinstance(raw.get("input_path"), str) and raw["input_path"]:
                default_name = Path(raw["input_path"]).stem
            batch.specs.append(parse_spec(raw, source, path.resolve().parent, default_name, predict1=visual))
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
