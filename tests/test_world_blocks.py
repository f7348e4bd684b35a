"""`insert_world_blocks`: where the world blocks go, on small hand-made prompts.

Ids: 5 is `<start_of_image>`; a block is `<start_of_world>` (7), world tokens (9), `<end_of_world>` (8); 0 pads.
"""

import torch

from theworld.modeling.world_blocks import insert_world_blocks

BOI, SOW, EOW, WORLD, PAD = 5, 7, 8, 9, 0


def insert(input_ids, attention_mask=None, token_type_ids=None, block_length=4):
    tensors = [None if rows is None else torch.tensor(rows) for rows in (input_ids, attention_mask, token_type_ids)]
    return insert_world_blocks(*tensors, BOI, block_length, (SOW, EOW, WORLD), PAD)


def test_left_padded_rows_end_together_and_each_block_sits_before_its_image():
    blocks = insert(
        [[1, 5, 2, 3], [0, 1, 5, 2]],
        [[1, 1, 1, 1], [0, 1, 1, 1]],
        token_type_ids=[[0, 0, 1, 0], [0, 0, 0, 1]],
    )
    assert blocks.input_ids.tolist() == [[1, 7, 9, 9, 8, 5, 2, 3], [0, 1, 7, 9, 9, 8, 5, 2]]
    assert blocks.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1]]
    assert blocks.text_positions.tolist() == [[0, 5, 6, 7], [0, 1, 6, 7]]
    assert blocks.block_rows.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert blocks.block_positions.tolist() == [[1, 2, 3, 4], [2, 3, 4, 5]]
    # World tokens are "image" (1: bidirectional); the markers and the text keep their own types.
    assert blocks.token_type_ids.tolist() == [[0, 0, 1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 0, 1]]


def test_a_row_without_an_image_is_left_padded_to_the_longest():
    blocks = insert([[1, 5, 2], [1, 2, 3]])
    assert blocks.input_ids.tolist() == [[1, 7, 9, 9, 8, 5, 2], [0, 0, 0, 0, 1, 2, 3]]
    assert blocks.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]]
    assert blocks.text_positions.tolist() == [[0, 5, 6], [4, 5, 6]]
    assert blocks.block_positions.tolist() == [[1, 2, 3, 4]]
    assert blocks.token_type_ids is None


def test_a_right_padded_batch_stays_right_padded():
    blocks = insert([[1, 5, 2, 0], [1, 2, 3, 4]], [[1, 1, 1, 0], [1, 1, 1, 1]])
    assert blocks.input_ids.tolist() == [[1, 7, 9, 9, 8, 5, 2, 0], [1, 2, 3, 4, 0, 0, 0, 0]]
    assert blocks.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
    assert blocks.text_positions.tolist() == [[0, 5, 6, 7], [0, 1, 2, 3]]
    assert blocks.block_positions.tolist() == [[1, 2, 3, 4]]


def test_two_images_in_one_row_get_a_block_each():
    blocks = insert([[5, 1, 5, 2]], block_length=3)
    assert blocks.input_ids.tolist() == [[7, 9, 8, 5, 1, 7, 9, 8, 5, 2]]
    assert blocks.text_positions.tolist() == [[3, 4, 8, 9]]
    assert blocks.block_rows.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert blocks.block_positions.tolist() == [[0, 1, 2], [5, 6, 7]]
    rows, positions = blocks.world_token_index
    assert rows.tolist() == [[0], [0]] and positions.tolist() == [[1], [6]]


def test_blocks_come_in_the_order_the_images_do_across_rows():
    blocks = insert([[1, 5], [5, 5]], block_length=3)
    assert blocks.input_ids.tolist() == [[0, 0, 0, 1, 7, 9, 8, 5], [7, 9, 8, 5, 7, 9, 8, 5]]
    assert blocks.attention_mask.tolist() == [[0, 0, 0, 1, 1, 1, 1, 1], [1] * 8]
    assert blocks.text_positions.tolist() == [[3, 7], [3, 7]]
    assert blocks.block_rows.tolist() == [[0, 0, 0], [1, 1, 1], [1, 1, 1]]
    assert blocks.block_positions.tolist() == [[4, 5, 6], [0, 1, 2], [4, 5, 6]]


def test_every_token_of_the_prompt_is_where_text_positions_says():
    input_ids = torch.tensor([[0, 0, 1, 5, 2, 5], [3, 5, 4, 4, 1, 2]])
    mask = (input_ids != 0).long()
    blocks = insert_world_blocks(input_ids, mask, None, BOI, 5, (SOW, EOW, WORLD), PAD)
    assert torch.equal(blocks.input_ids.gather(1, blocks.text_positions), input_ids)
    assert torch.equal(blocks.attention_mask.gather(1, blocks.text_positions), mask)
    assert int(blocks.attention_mask.sum()) == int(mask.sum()) + 3 * 5  # every block is seen
