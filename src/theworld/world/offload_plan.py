"""What sits on the execution device at each stage of a world-generation call, per offload choice.

`walk(stages, sizes, offload)` predicts it from the rules `theworld world` follows (`diffusion._apply_offload` and
`Guardrail`): a part that is not offloaded stays on the device for the whole run; an offloaded part moves there
when its stage starts and leaves when a later part runs, or when the call ends; an offloaded guardrail is there
only while it checks. `ResidencyTracker` records what really moved, from the `.to()` calls the offload hooks and
the guardrail make, so a tiny pipeline can check the prediction (tests/test_offload_memory.py), and
benchmarks/offload_memory.py applies the walk to the real module sizes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from theworld.world.backends import OffloadOptions

__all__ = [
    "FAMILIES",
    "PARTS",
    "ResidencyTracker",
    "Stage",
    "StageMemory",
    "collapse",
    "cosmos_stages",
    "pipeline_parts",
    "resident_parts",
    "theworld_stages",
    "walk",
]

# The parts `OffloadOptions` names, in the order a call runs them; "guardrail" is the safety checker's model.
PARTS = ("text_encoder", "tokenizer", "model", "decoder")
GUARDRAIL = "guardrail"


@dataclass(frozen=True)
class Stage:
    """One step of a call: the part whose forward runs (None for a guardrail check), whether the guardrail
    model runs, and whether it happens inside the backend call (the runner's own checks are outside it)."""

    name: str
    runs: str | None = None
    guardrail: bool = False
    in_call: bool = True


@dataclass(frozen=True)
class StageMemory:
    """What one stage holds on the execution device: the resident parts, their bytes, the stage's activations."""

    stage: str
    parts: frozenset[str]
    weight_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


FAMILIES = ("Cosmos2VideoToWorldPipeline", "Cosmos2_5_PredictBasePipeline")


def cosmos_stages(family: str, inference_type: str = "image2world") -> list[Stage]:
    """The stages of one `theworld world` sample on a diffusers Cosmos pipeline.

    The runner checks the prompt and the video itself; the pipeline checks the prompt again, and
    Predict2's pipeline checks the video again before the call returns (Predict2.5's checks the video only
    with diffusers' own `CosmosSafetyChecker`). Text2world encodes no video.
    """
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not a diffusers Cosmos pipeline; use one of {list(FAMILIES)}")
    if inference_type not in ("text2world", "image2world", "video2world"):
        raise ValueError(f"inference_type={inference_type!r}; use text2world, image2world or video2world")
    stages = [
        Stage("guardrail: prompt", guardrail=True, in_call=False),
        Stage("guardrail: prompt", guardrail=True),
        Stage("text encoding", runs="text_encoder"),
        Stage("VAE encode", runs="tokenizer"),
        Stage("denoising", runs="model"),
        Stage("VAE decode", runs="decoder"),
    ]
    if inference_type == "text2world":
        stages = [stage for stage in stages if stage.runs != "tokenizer"]
    if family == "Cosmos2VideoToWorldPipeline":
        stages.append(Stage("guardrail: video", guardrail=True))
    stages.append(Stage("guardrail: video", guardrail=True, in_call=False))
    return stages


def theworld_stages() -> list[Stage]:
    """TheWorld's `ask`: the world encoder (VAE encoder) runs, then everything else (vision tower, dynamics,
    projectors, language model) as one part. Its VAE decoder runs only when imagined frames are drawn."""
    return [Stage("world encode", runs="tokenizer"), Stage("answer", runs="model")]


def resident_parts(stages: Sequence[Stage], offload: OffloadOptions) -> list[frozenset[str]]:
    """The parts on the execution device during each stage (see the module's rules)."""
    kept = {part for part in PARTS if not getattr(offload, part)}
    if not offload.guardrail:
        kept.add(GUARDRAIL)
    loaded: str | None = None  # the offloaded part that ran last and has not been moved off yet
    out = []
    for stage in stages:
        if not stage.in_call:
            loaded = None
        if stage.runs is not None:
            loaded = stage.runs if getattr(offload, stage.runs) else None
        now = set(kept)
        if loaded is not None:
            now.add(loaded)
        if stage.guardrail:
            now.add(GUARDRAIL)
        out.append(frozenset(now))
    return out


def walk(
    stages: Sequence[Stage],
    sizes: Mapping[str, int],
    offload: OffloadOptions,
    activations: Mapping[str, int] | None = None,
    always: Sequence[str] = (),
) -> list[StageMemory]:
    """Bytes on the execution device at each stage: the resident parts' `sizes` (parts missing from `sizes`
    weigh nothing), the `always` parts that no flag moves, and the stage's `activations` by stage name."""
    activations = activations or {}
    fixed = sum(sizes[name] for name in always)
    out = []
    for stage, parts in zip(stages, resident_parts(stages, offload), strict=True):
        weights = fixed + sum(sizes.get(part, 0) for part in parts)
        out.append(StageMemory(stage.name, parts, weights, activations.get(stage.name, 0)))
    return out


def pipeline_parts(pipe, guardrail_model: nn.Module | None = None) -> dict[str, nn.Module]:
    """A diffusers Cosmos pipeline's parts as `OffloadOptions` names them, and the guardrail's model when it has
    one. The VAE's quant convolutions belong to no flag: they stay on the device, like a part not offloaded."""
    parts = {
        "text_encoder": pipe.text_encoder,
        "tokenizer": pipe.vae.encoder,
        "model": pipe.transformer,
        "decoder": pipe.vae.decoder,
    }
    if guardrail_model is not None:
        parts[GUARDRAIL] = guardrail_model
    return parts


class ResidencyTracker:
    """Records, each time a watched part's forward returns, that part and which parts sit on `device`, from
    the `.to()` calls that moved them (the offload hooks', the guardrail's, a loader's).

    Reading the moves rather than the parameters' devices works on a CPU-only machine too: there the
    execution device is `torch.device("cpu", 0)`, which computes on the CPU like "cpu" but is a different
    `.to()` target from the "cpu" the hooks offload to. Nothing moves during a forward, so what is resident
    when it returns is what was resident while it ran; a guardrail model is seen only if its checks call its
    forward. Consecutive repeats (the transformer's every step) are merged.

        tracker = ResidencyTracker(device)
        with tracker.track():
            pipe = load(...)                 # its moves are recorded too
            tracker.watch(pipeline_parts(pipe))
            pipe(...)
        tracker.events
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.moves: list[tuple[nn.Module, torch.device]] = []
        self.parts: dict[str, nn.Module] = {}
        self.events: list[tuple[str, frozenset[str]]] = []
        self._handles: list = []

    def where(self, part: nn.Module) -> torch.device:
        """Where the last move that included `part` sent it (the CPU if nothing moved it)."""
        for module, target in reversed(self.moves):
            if any(sub is part for sub in module.modules()):
                return target
        return torch.device("cpu")

    def visited(self) -> frozenset[str]:
        """The watched parts that any recorded move sent to `device`, however briefly."""
        return frozenset(
            name
            for name, part in self.parts.items()
            if any(target == self.device and any(sub is part for sub in m.modules()) for m, target in self.moves)
        )

    def resident(self) -> frozenset[str]:
        return frozenset(name for name, part in self.parts.items() if self.where(part) == self.device)

    def watch(self, parts: Mapping[str, nn.Module]) -> None:
        self.parts.update(parts)
        for name, part in parts.items():
            self._handles.append(part.register_forward_hook(lambda *_, name=name: self._record(name)))

    @contextlib.contextmanager
    def track(self) -> Iterator[ResidencyTracker]:
        original = nn.Module.to
        moves = self.moves

        def to(module, *args, **kwargs):
            target = torch._C._nn._parse_to(*args, **kwargs)[0]
            if target is not None:
                moves.append((module, torch.device(target)))
            return original(module, *args, **kwargs)

        nn.Module.to = to
        try:
            yield self
        finally:
            nn.Module.to = original
            for handle in self._handles:
                handle.remove()

    def _record(self, part: str) -> None:
        event = (part, self.resident())
        if not self.events or self.events[-1] != event:
            self.events.append(event)


def collapse(stages: Sequence[Stage], parts: Sequence[frozenset[str]], tracked: Sequence[str]) -> list:
    """The walk as the tracker records it: (the part that runs, the resident parts among `tracked`) per stage,
    consecutive repeats merged."""
    out: list[tuple[str, frozenset[str]]] = []
    for stage, now in zip(stages, parts, strict=True):
        event = (stage.runs or GUARDRAIL, frozenset(now & set(tracked)))
        if not out or out[-1] != event:
            out.append(event)
    return out
