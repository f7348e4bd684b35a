"""Behaviour of theworld.toyworld that training and evaluation rely on.

Answers are re-derived here from the ground-truth states with separate code, so a bug in the language
module shows up as a disagreement rather than being copied into the test.
"""

import re
from collections import Counter

import numpy as np
import pytest

from theworld.toyworld import (
    ANSWER_VOCAB,
    COLOURS,
    Clip,
    ShapeState,
    caption,
    floor_y,
    make_examples,
    questions,
    render_frame,
    simulate,
    split_seeds,
    step,
)

SIZE = 64


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return [simulate(seed) for seed in range(60)]


def test_same_seed_gives_identical_clip_and_different_seeds_differ():
    a, b, c = simulate(123), simulate(123), simulate(124)
    assert np.array_equal(a.frames, b.frames)
    assert a.states == b.states
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (12, SIZE, SIZE, 3) and a.frames.dtype == np.uint8


def test_shapes_stay_inside_the_box_and_move_visibly(clips):
    moves = []
    for clip in clips:
        colours = [s.colour for s in clip.states[0]]
        assert 1 <= len(colours) <= 3 and len(set(colours)) == len(colours)
        for frame in clip.states:
            for s in frame:
                assert s.radius - 1e-9 <= s.x <= SIZE - s.radius + 1e-9
                assert s.radius - 1e-9 <= s.y <= floor_y(SIZE) - s.radius + 1e-9
        for before, after in zip(clip.states, clip.states[1:], strict=False):
            moves += [np.hypot(q.x - p.x, q.y - p.y) for p, q in zip(before, after, strict=True)]
    assert 2.0 <= np.median(moves) <= 6.0


def test_dropped_ball_falls_until_it_bounces_off_the_floor():
    ball = ShapeState("ball", "red", "small", 5.0, x=32.0, y=8.0, vx=0.0, vy=0.0)
    frames = [[ball]]
    while not frames[-1][0].hit_floor:
        assert len(frames) < 60, "ball never reached the floor"
        frames.append(step(frames[-1], SIZE))
    ys = [f[0].y for f in frames[:-1]]  # the last step holds the bounce, so it may end above the one before
    assert len(ys) > 3 and all(later > earlier for earlier, later in zip(ys, ys[1:], strict=False))
    assert frames[-1][0].vy < 0 and frames[-1][0].y > floor_y(SIZE) - 5.0 - 8.0
    assert step(frames[-1], SIZE)[0].y < frames[-1][0].y


def test_head_on_shapes_collide_and_bounce_apart():
    left = ShapeState("ball", "red", "large", 8.0, x=20.0, y=30.0, vx=3.0, vy=0.0)
    right = ShapeState("square", "blue", "large", 8.0, x=44.0, y=30.0, vx=-3.0, vy=0.0)
    states = [left, right]
    for _ in range(6):
        states = step(states, SIZE)
        assert np.hypot(states[0].x - states[1].x, states[0].y - states[1].y) > 16.0 - 0.5
    assert states[0].vx < 0 < states[1].vx


def test_render_draws_each_colour_at_its_state_position(clips):
    for clip in clips[:20]:
        for t in (0, 5, 11):
            for s in clip.states[t]:
                assert tuple(clip.frames[t][int(s.y), int(s.x)]) == COLOURS[s.colour]
    floor = int(floor_y(SIZE))
    assert clip.frames[0][floor].mean() > clip.frames[0][floor - 2].mean()


def test_ghosts_trail_behind_a_moving_shape(clips):
    shapes = [ShapeState("ball", "green", "small", 5.0, x=x, y=30.0, vx=4.0, vy=0.0) for x in (20.0, 24.0, 28.0)]
    image = render_frame([shapes[2]], [[shapes[0]], [shapes[1]]], SIZE).astype(int)
    background, green = image[5, 5], np.array(COLOURS["green"])
    assert np.array_equal(image[30, 28], green)  # current shape
    assert np.allclose(image[30, 21], background + 0.5 * (green - background), atol=1)  # one frame ago
    assert np.allclose(image[30, 16], background + 0.25 * (green - background), atol=1)  # two frames ago
    assert np.array_equal(image[30, 34], background)  # nothing ahead of the shape
    clip = clips[0]
    assert np.array_equal(clip.frames[5], render_frame(clip.states[5], clip.states[3:5], SIZE))


def _colours(question: str) -> list[str]:
    return re.findall(r"the (\w+) shape", question)


def _steps(question: str) -> int:
    return int(re.search(r"(\d+) steps?", question).group(1))


