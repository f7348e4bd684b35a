"""TheWorld: Gemma 3 fused with a Cosmos-style world model."""
