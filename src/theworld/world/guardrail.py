"""A pluggable safety check on prompts, with a hook for outputs.

`Guardrail` is also a drop-in `safety_checker` for diffusers' Cosmos pipelines: it has
`check_text_safety(prompt) -> bool`, `check_video_safety(frames) -> frames | None` and `.to(device)`.
It uses NVIDIA's `cosmos_guardrail` when that package is importable, else a word blocklist.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import numpy as np

__all__ = ["DEFAULT_BLOCKLIST", "Guardrail", "load_guardrail"]

logger = logging.getLogger(__name__)

DEFAULT_BLOCKLIST = (
    "child abuse",
    "beheading",
    "decapitation",
    "gore",
    "nude",
    "naked",
    "porn",
    "pornographic",
    "sexual",
    "suicide",
    "terrorist attack",
)


class Guardrail:
    """Blocklist on prompts (whole words, case-insensitive); optionally wraps a `cosmos_guardrail` checker."""

    def __init__(
        self,
        blocklist: Iterable[str] = DEFAULT_BLOCKLIST,
        checker: object | None = None,
        offload: bool = False,
        name: str = "blocklist",
    ) -> None:
        words = sorted({w.strip().lower() for w in blocklist if w.strip()})
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I) if words else None
        self.checker = checker
        self.offload = offload
        self.name = name
        self.device = "cpu"

    def blocked_reason(self, prompt: str) -> str | None:
        """Why `prompt` is blocked (a short phrase), or None when it may run."""
        match = self.pattern.search(prompt) if self.pattern else None
        if match:
            return f"blocklist term {match.group(1).lower()!r}"
        if self.checker is not None and not self._run(self.checker.check_text_safety, prompt):
            return "cosmos_guardrail text check"
        return None

    def check_text_safety(self, prompt: str) -> bool:
        return self.blocked_reason(prompt) is None

    def check_video_safety(self, frames: np.ndarray) -> np.ndarray | None:
        """Output hook: frames (T, H, W, 3) uint8, possibly altered (faces blurred), or None when unsafe."""
        if self.checker is None:
            return frames
        return self._run(self.checker.check_video_safety, frames)

    def to(self, device=None, *args, **kwargs) -> Guardrail:
        """Remember the execution device; the wrapped checker moves there now, or only while checking if
        offloaded. Pipelines call `.to("cpu")` after their checks to offload it: `offload` decides that, so a
        move to the CPU is not remembered."""
        if device is not None and str(device) != "cpu":
            self.device = device
        if self.checker is not None and not self.offload:
            self.checker.to(self.device)
        return self

    def _run(self, fn, arg):
        if self.checker is not None and self.offload:
            self.checker.to(self.device)
        try:
            return fn(arg)
        finally:
            if self.checker is not None and self.offload:
                self.checker.to("cpu")

    def __repr__(self) -> str:
        return f"Guardrail(name={self.name!r}, offload={self.offload})"


def load_guardrail(disabled: bool = False, offload: bool = False, blocklist: Iterable[str] | None = None) -> Guardrail:
    """The default guardrail; `disabled=True` gives one that allows everything (pipelines still need one)."""
    if disabled:
        return Guardrail(blocklist=(), name="disabled")
    blocklist = DEFAULT_BLOCKLIST if blocklist is None else blocklist
    try:
        from cosmos_guardrail import CosmosSafetyChecker
    except ImportError:
        return Guardrail(blocklist=blocklist, offload=offload)
    logger.info("using cosmos_guardrail (its models download on first use)")
    return Guardrail(blocklist=blocklist, checker=CosmosSafetyChecker(), offload=offload, name="cosmos_guardrail")
