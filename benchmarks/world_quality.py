"""The autoregressive world model's quality, with and without its diffusion decoder, in one run.

    OMP_NUM_THREADS=1 python benchmarks/world_quality.py [--model FOLDER] [--clips 16] [--frames 8] [--prompts]
        [--reader THEWORLD_FOLDER] [--split test|val]
    OMP_NUM_THREADS=1 python benchmarks/world_quality.py --picture docs/predict1-side-by-side.png
    OMP_NUM_THREADS=1 python benchmarks/world_quality.py --prompts-picture docs/text2world-prompts.png
    OMP_NUM_THREADS=1 python benchmarks/world_quality.py [--model FOLDER] --first-frame

prints, for the model decoding with its diffusion decoder and with its tokenizer's own decoder:
- PSNR and objects kept (colour and kind, read by TheWorld-tiny's object reader, or `--reader`'s, and by a pixel
  detector) when decoding the tokenizer's codes of held-out clips' frames 1..N, and, for the diffusion decoder,
  through the VAE alone (the true frames encoded and decoded: the ceiling of any decoder into its latents);
- objects kept (object reader and pixels) over the N frames generated after each clip's first frame, greedy and
  sampled at top_p 0.8 / temperature 1.0 (seeds 0 and 1);
- centroid error over 4 frames predicted after 2 context frames of 16 held-out clips
  (`theworld.evaluation.world_physics.trajectory_error`), greedy and top_p 0.8 (seeds 0 and 1), against copying
  the last frame.
With `--prompts`, also text2world prompt following (`theworld.evaluation.world_objects.prompt_following`), with
the prompt, without it, and with classifier-free guidance on it. All of it on the test split's clips and captions,
or with `--split val` on the validation split's (to choose between models without looking at test; `--first-frame`
too). `--picture` writes one clip side by side instead; `--prompts-picture` the first frames text2world makes from
held-out captions. `--first-frame` measures only the text-to-frame model: the named objects read in text2world's
drawn frame, 32 held-out captions, seeds 0 / 1, at guidance 2, 3 and 5 (to compare text-to-frame models quickly),
then in each of text2world's first 4 frames.
"""

import argparse
import textwrap

import numpy as np
import torch

from theworld.evaluation.world_objects import (
    ObjectReading,
    objects_kept,
    prompt_following,
    prompt_following_by_shapes,
    psnr,
)
from theworld.evaluation.world_physics import trajectory_error
from theworld.media import to_model_range, to_uint8
from theworld.toyworld import caption, simulate, split_seeds
from theworld.world.autoregressive import AutoregressiveWorldModel, shipped_checkpoint
from theworld.world.autoregressive.text_to_frame import DEFAULT_GUIDANCE

DECODINGS = {
    "greedy": dict(temperature=0.0),
    "top_p 0.8 s0": dict(top_p=0.8, temperature=1.0, seed=0),
    "top_p 0.8 s1": dict(top_p=0.8, temperature=1.0, seed=1),
}


def _share(counts: list[tuple[int, int]] | np.ndarray) -> float:
    return sum(k for k, _ in counts) / max(sum(t for _, t in counts), 1)


