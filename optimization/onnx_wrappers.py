"""Wrapper modules over the Hugging Face Whisper weights that optimization/onnx_export.py
exports: plain torch attention, no cache classes, the inputs and outputs of docs/onnx.md.

`EncoderForOnnx`: log-mel -> each decoder layer's cross-attention keys and values.
`DecoderForOnnx`: one cached decoder pass -> logits, the grown self-attention cache and the
alignment heads' cross-attention probabilities (what word timing reads).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

MASKED = -1e9  # additive mask; fp16 conversion clamps it to -65504, still exp() == 0


def attend(q: Tensor, k: Tensor, v: Tensor, heads: int, mask: Tensor | None = None) -> Tensor:
    """Multi-head attention in plain ops. q (b, n, d) already scaled by head_dim**-0.5, k and v
    (b, s, d), mask (n, s) additive or None -> (b, n, d)."""
    b, n, d = q.shape
    q = q.reshape(b, n, heads, d // heads).transpose(1, 2)
    k = k.reshape(b, -1, heads, d // heads).transpose(1, 2)
    v = v.reshape(b, -1, heads, d // heads).transpose(1, 2)
    weights = q @ k.transpose(2, 3)
    if mask is not None:
        weights = weights + mask
    return (weights.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


def cross_attend(
    q: Tensor, k: Tensor, v: Tensor, heads: int, keep: Sequence[int] = ()
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention over the audio without splitting k and v into heads. q (b, n, d)
    already scaled; k, v (a, 1500, d) with `a` dividing b, the b rows grouped per audio (a = 1:
    all rows share one audio). -> (b, n, d), and the attention probabilities of the heads in
    `keep` (b, len(keep), n, 1500) (None when `keep` is empty).

    Why: splitting the cached audio keys into heads copies (a, 1500, d) twice per layer and
    token, which cost more than the rest of a decoder step on CPU and grew with the beam. Here
    each head's query sits on its own block of d (zeros elsewhere), one product against k^T
    (which onnxruntime reads transposed in place) gives every head's scores, one product with
    v every head's mix, and each head keeps its own block: 8x the multiply-adds of this small
    product, no copies, and the rows of a beam need no copies of the audio's keys."""
    b, n, d = q.shape
    columns = torch.arange(d, device=q.device)[None, :] // (d // heads)
    blocks = (columns == torch.arange(heads, device=q.device)[:, None]).to(q.dtype)  # (H, d)
    q_blocks = (q[:, :, None, :] * blocks).reshape(k.shape[0], -1, d)  # (a, b/a * n * H, d)
    probabilities = (q_blocks @ k.transpose(1, 2)).softmax(-1)  # rows: (b/a, n, H) per audio
    mixed = (probabilities @ v).reshape(b, n, heads, d)
    kept = None
    if keep:  # the same probabilities the mix used: word timing sees what decoding attended to
        kept = probabilities.reshape(b, n, heads, k.shape[1])[:, :, list(keep)].transpose(1, 2)
    return (mixed * blocks).sum(2), kept


class EncoderForOnnx(nn.Module):
    """input_features (batch, n_mels, 3000) -> cross_k, cross_v (n_layers, batch, 1500, d)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder, self.decoder_layers = model.model.encoder, model.model.decoder.layers
        self.heads = model.config.encoder_attention_heads

    def forward(self, input_features: Tensor) -> tuple[Tensor, Tensor]:
        e = self.encoder
        x = nn.functional.gelu(e.conv1(input_features))
        x = nn.functional.gelu(e.conv2(x)).permute(0, 2, 1) + e.embed_positions.weight
        for layer in e.layers:
            a, h = layer.self_attn, layer.self_attn_layer_norm(x)
            x = x + a.out_proj(
                attend(a.q_proj(h) * a.scaling, a.k_proj(h), a.v_proj(h), self.heads)
            )
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        x = e.layer_norm(x)
        keys = [layer.encoder_attn.k_proj(x) for layer in self.decoder_layers]
        values = [layer.encoder_attn.v_proj(x) for layer in self.decoder_layers]
        return torch.stack(keys), torch.stack(values)


class DecoderForOnnx(nn.Module):
    """One cached decoder pass: see the module docstring for the inputs and outputs.
    alignment_weights holds the heads of `model_alignment_heads(model)`, in that order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder, self.proj_out = model.model.decoder, model.proj_out
        self.heads, layers = model.config.decoder_attention_heads, model.config.decoder_layers
        pairs = model_alignment_heads(model)
        # per layer, its alignment heads: each layer hands over its own probabilities
        self.keep = [[head for layer, head in pairs if layer == i] for i in range(layers)]

    def forward(
        self, input_ids: Tensor, self_k: Tensor, self_v: Tensor, cross_k: Tensor, cross_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        d = self.decoder
        n_past, n_new = self_k.shape[2], input_ids.shape[1]
        x = d.embed_tokens(input_ids) + d.embed_positions.weight[n_past : n_past + n_new]
        rows = torch.arange(n_new, device=x.device)[:, None] + n_past
        cols = torch.arange(n_past + n_new, device=x.device)[None, :]
        mask = torch.where(cols > rows, MASKED, 0.0).to(x.dtype)  # (n_new, n_past + n_new)
        new_k, new_v, alignment = [], [], []
        for i, layer in enumerate(d.layers):
            a, h = layer.self_attn, layer.self_attn_layer_norm(x)
            new_k.append(torch.cat([self_k[i], a.k_proj(h)], dim=1))
            new_v.append(torch.cat([self_v[i], a.v_proj(h)], dim=1))
            x = x + a.out_proj(
                attend(a.q_proj(h) * a.scaling, new_k[i], new_v[i], self.heads, mask)
            )
            c, h = layer.encoder_attn, layer.encoder_attn_layer_norm(x)
            q = c.q_proj(h) * c.scaling
            mixed, kept = cross_attend(q, cross_k[i], cross_v[i], self.heads, self.keep[i])
            alignment += [kept] if kept is not None else []
            x = x + c.out_proj(mixed)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        logits = self.proj_out(d.layer_norm(x))
        return logits, torch.stack(new_k), torch.stack(new_v), torch.cat(alignment, dim=1)


def model_alignment_heads(model: nn.Module) -> list[list[int]]:
    """The sorted [layer, head] pairs whose cross-attention times words: the same heads as the
    transformers engine reads (`windowed.alignment_heads`)."""
    from utils.transcription.windowed import alignment_heads  # the engines' rule, not a copy

    c = model.config
    pairs = alignment_heads(model.generation_config, c.decoder_layers, c.decoder_attention_heads)
    return [list(pair) for pair in pairs]
