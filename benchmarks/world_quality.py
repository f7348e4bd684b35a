"""The autoregressive world model's quality, with and without its diffusion decoder, in one run.

    OMP_NUM_THREADS=1 python benchmarks/world_quality.py [--model FOLDER] [--clips 16] [--frames 8] [--prompts]
    OMP_NUM_THREADS=1 python benchmarks/world_quality.py --picture docs/predict1-side-by-side.png

prints, for the model decoding with its diffusion decoder and with its tokenizer's own decoder: PSNR and objects
kept (colour and kind, read by TheWorld-tiny's object reader and by a pixel detector) when decoding the tokenizer's
codes of held-out clips' frames 1..N (the decoder alone), and objects kept (object reader) over the N frames
generated after each clip's first frame, greedy and sampled at top_p 0.8 / temperature 1.0. With `--prompts`, also
text2world prompt following (`theworld.evaluation.world_objects.prompt_following`). `--picture` writes one clip
side by side instead.
"""

import argparse

import numpy as np
import torch

from theworld.evaluation.world_objects import ObjectReading, objects_kept, prompt_following, psnr
from theworld.toyworld import simulate, split_seeds
from theworld.world.autoregressive import AutoregressiveWorldModel, shipped_checkpoint


def report(model_folder: str | None, clips: int, frames: int, prompts: bool = False) -> None:
    model = AutoregressiveWorldModel.from_pretrained(model_folder or shipped_checkpoint())
    reading = ObjectReading()
    decoders = [("tokenizer's decoder", False)] + ([("diffusion decoder", True)] if model.diffusion_decoder else [])
    print(f"threads {torch.get_num_threads()}, {clips} held-out clips, {frames} frames each")
    truth_rows = {"reader": [0, 0], "pixels": [0, 0]}
    for seed in split_seeds("test", clips):
        clip = simulate(seed, frames + 1)
        truth, states = clip.frames[1:], clip.states[1:]
        for key, (k, t) in (("reader", reading.kept(truth, states)), ("pixels", objects_kept(truth, states))):
            truth_rows[key][0] += k
            truth_rows[key][1] += t
    print(
        f"simulator's frames: kept (reader) {truth_rows['reader'][0] / truth_rows['reader'][1]:.1%}, "
        f"kept (pixels) {truth_rows['pixels'][0] / truth_rows['pixels'][1]:.1%}"
    )
    print(
        "decoder              | true frames' codes: PSNR  kept(reader) kept(pixels) | generated: kept greedy  top_p 0.8"
    )
    for label, use in decoders:
        model.use_diffusion_decoder = use
        rows = {name: [0, 0] for name in ("rec_r", "rec_p", "greedy", "sampled")}
        psnrs = []
        for seed in split_seeds("test", clips):
            clip = simulate(seed, frames + 1)
            truth, states = clip.frames[1:], clip.states[1:]
            decoded = model.decode(model.encode(truth), seed=0)
            psnrs.append(psnr(decoded, truth))
            for name, (k, t) in (("rec_r", reading.kept(decoded, states)), ("rec_p", objects_kept(decoded, states))):
                rows[name][0] += k
                rows[name][1] += t
            for name, options in (("greedy", dict(temperature=0.0)), ("sampled", dict(top_p=0.8, temperature=1.0))):
                k, t = reading.kept(model.predict(clip.frames[:1], frames, seed=0, **options), states)
                rows[name][0] += k
                rows[name][1] += t
        share = {name: k / t for name, (k, t) in rows.items()}
        print(
            f"{label:20s} | {np.mean(psnrs):27.2f}  {share['rec_r']:12.1%} {share['rec_p']:12.1%} | "
            f"{share['greedy']:16.1%} {share['sampled']:15.1%}"
        )
        if prompts:
            following = prompt_following(model, reading, clips, top_p=0.8, temperature=1.0)
            print(f"{'':20s} | text2world (top_p 0.8), named objects read in the first 2 frames: {following}")


def side_by_side(model_folder: str | None, path: str, frames: int = 8, clip_index: int = 0) -> None:
    """One held-out clip as a PNG: the simulator's frames (the first is the input), then greedy and sampled
    (top_p 0.8, temperature 1.0) continuations, each with the diffusion decoder and with the tokenizer's own."""
    from PIL import Image, ImageDraw

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
    scale, label_width, size = 2, 180, clip.frames.shape[1]
    sheet = Image.new("RGB", (label_width + (frames + 1) * size * scale, len(rows) * size * scale), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, video) in enumerate(rows):
        draw.text((6, r * size * scale + size * scale // 2 - 6), label, fill="black")
        for c, frame in enumerate(video):
            tile = Image.fromarray(frame).resize((size * scale, size * scale), Image.NEAREST)
            sheet.paste(tile, (label_width + c * size * scale, r * size * scale))
    sheet.save(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="An autoregressive model folder (default: the shipped one).")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--prompts", action="store_true", help="Also measure text2world prompt following.")
    parser.add_argument("--picture", default=None, help="Write the side-by-side PNG of one clip here instead.")
    args = parser.parse_args()
    if args.picture:
        side_by_side(args.model, args.picture, args.frames)
    else:
        report(args.model, args.clips, args.frames, args.prompts)
