"""Where the world blocks go: the index arithmetic that makes room for `<start_of_world> w ... w <end_of_world>`
before every `<start_of_image>` of a prompt.

Pure tensor bookkeeping, no model: `insert_world_blocks` takes the prompt's ids (and mask and token types) and
returns them with the blocks in place, where each of the caller's tokens went (`text_positions`), and where each
block lies, so the model can write the world embeddings there. Rows keep their padding side: a right-padded batch
(training) stays right-padded; otherwise rows are left-padded to the longest, as generation needs.
"""

from dataclasses import dataclass

import torch

__all__ = ["WorldBlocks", "insert_world_blocks"]


@dataclass
class WorldBlocks:
    """A prompt with its world blocks inserted.

    `text_positions[b, i]` is where token i of row b went; `block_rows` and `block_positions` (images, block) index
    each image's block, `<start_of_world>` and `<end_of_world>` included, in the order the images come in."""

    input_ids: torch.LongTensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    text_positions: torch.LongTensor
    block_rows: torch.LongTensor
    block_positions: torch.LongTensor

    @property
    def world_token_index(self) -> tuple[torch.LongTensor, torch.LongTensor]:
        """(rows, positions) of the world tokens alone, between each block's start and end markers."""
        return self.block_rows[:, 1:-1], self.block_positions[:, 1:-1]


def insert_world_blocks(
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    boi_token_id: int,
    block_length: int,
    world_token_ids: tuple[int, int, int],
    pad_token_id: int,
) -> WorldBlocks:
    """Insert a block of `block_length` tokens (`world_token_ids` = (start, end, world) ids: start, world tokens,
    end) before every `boi_token_id` of `input_ids` (B, L). The block is seen by attention and, in the token types,
    its world tokens are 1 (bidirectional, like image tokens); new padding is `pad_token_id`, masked out."""
    sow, eow, world_id = world_token_ids
    batch, length = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)

    is_boi = input_ids == boi_token_id
    new_lengths = length + is_boi.sum(1) * block_length
    total = int(new_lengths.max())
    right_padded = bool((attention_mask[:, -1] == 0).any())
    row_offset = torch.zeros_like(new_lengths) if right_padded else total - new_lengths
    text_positions = torch.arange(length, device=device) + is_boi.cumsum(1) * block_length + row_offset[:, None]

    ids = torch.full((batch, total), pad_token_id, dtype=input_ids.dtype, device=device)
    ids.scatter_(1, text_positions, input_ids)
    mask = torch.zeros((batch, total), dtype=attention_mask.dtype, device=device)
    mask.scatter_(1, text_positions, attention_mask)

    image_rows, image_cols = is_boi.nonzero(as_tuple=True)  # row-major: the order pixel_values come in
    block = torch.arange(block_length, device=device)
    block_positions = text_positions[image_rows, image_cols][:, None] - block_length + block
    block_rows = image_rows[:, None].expand_as(block_positions)
    block_ids = torch.full((block_length,), world_id, dtype=ids.dtype, device=device)
    block_ids[0], block_ids[-1] = sow, eow
    ids[block_rows, block_positions] = block_ids
    mask[block_rows, block_positions] = 1

    new_token_type_ids = None
    if token_type_ids is not None:
        new_token_type_ids = torch.zeros((batch, total), dtype=token_type_ids.dtype, device=device)
        new_token_type_ids.scatter_(1, text_positions, token_type_ids)
        new_token_type_ids[block_rows[:, 1:-1], block_positions[:, 1:-1]] = 1
    return WorldBlocks(ids, mask, new_token_type_ids, text_positions, block_rows, block_positions)
