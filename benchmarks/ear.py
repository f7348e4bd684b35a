"""The ear alone (greedy CTC, no language model): what `POST /v1/audio/transcriptions` returns, per voice set.

    OMP_NUM_THREADS=1 python benchmarks/ear.py [--model FOLDER ...] [--split val] [--clips 80]

For each model (TheWorld-tiny by default), espeak-ng speaks `--clips` x 4 ToyWorld questions of `--split` in the
training voices (in turn) and in a voice never heard in training; prints the share of content words the ear gets
right (colours, shapes, step counts, the words that name the question) and its word error rate. The val split is
for choosing between hearing stages; `theworld eval --speech` reports the same figures on the test split.
"""

import argparse

from theworld import DEFAULT_MODEL, TheWorld, TheWorldProcessor
from theworld.evaluation.speech import content_word_accuracy, ctc_transcribe, voice_sets, word_error_rate
from theworld.evaluation.speech_data import mel_features, speak_all
from theworld.toyworld import make_examples


def ear_figures(folder: str, split: str, clips: int) -> dict[str, tuple[float, float]]:
    """voice set -> (content words right, word error rate) of the model's ear on `split`'s questions."""
    model = TheWorld.from_pretrained(folder).eval()
    processor = TheWorldProcessor.from_pretrained(folder)
    questions = [e.question for e in make_examples(split, clips, questions_per_clip=4)]
    figures = {}
    for name, voice_list in voice_sets(len(questions)).items():
        heard = ctc_transcribe(model, processor.tokenizer, mel_features(processor, speak_all(questions, voice_list)))
        figures[name] = (content_word_accuracy(questions, heard), word_error_rate(questions, heard))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="A TheWorld checkpoint folder (repeatable).")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--clips", type=int, default=80)
    args = parser.parse_args()
    print(f"{'model':<48} {'voices':<16} {'content words':>13} {'words wrong':>11}")
    for folder in args.model or [DEFAULT_MODEL]:
        for voices, (content, error) in ear_figures(folder, args.split, args.clips).items():
            print(f"{folder[-48:]:<48} {voices.replace('_', ' '):<16} {content:>13.1%} {error:>11.1%}")


if __name__ == "__main__":
    main()
