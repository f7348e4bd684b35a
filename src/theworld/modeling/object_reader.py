"""The object reader: per-frame latents -> one world token per object, and what each mention of an object gets.

The space-to-depth projector (`world_projector.py`) hands the language model a few tokens that each mix every
object in a region (good for "where will it be": each is a quadrant); a tiny language model then has to
untangle which colour is where before it can compare two objects, and in minutes of CPU training it does not
(README, "ToyWorld and TheWorld-tiny"). The object reader does the binding instead: one slot per object the
world can hold (ToyWorld's palette colours), each a learned query attending over a small CNN's reading of the
frame's latents. Where it attends gives the object's position (a soft-argmax over the latent grid, finer than a
cell); what it reads gives the rest of its state. That is slot attention (Locatello et al. 2020) with one round
and fixed, named slots, since every ToyWorld object has its own colour. It reads imagined latents exactly as it
reads encoded ones.

The decoded state is explicit and supervised by the simulator (`evaluation/world_data.py`): present, x, y,
radius, kind, vx, vy. The language model gets it twice:
- as world tokens, after each frame's region tokens: per slot, the embedding of the slot's name word plus an MLP
  of the state, plus the world step's embedding;
- at every mention of the name in the prompt after an image (`add_mentions`): an MLP of the object's whole
  course (its states over the current and imagined frames) as that image shows it, and at a mention that follows
  another object's, a relation embedding of the pair. That is entity injection, as knowledge-enhanced LMs (ERNIE,
  KnowBERT) add an entity's embedding to its mentions: a tiny language model trained for minutes does not learn
  to look an object up by name among the world tokens, so the name carries it.

With kind words (`config.world_objects["kinds"]`), the reader also decodes *facts* from the courses, supervised by
the simulator like the states (`evaluation/world_data.py`): per object and future step, which half of the frame it is
in and whether it has hit the floor; per ordered pair, left of, above, larger, and per future step, faster and
met. Their probabilities join the mention and relation embeddings, and a mention of a kind word ("the triangle")
gets which objects are of that kind. The language model then routes a decoded fact to the answer instead of
learning the comparison itself, which a tiny model does not do in minutes of CPU training (README).

With `asked_facts`, the pair's facts also come picked by the question: the words before the mention (its last
`QUESTION_WORDS` after the image) attend over the pair facts, and only the ones they pick reach the mention, on a
scale of -1 (false) to 1 (true). Every pair fact otherwise shares one embedding, and a question answered with one
of two colours ("which will move faster over the next 2 steps, the red shape or the blue shape?", "which is larger,
...") must then learn to read a different fact out of the same vector than its twin does: a tiny language model
learns one at the other's cost (docs/toyworld.md). Picking the fact by the question's own words (a memory network's
addressing, Sukhbaatar et al. 2015) leaves the language model one direction to read for all of them.
"""

import torch
from torch import nn

__all__ = [
    "OBJECT_STATE",
    "ObjectDetector",
    "ObjectFacts",
    "ObjectReader",
    "latest_image",
    "object_fact_names",
    "pair_fact_names",
]

QUESTION_WORDS = 16  # the words before a mention that pick its pair facts: a whole ToyWorld question fits

# The decoded state of one object, in order: presence logit, x, y (fractions of the frame, from the soft-argmax),
# radius, kind logits, vx, vy (radius and velocity scaled as `evaluation.world_data.object_targets` scales them).
OBJECT_STATE = ("present", "x", "y", "radius", "kind", "vx", "vy")