def _expected(clip, t: int, question: str, kind: str) -> str:
    """Recompute the answer from the states, independently of theworld.toyworld.language."""
    now = {s.colour: s for s in clip.states[t]}
    index = {s.colour: j for j, s in enumerate(clip.states[t])}
    if kind == "count":
        return ["one", "two", "three"][len(now) - 1]
    if kind == "colour":
        shape_kind = re.search(r"the (\w+)\?", question).group(1)
        return next(s.colour for s in now.values() if s.kind == shape_kind)
    cs = _colours(question)
    if kind == "left_of":
        return "yes" if now[cs[0]].x < now[cs[1]].x else "no"
    if kind == "above":
        return "yes" if now[cs[0]].y < now[cs[1]].y else "no"
    if kind == "larger":
        return max(cs, key=lambda c: now[c].radius)
    k = _steps(question)
    future = clip.states[t + 1 : t + k + 1]
    if kind == "future_quadrant":
        s = clip.states[t + k][index[cs[0]]]
        return ("top " if s.y < SIZE / 2 else "bottom ") + ("left" if s.x < SIZE / 2 else "right")
    if kind == "hits_floor":
        return "yes" if any(f[index[cs[0]]].hit_floor for f in future) else "no"
    if kind == "faster":
        return max(cs, key=lambda c: sum(np.hypot(f[index[c]].vx, f[index[c]].vy) for f in future))
    if kind == "meet":
        return "yes" if any(cs[1] in f[index[cs[0]]].touching for f in future) else "no"
    raise AssertionError(f"unexpected kind {kind}")


def test_answers_agree_with_simulated_ground_truth(clips):
    seen = Counter()
    rng = np.random.default_rng(0)
    for clip in clips:
        for t in (2, 4, 7):
            for qa in questions(clip, t, rng):
                assert qa.answer in ANSWER_VOCAB[qa.kind]
                assert qa.answer == _expected(clip, t, qa.question, qa.kind), qa
                temporal = qa.kind in {"future_quadrant", "hits_floor", "faster", "meet"}
                assert qa.family == ("temporal" if temporal else "static")
                assert qa.steps == (_steps(qa.question) if temporal else 0)
                seen[qa.kind, qa.answer] += 1
    for kind in ANSWER_VOCAB:
        assert sum(n for (k, _), n in seen.items() if k == kind) > 0, f"no {kind} questions generated"
    for kind in ("hits_floor", "meet", "left_of"):
        assert seen[kind, "yes"] > 0 and seen[kind, "no"] > 0


def test_borderline_questions_are_skipped(clips):
    rng = np.random.default_rng(1)
    for clip in clips:
        for qa in questions(clip, 3, rng):
            if qa.kind == "future_quadrant":
                s = next(s for s in clip.states[3 + qa.steps] if s.colour == _colours(qa.question)[0])
                assert min(abs(s.x - SIZE / 2), abs(s.y - SIZE / 2)) >= 3.0
            if qa.kind == "left_of":
                a, b = (next(s for s in clip.states[3] if s.colour == c) for c in _colours(qa.question))
                assert abs(a.x - b.x) >= 3.0


def test_caption_names_every_shape_and_its_direction(clips):
    clip = clips[0]
    text = caption(clip, 4)
    for s in clip.states[4]:
        assert f"{s.size} {s.colour} {s.kind}" in text
    moving = ShapeState("ball", "red", "large", 8.0, x=30.0, y=20.0, vx=3.0, vy=-2.0)
    assert "a large red ball moving right and up" in caption(Clip(clip.frames[:1], [[moving]], 0), 0)


def test_splits_are_disjoint_and_reject_unknown_names():
    train, val, test = (set(split_seeds(s, 1000)) for s in ("train", "val", "test"))
    assert len(train) == len(val) == len(test) == 1000
    assert not (train & val or train & test or val & test)
    with pytest.raises(ValueError, match="unknown split"):
        split_seeds("dev", 3)


def test_make_examples_have_ghosts_futures_and_balanced_answers():
    examples = make_examples("val", 60, num_frames=12, questions_per_clip=4)
    assert len(examples) == 240
    clips = {}
    for ex in examples:
        assert 2 <= ex.t and ex.t + 4 < 12
        clip = clips.setdefault(ex.seed, simulate(ex.seed))
        assert ex.seed >= 10_000_000
        assert np.array_equal(ex.image, clip.frames[ex.t])
        assert np.array_equal(ex.future, clip.frames[ex.t + 1 : ex.t + 5])
    for kind in ("left_of", "above", "meet", "hits_floor"):
        answers = Counter(ex.answer for ex in examples if ex.kind == kind)
        assert abs(answers["yes"] - answers["no"]) <= max(3, sum(answers.values()) // 4), (kind, answers)
    with pytest.raises(ValueError, match="num_frames"):
        make_examples("train", 1, num_frames=6)
