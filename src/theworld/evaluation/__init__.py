"""Scoring a model: everything `theworld eval` and the training stages' closing figures measure.

- `toyworld_qa`: accuracy per question family on ToyWorld's test split, with the world on and off (`evaluate`).
- `world_parts`: the VAE's reconstruction, the dynamics' rollout, the object reader's states and facts.
- `speech`: spoken questions against their typed twins, the ear's transcripts, the round trip of the answers.
- `world_physics`: whether generated frames move objects as the simulator does (`trajectory_error`).
- `answers`, `world_data`, `speech_data`: asking a model, and the ToyWorld clips, targets and speech that both
  evaluation and training use.
"""
