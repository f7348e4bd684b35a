"""The recipe that builds TheWorld-tiny from nothing on CPU: every stage `theworld train` runs, by name.

The stages of TheWorld's checkpoint (`CHECKPOINT_STAGES`) each read the folder the previous one wrote and write it
back atomically, so `theworld train vae`, `... dynamics`, `... objects`, `... language`, `... hearing`,
`... speaking` run one at a time and `theworld train all` (`orchestration.train_all`) runs them in order.
"""

from pathlib import Path

from theworld.training import (
    cosmos_dynamics_stage,
    language_stage,
    speech_stages,
    world_ar,
    world_ar_decoder,
    world_ar_text,
    world_stages,
)
from theworld.training.checkpoint_stage import checkpoint_stage
from theworld.training.settings import SETTINGS, RecipeSettings
from theworld.training.stage import Stage, StageContext

__all__ = ["CHECKPOINT_STAGES", "STAGES", "run_stage"]

STAGES: dict[str, Stage] = {
    "vae": Stage(checkpoint_stage(world_stages.vae, first=True), SETTINGS),
    "dynamics": Stage(checkpoint_stage(world_stages.dynamics), SETTINGS),
    "objects": Stage(checkpoint_stage(world_stages.objects), SETTINGS),
    "language": Stage(checkpoint_stage(language_stage.language), SETTINGS),
    "hearing": Stage(checkpoint_stage(speech_stages.hearing), SETTINGS),
    "speaking": Stage(checkpoint_stage(speech_stages.speaking), SETTINGS),
    # A stage that writes a folder of its own (not TheWorld's checkpoint, and not part of `train all`), with its
    # own settings table: the autoregressive world model.
    "world-ar": Stage(world_ar.world_ar_stage, world_ar.WORLD_AR_SETTINGS),
    # Its diffusion decoder, trained into the folder "world-ar" wrote.
    "world-ar-decoder": Stage(world_ar_decoder.world_ar_decoder_stage, world_ar_decoder.DECODER_SETTINGS),
    # Its text-to-frame model (text2world's first frame), trained into that folder after the decoder.
    "world-ar-text": Stage(world_ar_text.world_ar_text_stage, world_ar_text.TEXT_TO_FRAME_SETTINGS),
    # Replaces a trained checkpoint's dynamics with a tiny Cosmos predictor (not part of `train all`).
    "cosmos-dynamics": Stage(
        checkpoint_stage(cosmos_dynamics_stage.cosmos_dynamics), cosmos_dynamics_stage.COSMOS_DYNAMICS_SETTINGS
    ),
}
CHECKPOINT_STAGES = ("vae", "dynamics", "objects", "language", "hearing", "speaking")


def run_stage(
    stage: str, output_dir: Path, settings: RecipeSettings, speech_folder: Path | None = None, jobs: int = 1
) -> dict:
    """Run one stage into `output_dir` and return its metrics. A stage of TheWorld's checkpoint trains the
    checkpoint there (created by the "vae" stage) and saves it back. With `speech_folder` (filled by `train all`'s
    second process), the hearing and speaking stages take what was prepared there. With `jobs=2`, the language and
    hearing stages train in two processes, one data shard each (the same checkpoint as one process makes)."""
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {', '.join(STAGES)} or 'all'")
    return STAGES[stage].train(StageContext(stage, Path(output_dir), settings, jobs, speech_folder))
