"""The real-size parts the offload memory table sizes (benchmarks/offload_memory.py), from public configs, and
`LiveBytes`, which counts the bytes of the tensors a stage makes. Build the parts on the meta device
(accelerate's `init_empty_weights`) to size them, or under `FakeTensorMode` to run them without memory.
"""

import contextlib
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["DIT", "GUARD_TOKENS", "TEXT_TOKENS", "LiveBytes", "cosmos_parts", "default_dtype", "peak_of", "theworld_4b"]

# Public configs (docs/offload-memory.md says where each comes from).
T5_11B = dict(
    vocab_size=32128, d_model=1024, d_kv=128, d_ff=65536, num_layers=24, num_heads=128, feed_forward_proj="relu"
)
QWEN25_VL_7B = dict(
    text_config=dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
    ),
    vision_config=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        fullatt_block_indexes=[7, 15, 23, 31],
    ),
    tie_word_embeddings=False,
)
DIT_2B = dict(
    in_channels=17,
    out_channels=16,
    num_attention_heads=16,
    attention_head_dim=128,
    num_layers=28,
    mlp_ratio=4.0,
    text_embed_dim=1024,
    adaln_lora_dim=256,
    max_size=(128, 240, 240),
    patch_size=(1, 2, 2),
    rope_scale=(1.0, 3.0, 3.0),
    concat_padding_mask=True,
    extra_pos_embed_type=None,
)
DIT_25_2B = dict(
    DIT_2B, use_crossattn_projection=True, crossattn_proj_in_channels=100352, encoder_hidden_states_channels=1024
)
LLAMA_GUARD_3_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
)
SIGLIP_SO400M_384 = dict(
    text_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16),
    vision_config=dict(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=27,
        num_attention_heads=16,
        image_size=384,
        patch_size=14,
    ),
)
DIT = {"Cosmos2VideoToWorldPipeline": DIT_2B, "Cosmos2_5_PredictBasePipeline": DIT_25_2B}
TEXT_TOKENS, GUARD_TOKENS = 512, 1024  # the pipelines' max_sequence_length; a Llama Guard prompt with its policy


class LiveBytes(TorchDispatchMode):
    """The peak bytes of live tensor storages made inside it. Written here because torch's MemTracker refuses a
    module called more than once per pass, which Wan's VAE does for every chunk of frames."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # A view (of a weight, say) shares its input's storage: only storages new to this op are allocations.
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.untyped_storage()._cdata in inputs:
                continue
            if tensor.untyped_storage()._cdata not in self.live:
                storage = tensor.untyped_storage()
                self.live[storage._cdata] = storage.nbytes()
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
                weakref.finalize(storage, self._free, storage._cdata)
        return out

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def peak_of(fn) -> int:
    with torch.no_grad(), LiveBytes() as live:
        fn()
    return live.peak


def cosmos_parts(family: str) -> dict:
    """The real-size modules of one pipeline and of Cosmos' guardrail by part name: the guardrail's video filter
    in fp32 (as Cosmos loads it), the rest in bf16."""
    import diffusers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        ResNetConfig,
        ResNetModel,
        SiglipConfig,
        SiglipModel,
        T5Config,
        T5EncoderModel,
    )
    from transformers.initialization import no_init_weights

    predict2 = family == "Cosmos2VideoToWorldPipeline"
    with default_dtype(torch.bfloat16):
        text = (
            T5EncoderModel(T5Config(**T5_11B))
            if predict2
            else Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**QWEN25_VL_7B))
        )
        dit = diffusers.CosmosTransformer3DModel(**DIT[family])
        vae = diffusers.AutoencoderKLWan()  # its defaults are Wan2.1's VAE, which both pipelines use
        guard = LlamaForCausalLM(LlamaConfig(**LLAMA_GUARD_3_8B))
    with no_init_weights():  # SigLIP's truncated-normal init asks for data that fake tensors do not have
        siglip = SiglipModel(SiglipConfig(**SIGLIP_SO400M_384))
    video_filter = torch.nn.ModuleDict(
        dict(
            siglip=siglip,
            classifier=torch.nn.Sequential(
                torch.nn.Linear(1152, 512),
                torch.nn.BatchNorm1d(512),
                torch.nn.ReLU(),
                torch.nn.Linear(512, 256),
                torch.nn.BatchNorm1d(256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, 7),
            ),
            faces=ResNetModel(ResNetConfig()),  # RetinaFace's ResNet-50 backbone; its FPN and heads are left out
        )
    )
    return dict(text_encoder=text, model=dit, vae=vae, llama_guard=guard, video_filter=video_filter)


def theworld_4b(empty: bool = False):
    """TheWorld at the gemma-3-4b preset (google/gemma-3-4b-it's config with Cosmos-Predict2's VAE), on the meta
    device if `empty`."""
    from accelerate import init_empty_weights
    from transformers.initialization import no_init_weights

    from theworld import TheWorld
    from theworld.modeling.presets import config_from_name

    with init_empty_weights() if empty else contextlib.nullcontext(), default_dtype(torch.bfloat16), no_init_weights():
        model = TheWorld(config_from_name("gemma-3-4b"))
    # Gemma 3's output layer is its input embedding, as loading a checkpoint makes it; tied outside
    # init_empty_weights, which would register a new meta tensor in place of the shared one.
    model.tie_weights()
    return model