def report(
    model_folder: str | None,
    clips: int,
    frames: int,
    prompts: bool = False,
    reader: str | None = None,
    split: str = "test",
) -> None:
    model = AutoregressiveWorldModel.from_pretrained(model_folder or shipped_checkpoint())
    reading = ObjectReading(reader)
    decoders = [("tokenizer's decoder", False)] + ([("diffusion decoder", True)] if model.diffusion_decoder else [])
    held_out = [simulate(seed, frames + 1) for seed in split_seeds(split, clips)]
    print(f"threads {torch.get_num_threads()}, {clips} held-out clips ({split} split), {frames} frames each")
    truth = [(reading.kept(c.frames[1:], c.states[1:]), objects_kept(c.frames[1:], c.states[1:])) for c in held_out]
    reader, pixels = _share([r for r, _ in truth]), _share([p for _, p in truth])
    print(f"simulator's frames: kept (reader) {reader:.1%}, pixels {pixels:.1%}")
    for label, use in decoders:
        model.use_diffusion_decoder = use
        print(f"\n== {label}")
        decoded = [model.decode(model.encode(c.frames[1:]), 0) for c in held_out]
        psnrs = [psnr(d, c.frames[1:]) for d, c in zip(decoded, held_out, strict=True)]
        reader = _share([reading.kept(d, c.states[1:]) for d, c in zip(decoded, held_out, strict=True)])
        pixels = _share([objects_kept(d, c.states[1:]) for d, c in zip(decoded, held_out, strict=True)])
        print(f"true frames' codes: PSNR {np.mean(psnrs):.2f} dB, kept (reader) {reader:.1%}, pixels {pixels:.1%}")
        if use:  # the ceiling of any decoder into this VAE's latents: the VAE's own round trip of the true frames
            vae = model.diffusion_decoder
            with torch.no_grad():
                latents = [vae.encode_frames(to_model_range(c.frames[1:])) for c in held_out]
                trips = [to_uint8(vae.decode_latents(latent)) for latent in latents]
            reader = _share([reading.kept(t, c.states[1:]) for t, c in zip(trips, held_out, strict=True)])
            pixels = _share([objects_kept(t, c.states[1:]) for t, c in zip(trips, held_out, strict=True)])
            psnr_vae = np.mean([psnr(t, c.frames[1:]) for t, c in zip(trips, held_out, strict=True)])
            print(f"the VAE's own round trip: PSNR {psnr_vae:.2f} dB, kept (reader) {reader:.1%}, pixels {pixels:.1%}")
        kept = []
        for name, options in DECODINGS.items():
            made = [model.predict(c.frames[:1], frames, **{"seed": 0, **options}) for c in held_out]
            reader = _share([reading.kept(m, c.states[1:]) for m, c in zip(made, held_out, strict=True)])
            pixels = _share([objects_kept(m, c.states[1:]) for m, c in zip(made, held_out, strict=True)])
            kept.append(f"{name} {reader:.1%} (reader) {pixels:.1%} (pixels)")
        print(f"{frames} generated frames after frame 0, kept: " + ", ".join(kept))
        errors = {}
        for name, options in DECODINGS.items():
            predict = lambda seen, n, o=options: model.predict(seen, n, **{"seed": 0, **o})  # noqa: E731
            result = trajectory_error(predict, 16, split=split)
            errors[name] = float(np.mean(result.model))
        print(
            "centroid error (px, 16 clips, 4 steps after 2 frames): "
            + ", ".join(f"{name} {value:.2f}" for name, value in errors.items())
            + f", copy-last {np.mean(result.copy_last):.2f}, true frames {np.mean(result.true_frames):.2f}"
        )
        if prompts:
            for name, options in (("top_p 0.8", {}), ("top_p 0.8, guidance 3", dict(guidance=3.0))):
                following = [
                    prompt_following(model, reading, 16, seed=s, split=split, top_p=0.8, **options) for s in (0, 1)
                ]
                print(
                    f"text2world ({name}), named objects read in the first 2 frames, seeds 0 / 1: "
                    + ", ".join(f"{key} {following[0][key]:.1%} / {following[1][key]:.1%}" for key in following[0])
                )


def first_frame_following(
    model_folder: str | None, captions: int = 32, reader: str | None = None, split: str = "test"
) -> None:
    model, reading = (
        AutoregressiveWorldModel.from_pretrained(model_folder or shipped_checkpoint()),
        ObjectReading(reader),
    )
    for guidance in (2.0, 3.0, 5.0):
        counts = [
            prompt_following_by_shapes(model, reading, captions, 1, s, split, top_p=0.8, guidance=guidance)
            for s in (0, 1)
        ]
        print(
            f"text2world's drawn frame, guidance {guidance:g}, named objects read, seeds 0 / 1: " + ", ".join(
                f"{key} {_share(sum(counts[0][key].values())):.1%} / {_share(sum(counts[1][key].values())):.1%}"
                for key in counts[0]
            )
        )  # fmt: skip
        if guidance == DEFAULT_GUIDANCE:
            by_shapes = {n: sum(seed["prompt"][n] for seed in counts) for n in sorted(counts[0]["prompt"])}
            print(f"by shapes named (guidance {guidance:g}, both seeds): " + ", ".join(
                f"{n}: {_share(c):.1%} of {c[:, 1].sum()}" for n, c in by_shapes.items()
            ))  # fmt: skip
    # What the transformer keeps of the drawn frame: the same objects read in each of text2world's first 4 frames
    per_frame = [prompt_following_by_shapes(model, reading, 16, 4, s, split, top_p=0.8) for s in (0, 1)]
    for key in per_frame[0]:
        by_frame = [sum(seed[key].values()) for seed in per_frame]  # (4, 2) counts per seed
        print(f"text2world's frames 1-4 (16 captions, top_p 0.8), {key}, named objects read, seeds 0 / 1: " + ", ".join(
            f"{_share(a[None]):.1%} / {_share(b[None]):.1%}" for a, b in zip(*by_frame, strict=True)
        ))  # fmt: skip