class ObjectDetector(nn.Module):
    """Latents -> one decoded state per named slot: a CNN over the latents and their coordinates, one learned
    query per slot attending over it, a soft-argmax for the position and an MLP for the rest."""

    def __init__(self, latent_channels: int, num_slots: int, num_kinds: int, hidden_size: int):
        super().__init__()
        self.num_kinds = num_kinds
        self.features = nn.Sequential(
            nn.Conv2d(latent_channels + 2, hidden_size, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_size, hidden_size, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_size, hidden_size, 3, padding=1),
        )
        self.keys = nn.Linear(hidden_size, hidden_size)
        self.queries = nn.Parameter(torch.randn(num_slots, hidden_size) / hidden_size**0.5)
        self.state = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, 4 + num_kinds + 2)
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, slots, state_size) decoded states (see `OBJECT_STATE`; logits, not
        probabilities, for presence and kind)."""
        n, _, h, w = latents.shape
        ys, xs = torch.meshgrid(
            (torch.arange(h, device=latents.device, dtype=latents.dtype) + 0.5) / h,
            (torch.arange(w, device=latents.device, dtype=latents.dtype) + 0.5) / w,
            indexing="ij",
        )
        grid = torch.stack([xs, ys])  # (2, h, w): each cell's centre, as a fraction of the frame
        features = self.features(torch.cat([latents, grid.expand(n, -1, -1, -1) * 2 - 1], dim=1))
        features = features.flatten(2).transpose(1, 2)  # (N, h*w, hidden)
        scores = self.keys(features) @ self.queries.T / features.shape[-1] ** 0.5
        attention = scores.softmax(dim=1).transpose(1, 2)  # (N, slots, h*w): over positions, per slot
        where = attention @ grid.flatten(1).T  # (N, slots, 2): the soft-argmax position
        what = self.state(attention @ features)
        # The MLP may nudge the soft-argmax (a shape's centre is not where its pixels' weight is, near a wall).
        return torch.cat([what[..., :1], where + what[..., 1:3] * 0.05, what[..., 3:]], dim=-1)


def object_fact_names(max_steps: int) -> list[str]:
    """What `ObjectFacts.objects` decodes per object: for each future step k, in the right half, in the bottom
    half, hit the floor within k steps."""
    return [f"{fact}_{k}" for k in range(1, max_steps + 1) for fact in ("right", "bottom", "hit_floor")]


def pair_fact_names(max_steps: int) -> list[str]:
    """What `ObjectFacts.pairs` decodes per ordered pair (a, b): a left of / above / larger than b now, and for
    each future step k, a faster than b on average over the next k steps, a and b met within k steps."""
    timed = [f"{fact}_{k}" for k in range(1, max_steps + 1) for fact in ("faster", "meet")]
    return ["left_of", "above", "larger", *timed]


class ObjectFacts(nn.Module):
    """Two MLP heads over courses: one object's facts (`object_fact_names`), an ordered pair's (`pair_fact_names`);
    logits, trained as binary classifiers against the simulator."""

    def __init__(self, state_size: int, max_steps: int, hidden_size: int):
        super().__init__()
        self.state_size, self.max_steps = state_size, max_steps
        features = (max_steps + 1) * state_size + max_steps
        self.object_head = nn.Sequential(
            nn.Linear(features, hidden_size), nn.GELU(), nn.Linear(hidden_size, len(object_fact_names(max_steps)))
        )
        self.pair_head = nn.Sequential(
            nn.Linear(2 * features, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, len(pair_fact_names(max_steps))),
        )

    def features(self, courses: torch.Tensor) -> torch.Tensor:
        """A course and its mean speed over the next 1 ... max_steps frames, which "which will move faster"
        compares, so the pair head need not learn a norm (docs/toyworld.md: the velocities the detector reads from
        latents, not the norm, limit that fact)."""
        velocities = courses.unflatten(-1, (self.max_steps + 1, self.state_size))[..., 1:, -2:]
        speeds = velocities.norm(dim=-1).cumsum(-1) / torch.arange(1, self.max_steps + 1, device=courses.device)
        return torch.cat([courses, speeds], dim=-1)

    def objects(self, courses: torch.Tensor) -> torch.Tensor:
        return self.object_head(self.features(courses))

    def pairs(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.pair_head(torch.cat([self.features(first), self.features(second)], dim=-1))

    def every_pair(self, courses: torch.Tensor) -> torch.Tensor:
        """(N, slots, course) -> (N, slots, slots, pair facts): the facts of every ordered pair (a, b), [n, a, b]."""
        slots = courses.shape[1]
        return self.pairs(courses[:, :, None].expand(-1, -1, slots, -1), courses[:, None].expand(-1, slots, -1, -1))


class ObjectReader(nn.Module):
    def __init__(
        self,
        latent_channels: int,
        slot_token_ids: list[int],
        num_kinds: int,
        hidden_size: int,
        text_hidden_size: int,
        max_steps: int,
        kind_token_ids: list[int] | None = None,
        asked_facts: bool = False,
    ):
        super().__init__()
        self.slot_token_ids = list(slot_token_ids)  # a list, not a buffer: from_pretrained builds buffers on meta
        self.num_kinds = num_kinds
        # Perception: trained against the simulator's states, then frozen while the language model learns.
        self.detector = ObjectDetector(latent_channels, len(slot_token_ids), num_kinds, hidden_size)
        # Reading: what the language model receives for each slot (trained with the language model).
        self.state_embedding = nn.Sequential(
            nn.Linear(self.state_size, text_hidden_size), nn.GELU(), nn.Linear(text_hidden_size, text_hidden_size)
        )
        self.step_embedding = nn.Embedding(max_steps + 1, text_hidden_size)
        # Mentions: what is added to each mention of a slot's name in the prompt: the object's course (its states
        # over every frame), and at a mention that follows another, a relation embedding of the pair's courses.
        self.max_steps = max_steps
        course_size = (max_steps + 1) * self.state_size
        self.mention_embedding = nn.Sequential(
            nn.Linear(course_size, text_hidden_size), nn.GELU(), nn.Linear(text_hidden_size, text_hidden_size)
        )
        self.relation_embedding = nn.Sequential(
            nn.Linear(2 * course_size, text_hidden_size), nn.GELU(), nn.Linear(text_hidden_size, text_hidden_size)
        )
        # Facts (with kind words only): decoded like the states (and frozen with them), embedded with the language
        # model.
        self.kind_token_ids = None if kind_token_ids is None else list(kind_token_ids)
        if kind_token_ids is not None:
            self.facts = ObjectFacts(self.state_size, max_steps, 2 * hidden_size)
            self.object_fact_embedding = nn.Linear(len(object_fact_names(max_steps)), text_hidden_size)
            self.pair_fact_embedding = nn.Linear(len(pair_fact_names(max_steps)), text_hidden_size)
            self.kind_embedding = nn.Linear(len(slot_token_ids), text_hidden_size)
        self.asked_facts = asked_facts and kind_token_ids is not None
        if self.asked_facts:
            self.fact_query = nn.Linear(text_hidden_size, len(pair_fact_names(max_steps)))
            self.asked_fact_embedding = nn.Linear(len(pair_fact_names(max_steps)), text_hidden_size)

    @property
    def state_size(self) -> int:
        return 4 + self.num_kinds + 2

    def tokens_per_frame(self) -> int:
        return len(self.slot_token_ids)

    def read(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, slots, state_size) decoded states."""
        return self.detector(latents)

    def _readable(self, states: torch.Tensor) -> torch.Tensor:
        """Decoded states with presence and kind as probabilities: what the embeddings read."""
        present = states[..., :1].sigmoid()
        kinds = states[..., 4 : 4 + self.num_kinds].softmax(-1)
        return torch.cat([present, states[..., 1:4], kinds, states[..., 4 + self.num_kinds :]], dim=-1)

    def embed_states(self, states: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        """(..., slots, state) decoded states -> (..., slots, text_hidden) tokens, before the step embedding.
        `word_embeddings` is the language model's (scaled) input embedding."""
        names = word_embeddings(torch.tensor(self.slot_token_ids, device=states.device))  # scaled as typed words are
        return names + self.state_embedding(self._readable(states))

    def courses(self, states: torch.Tensor) -> torch.Tensor:
        """(B, T, slots, state) decoded states of T <= max_steps + 1 frames -> (B, slots, course): each object's
        readable states over every frame, frames not imagined as zeros."""
        batch, steps, slots, size = states.shape
        course = states.new_zeros(batch, self.max_steps + 1, slots, size)
        course[:, :steps] = self._readable(states)
        return course.transpose(1, 2).flatten(2)

    def embed_mentions(
        self, courses: torch.Tensor, previous: torch.Tensor | None, question: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(M, course) courses of M mentioned objects -> (M, text_hidden) embeddings added at the mentions;
        `previous` (M, course) holds the course of the object named just before each, zeros where none was;
        `question` (M, text_hidden), with `asked_facts`, the mean embedding of the words before each mention.

        The relation embedding is a relation network's g(o_i, o_j) (Santoro et al. 2017) on the pair the question
        names: "is the red shape left of the blue shape?" then needs no comparison inside the language model,
        which learns continuous comparisons between two looked-up values slowly (a few hundred steps of that
        question alone in text, more than the recipe gives it among nine kinds)."""
        embeddings = self.mention_embedding(courses)
        if self.kind_token_ids is not None:
            embeddings = embeddings + self.object_fact_embedding(self.facts.objects(courses).sigmoid())
        if previous is not None:
            follows = previous.abs().sum(-1, keepdim=True) > 0
            relation = self.relation_embedding(torch.cat([previous, courses], -1))
            if self.kind_token_ids is not None:
                facts = self.facts.pairs(previous, courses).sigmoid()
                relation = relation + self.pair_fact_embedding(facts)
                if self.asked_facts and question is not None:
                    asked = self.fact_query(question).softmax(-1)
                    relation = relation + self.asked_fact_embedding(asked * (2 * facts - 1))
            embeddings = embeddings + relation * follows
        return embeddings

    def embed_kind_mentions(self, courses: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
        """(M, slots, course) the courses of the image each kind word follows, (M,) the kinds named -> (M, text_hidden):
        an embedding of how likely each slot holds an object of that kind now ("the triangle" -> which colour)."""
        now = courses[..., : self.state_size]  # the current frame's readable state
        of_kind = now[..., 4 : 4 + self.num_kinds][torch.arange(len(kinds), device=kinds.device), :, kinds]
        return self.kind_embedding(now[..., 0] * of_kind)

    def add_mentions(
        self,
        embeds: torch.Tensor,
        ids: torch.Tensor,
        image_of: torch.Tensor,
        courses: torch.Tensor,
        words: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Add to the prompt's embeddings `embeds` (B, L, D) at every token of `ids` (B, L) that names an object
        (`slot_token_ids`) after an image the embedding of that object as the latest image before it
        (`image_of`, see `latest_image`) shows it in `courses` (images, slots, course), and of its relation to
        the object named just before it after the same image; with kind words, `add_kind_mentions` first.
        `words` (B, L, D), with `asked_facts`: each token's word embedding, zeros where it is not a word."""
        if self.kind_token_ids is not None:
            embeds = self.add_kind_mentions(embeds, ids, image_of, courses)
        is_name = ids.unsqueeze(-1) == torch.tensor(self.slot_token_ids, device=ids.device)
        rows, positions = (is_name.any(-1) & (image_of >= 0)).nonzero(as_tuple=True)  # row-major: prompt order
        if len(rows) == 0:
            return embeds
        images, slots = image_of[rows, positions], is_name[rows, positions].int().argmax(-1)
        mentioned = courses[images, slots]
        before = _previous_object(images, slots)
        previous = torch.where((before >= 0).unsqueeze(-1), mentioned[before.clamp(min=0)], 0.0)
        question = None
        if self.asked_facts and words is not None:
            question = _words_before(words, image_of, rows, positions)
        added = self.embed_mentions(mentioned, previous, question).to(embeds.dtype)
        return embeds.index_put((rows, positions), added, accumulate=True)

    def add_kind_mentions(
        self, embeds: torch.Tensor, ids: torch.Tensor, image_of: torch.Tensor, courses: torch.Tensor
    ) -> torch.Tensor:
        """Add to every kind word after an image ("triangle") which of that image's objects are of that kind."""
        is_kind = ids.unsqueeze(-1) == torch.tensor(self.kind_token_ids, device=ids.device)
        rows, positions = (is_kind.any(-1) & (image_of >= 0)).nonzero(as_tuple=True)
        if len(rows) == 0:
            return embeds
        kinds = is_kind[rows, positions].int().argmax(-1)
        added = self.embed_kind_mentions(courses[image_of[rows, positions]], kinds).to(embeds.dtype)
        return embeds.index_put((rows, positions), added, accumulate=True)

    def forward(
        self, latents: torch.Tensor, word_embeddings: nn.Embedding, states: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C, h, w) -> world tokens (B, T * slots, D), frame by frame in time order, and each object's
        course (B, slots, course) for `embed_mentions`. `states` (B, T, slots, state), when given, are the
        latents' decoded states already (`read`; training caches them while the detector is frozen)."""
        batch, steps = latents.shape[:2]
        if states is None:
            states = self.read(latents.flatten(0, 1)).unflatten(0, (batch, steps))
        tokens = self.embed_states(states, word_embeddings)
        tokens = tokens + self.step_embedding(torch.arange(steps, device=latents.device))[None, :, None, :]
        return tokens.flatten(1, 2), self.courses(states)


def latest_image(ids: torch.LongTensor, boi_token_id: int) -> torch.LongTensor:
    """(B, L) prompt ids -> (B, L): the global index (over the batch, row-major, as images come in) of the latest
    `<start_of_image>` at or before each token, -1 before the row's first."""
    seen = (ids == boi_token_id).cumsum(1)
    images_per_row = seen[:, -1]
    first_image = torch.cumsum(images_per_row, 0) - images_per_row
    return torch.where(seen > 0, first_image[:, None] + seen - 1, -1)


def _previous_object(images: torch.LongTensor, slots: torch.LongTensor) -> torch.LongTensor:
    """For mentions in prompt order, of `slots` after `images`: the index of the last mention of another object
    after the same image, -1 where there is none. A run of mentions of one object counts as one mention (a word
    heard over several audio frames is several mentions of one object, not a pair)."""
    index = torch.arange(len(images), device=images.device)
    new_image = torch.ones_like(images, dtype=torch.bool)
    new_image[1:] = images[1:] != images[:-1]  # image indices are global, so this is also a new row
    new_run = new_image.clone()
    new_run[1:] |= slots[1:] != slots[:-1]
    image_start = torch.cummax(torch.where(new_image, index, 0), 0).values
    run_start = torch.cummax(torch.where(new_run, index, 0), 0).values
    return torch.where(run_start > image_start, run_start - 1, -1)


def _words_before(
    words: torch.Tensor, image_of: torch.LongTensor, rows: torch.LongTensor, positions: torch.LongTensor
) -> torch.Tensor:
    """(B, L, D) word embeddings (zeros where a token is not a word), and M mentions at (`rows`, `positions`) ->
    (M, D): the mean embedding of the last `QUESTION_WORDS` words before each mention after the same image."""
    is_word = words.ne(0).any(-1)
    rank = is_word.cumsum(1)[rows]  # (M, L)
    before = torch.arange(words.shape[1], device=words.device) < positions[:, None]
    same_image = image_of[rows] == image_of[rows, positions][:, None]
    recent = rank > rank.gather(1, positions[:, None]) - 1 - QUESTION_WORDS
    picked = is_word[rows] & before & same_image & recent
    # The picked words are every word from the first of them to the mention (images and ranks only grow along a
    # row), so a running sum gives their total without an (M, L, D) copy of the prompt.
    first = picked.int().argmax(-1)
    totals = nn.functional.pad(words.cumsum(1), (0, 0, 1, 0))  # (B, L + 1, D): the sum of the words before each
    count = picked.sum(-1, keepdim=True)
    return (totals[rows, positions] - totals[rows, first]) * (count > 0) / count.clamp(min=1)
