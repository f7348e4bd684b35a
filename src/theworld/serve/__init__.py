"""`theworld serve`: an OpenAI-compatible server for world-aware chat, speech and world generation.

- `settings`: `ServerSettings` and every limit with the flag that raises it; `app`: `create_app(settings)`.
- `protocol`: requests and responses in OpenAI's shapes; `errors`: OpenAI-style errors; `auth`, `limits`: the API
  key and the limits, checked before decoding.
- `chat`, `audio`, `models`: one module per endpoint; `conversation`, `inputs`: messages and media read.
- `engine`, `batcher`, `generation`, `world_cache`: the model, its thread, batched `generate`, imagined worlds.

Import `theworld.serve.app` for the app; this package imports nothing, so `theworld serve --help` stays quick.
"""
