"""Training the tiny models from nothing on CPU: `theworld train STAGE`.

- `recipe`: every stage by name (`STAGES`) and `run_stage`; `settings`: their sizes (`SETTINGS`: full, smoke).
- `stage`, `checkpoint_stage`: what a stage is, and how a stage of TheWorld's checkpoint loads, trains and saves it.
- `world_stages`, `language_stage`, `speech_stages`: the stages of TheWorld's checkpoint, in `train all`'s order;
  `world_ar`: the autoregressive world model's stage, which writes a folder of its own.
- `orchestration`: `train all`, with the speech stages' data, ear and voice prepared in a second process.
- `vae`, `dynamics`, `objects`, `language`, `speech`, `hearing_data`: what each stage trains, and on what.
- `loop`: the one optimisation loop; `parallel`: data-parallel training in two processes on one machine.
"""
