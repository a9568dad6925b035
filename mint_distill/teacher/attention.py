"""Attention for sampling on a CPU: one decoding step as two small matrix products.

On this 2-core CPU, `scaled_dot_product_attention` for one new token per row of a padded batch
(SmolLM2: 9 query heads sharing 3 key/value heads, bfloat16) took 1.3 ms a layer, a quarter of a
sampling step; the same attention written as `softmax(q k^T + mask) v` over the key/value heads
takes about half of that. Prompt processing (many query tokens) keeps transformers' SDPA.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

DECODE_ATTENTION = "mint_decode"
# Attention features some models pass that only the general kernels implement.
_GENERAL_ONLY = ("position_bias", "softcap", "s_aux", "sinks")


def decode_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query (batch, heads, 1, dim), key/value (batch,
    kv_heads, length, dim) -> (batch, 1, heads, dim). Anything but one query token without
    dropout goes to SDPA."""
    batch, heads, query_length, dim = query.shape
    general = any(kwargs.get(name) is not None for name in _GENERAL_ONLY)
    if query_length != 1 or (dropout and module.training) or general:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    kv_heads = key.shape[1]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # query head h uses key/value head h // group
    scores = torch.matmul(grouped, key.transpose(-1, -2)) * (dim**-0.5 if scaling is None else scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    output = torch.matmul(weights, value)  # (batch, kv_heads, group, dim)
    return output.reshape(batch, 1, heads, value.shape[-1]), None


AttentionInterface.register(DECODE_ATTENTION, decode_attention_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(DECODE_ATTENTION, sdpa_mask)


def use_decode_attention(model) -> bool:
    """Switch a causal LM on the CPU that runs SDPA to `decode_attention_forward`; True if it did."""
    if model.device.type != "cpu" or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    model.set_attn_implementation(DECODE_ATTENTION)
    return model.config._attn_implementation == DECODE_ATTENTION

