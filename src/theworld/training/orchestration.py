"""`theworld train all`: every stage of TheWorld's checkpoint in order, on two cores.

With `jobs=2`, a second process prepares what the speech stages need (the speech data, the ear's transcription
training and the voice) while this one runs the vae, dynamics and objects stages, which need nothing from it;
then the language and hearing stages run in two processes each. On 2 cores neither sits idle for long, and the
checkpoint is the one the stages make run one by one in one process.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from theworld.training import speech
from theworld.training.checkpoint_stage import console, new_model
from theworld.training.hearing_data import hearing_examples, make_speech_data
from theworld.training.parallel import log_tail, spawn_logged
from theworld.training.recipe import CHECKPOINT_STAGES, run_stage
from theworld.training.settings import RecipeSettings
from theworld.training.speech_stages import add_ears, train_ear, train_voice

__all__ = ["train_all"]


def train_all(output_dir: Path, settings: RecipeSettings, jobs: int = 2) -> dict:
    """Every stage of TheWorld's checkpoint in order (`CHECKPOINT_STAGES`), in one process or, with `jobs=2`,
    two."""
    output_dir = Path(output_dir)
    metrics: dict = {}
    if jobs < 2:
        for stage in CHECKPOINT_STAGES:
            metrics.update(run_stage(stage, output_dir, settings))
        return metrics
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    speech_folder = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-ears-", dir=output_dir.parent))
    log = speech_folder / "ears_and_voice.log"
    second = None
    try:
        second = spawn_logged(_prepare_speech_stages, (speech_folder, settings), log)
        console.print(f"ears and voice train in a second process (log: {log})")
        for stage in ("vae", "dynamics", "objects"):
            metrics.update(run_stage(stage, output_dir, settings))
        second.join()  # before the language stage takes the second core
        metrics.update(run_stage("language", output_dir, settings, jobs=jobs))
        if second.exitcode != 0:
            raise RuntimeError(
                f"{log_tail(log)}\nThe second process (ears and voice) failed, above; the world stages are saved in "
                f"{output_dir}: run `theworld train hearing` and `theworld train speaking` to finish"
            )
        for stage in ("hearing", "speaking"):
            metrics.update(run_stage(stage, output_dir, settings, speech_folder=speech_folder, jobs=jobs))
    finally:
        if second is not None and second.is_alive():
            second.terminate()
            second.join()
        shutil.rmtree(speech_folder, ignore_errors=True)
    return metrics


def _prepare_speech_stages(folder: Path, settings: RecipeSettings) -> None:
    """What the hearing and speaking stages need that no world stage feeds, made in `folder` by a second process
    while the world stages run: the speech data, the ear's transcription training and the voice. They depend only
    on the tokenizer, which the recipe builds the same way every time."""
    model, processor = new_model(settings)
    torch.manual_seed(settings.seed)  # as `checkpoint_stage` seeds the hearing stage
    processor = add_ears(model, processor, settings)
    data = make_speech_data(processor, hearing_examples(settings), settings)
    started = time.perf_counter()
    ears_loss = train_ear(model, data, speech.transcript_ids(processor.tokenizer, data.ear_texts), settings)
    save_file(model.audio_encoder.state_dict(), folder / "ears.safetensors")
    data.save(folder / "speech_data.safetensors")
    seconds = round(time.perf_counter() - started, 1)
    (folder / "ears_metrics.json").write_text(json.dumps({"ears_ctc_loss": ears_loss, "ears_seconds": seconds}))
    torch.manual_seed(settings.seed)  # as `checkpoint_stage` seeds the speaking stage
    speaker, metrics = train_voice(processor.tokenizer, settings)
    speaker.save_pretrained(folder)
    (folder / "voice_metrics.json").write_text(json.dumps(metrics))