def side_by_side(model_folder: str | None, path: str, frames: int = 8, clip_index: int = 0) -> None:
    """One held-out clip as a PNG: the simulator's frames (the first is the input), then greedy and sampled
    (top_p 0.8, temperature 1.0) continuations, each with the diffusion decoder and with the tokenizer's own."""
    model = AutoregressiveWorldModel.from_pretrained(model_folder or shipped_checkpoint())
    clip = simulate(split_seeds("test", clip_index + 1)[clip_index], frames + 1)
    rows = [("simulator (input first)", clip.frames)]
    for label, use in (("diffusion decoder", True), ("tokenizer decoder", False)):
        if use and model.diffusion_decoder is None:
            continue
        model.use_diffusion_decoder = use
        for name, options in (("greedy", dict(temperature=0.0)), ("top_p 0.8", dict(top_p=0.8, temperature=1.0))):
            made = model.predict(clip.frames[:1], frames, seed=0, **options)
            rows.append((f"{name}, {label}", np.concatenate([clip.frames[:1], made])))
    _save_sheet(rows, path, label_width=180)


def prompt_sheet(model_folder: str | None, path: str, prompts: int = 6, frames: int = 4) -> None:
    """Text2world from the first `prompts` held-out captions (seed 0, Predict1's sampling) as a PNG: one row each,
    the caption beside its first `frames` frames."""
    model = AutoregressiveWorldModel.from_pretrained(model_folder or shipped_checkpoint())
    rows = []
    for clip_seed in split_seeds("test", prompts):
        prompt = caption(simulate(clip_seed, 1), 0)
        video = model.predict(None, frames, prompt=prompt, seed=0, top_p=0.8, temperature=1.0)
        rows.append(("\n".join(textwrap.wrap(prompt, 52)), video))
    _save_sheet(rows, path, label_width=330)


def _save_sheet(rows: list[tuple[str, np.ndarray]], path: str, label_width: int, scale: int = 2) -> None:
    """A PNG of labelled rows of frames: each row's label (lines allowed) at its left, its frames enlarged."""
    from PIL import Image, ImageDraw

    size = rows[0][1].shape[1] * scale
    sheet = Image.new("RGB", (label_width + max(len(v) for _, v in rows) * size, len(rows) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, video) in enumerate(rows):
        draw.multiline_text((6, r * size + 8), label, fill="black")
        for c, frame in enumerate(video):
            sheet.paste(Image.fromarray(frame).resize((size, size), Image.NEAREST), (label_width + c * size, r * size))
    sheet.save(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="An autoregressive model folder (default: the shipped one).")
    parser.add_argument(
        "--reader",
        default=None,
        help="The TheWorld model whose object reader reads the frames (default: the shipped one).",
    )
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--prompts", action="store_true", help="Also measure text2world prompt following.")
    parser.add_argument("--picture", default=None, help="Write the side-by-side PNG of one clip here instead.")
    parser.add_argument("--prompts-picture", default=None, help="Write text2world's frames for held-out captions.")
    parser.add_argument("--first-frame", action="store_true", help="Only the text-to-frame model's prompt following.")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="The clips and captions measured.")
    args = parser.parse_args()
    if args.picture:
        side_by_side(args.model, args.picture, args.frames)
    elif args.prompts_picture:
        prompt_sheet(args.model, args.prompts_picture)
    elif args.first_frame:
        first_frame_following(args.model, reader=args.reader, split=args.split)
    else:
        report(args.model, args.clips, args.frames, args.prompts, args.reader, args.split)
