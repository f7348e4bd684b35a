"""The imagined world of each image, computed once per image and kept for the next request that shows it.

Each image (or video clip) is imagined on its own, never stacked with other requests' images: the world encoder's
convolutions round differently in a batch, and a request must get the answer it would get alone. The same latents
answer the question and, with `return_world_frames`, are drawn as PNG frames.
"""

import base64
import hashlib
import io
from collections import OrderedDict

import torch
from PIL import Image

from theworld.media import to_uint8
from theworld.modeling.modeling_theworld import TheWorld

__all__ = ["WorldCache"]


class WorldCache:
    """Latents (1, 1 + k, C, h, w) of recent images, by the image's pixels and k; least recently used go first."""

    def __init__(self, model: TheWorld, size: int = 64):
        self.model, self.size = model, size
        self._latents: OrderedDict[tuple[bytes, int], torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def latents(self, job, steps: int) -> torch.Tensor:
        """Latents of every image of a request, in prompt order: (images, 1 + k, C, h, w)."""
        pixels = job.inputs["pixel_values"]
        frames = [clip if clip is not None else pixels[i : i + 1] for i, clip in enumerate(job.clips)]
        return torch.cat([self._one(frame, steps) for frame in frames])

    def _one(self, frames: torch.Tensor, steps: int) -> torch.Tensor:
        """An image (1, 3, H, W), or a clip (T, 3, H, W) whose last frame is the current one."""
        key = (
            hashlib.blake2b(frames.numpy().tobytes(), digest_size=16).digest() + str(tuple(frames.shape)).encode(),
            steps,
        )
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]
        latents = self.model.imagine(frames if frames.shape[0] == 1 else frames.unsqueeze(0), steps)
        self._latents[key] = latents
        if len(self._latents) > self.size:
            self._latents.popitem(last=False)
        return latents

    @torch.no_grad()
    def frames(self, latents: torch.Tensor) -> list[list[str]]:
        """Each image's frames (its own, then the imagined ones) as PNG data URIs: `draw_world`'s, so a Cosmos
        predictor's latent frames become the whole video they pack."""
        drawn = to_uint8(self.model.draw_world(latents))
        return [[_png(frame) for frame in image] for image in drawn]


def _png(frame) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
