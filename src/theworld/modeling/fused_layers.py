"""Gemma 3's decoder layer with fewer calls per token, for quantized CPU decoding (`quantize(model, "q8_0")`).

A decode step of a small model on a CPU spends as much time in Python, one op and one module call at a time, as in
reading its weights. This layer computes what `Gemma3DecoderLayer` computes in two kernel calls around the
attention: one for the input norm, q, k and v (one Q8_0 matrix), the query and key norms and their rotary
embedding; one for everything after the attention (the output projection, the norm after it with the residual
add, the norm before the MLP, gate and up in one matrix, GELU(gate) * up, the down projection, its norm and
residual add). It keeps what the rest of transformers relies on: it is a `Gemma3DecoderLayer` (output capturing
finds it), it takes the same arguments, writes the same KV cache (so the world tokens in the prefix cache stay),
and attends through transformers' own attention function with the mask the model made. A model whose activation
is not Gemma's GELU runs the same parts as separate calls.
"""

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.gemma3.modeling_gemma3 import Gemma3DecoderLayer, eager_attention_forward

from theworld.modeling.block_quantization import BlockLinear, KernelRMSNorm, LayerTail, attention_inputs

__all__ = ["FusedGemma3DecoderLayer"]


class FusedGemma3DecoderLayer(Gemma3DecoderLayer):
    def __init__(self, layer: Gemma3DecoderLayer):
        nn.Module.__init__(self)  # the parts come from `layer`, not from a config
        attention, mlp = layer.self_attn, layer.mlp
        self.config, self.hidden_size, self.layer_idx = layer.config, layer.hidden_size, layer.layer_idx
        self.attention = attention  # its settings (heads, scaling, window) for the attention function
        self.attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        self.head_dim = attention.head_dim
        self.query_heads = attention.q_proj.out_features // self.head_dim
        self.key_heads = attention.k_proj.out_features // self.head_dim
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        biases = [p.bias for p in projections]
        norms = {
            name: KernelRMSNorm(1.0 + norm.weight.detach().float(), norm.eps)
            for name in ("input", "post_attention", "pre_feedforward", "post_feedforward")
            for norm in [getattr(layer, f"{name}_layernorm")]
        }
        # The norms before the projections run inside them, the norms after them with the residual add.
        qkv_bias = None if biases[0] is None else torch.cat(biases)
        self.qkv_proj = BlockLinear(torch.cat([p.weight for p in projections]), qkv_bias, norm=norms["input"])
        self.o_proj = BlockLinear(attention.o_proj.weight, attention.o_proj.bias)
        self.post_attention_layernorm = norms["post_attention"]
        # q_norm and k_norm as one scale per head: (query heads + key heads, head_dim).
        scales = [1.0 + attention.q_norm.weight.detach().float(), 1.0 + attention.k_norm.weight.detach().float()]
        qk_scale = torch.cat([scales[0].expand(self.query_heads, -1), scales[1].expand(self.key_heads, -1)])
        self.qk_norm = KernelRMSNorm(qk_scale, attention.q_norm.eps)
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        self.gate_up_proj = BlockLinear(gate_up, norm=norms["pre_feedforward"])
        # Gemma's activation (GELU, tanh approximation) times up, in the down projection's call where it is that.
        self.gated = self.config.hidden_activation == "gelu_pytorch_tanh"
        self.down_proj = BlockLinear(mlp.down_proj.weight, gated=self.gated)
        self.post_feedforward_layernorm = norms["post_feedforward"]
        self.act_fn = mlp.act_fn
        # Everything after the attention in one kernel call, where the activation is the kernel's.
        parts = (self.o_proj, self.post_attention_layernorm, self.gate_up_proj, self.down_proj)
        self.tail = LayerTail(*parts, self.post_feedforward_layernorm) if self.gated else None
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"):
            delattr(attention, name)  # fused above; the fp32 weights would only take memory

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        **kwargs,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        # (cos, sin), a row per token: position embeddings may be shared by the batch (a leading 1)
        rotary = tuple(t.expand(batch, length, -1).reshape(batch * length, self.head_dim) for t in position_embeddings)
        # input_layernorm, q|k|v, the query and key norms and the rotary embedding: one kernel call
        qkv = attention_inputs(self.qkv_proj, self.qk_norm, hidden_states, rotary)
        qkv = qkv.view(batch, length, -1, self.head_dim)
        heads = self.query_heads + self.key_heads
        query = qkv[:, :, : self.query_heads].transpose(1, 2)
        key, value = qkv[:, :, self.query_heads : heads].transpose(1, 2), qkv[:, :, heads:].transpose(1, 2)
        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)
        attended, _ = self.attend(
            self.attention,
            query,
            key,
            value,
            attention_mask,
            scaling=self.attention.scaling,
            sliding_window=self.attention.sliding_window,
            **kwargs,
        )
        attended = attended.reshape(batch, length, -1)
        if self.tail is not None:
            return self.tail(attended, hidden_states)
        hidden_states = self.post_attention_layernorm(self.o_proj(attended), residual=hidden_states)
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)  # pre_feedforward_layernorm inside
        return self.post_feedforward_layernorm(self.down_proj(self.act_fn(gate) * up), residual=hidden_states)
