"""The model side of a Ge'ez vocabulary: each re-purposed embedding row starts as the mean of
the rows of the pieces the original tokenizer wrote those bytes with. The output projection is
tied to the embedding, so the new tokens' logits start as the mean of their pieces' logits and
the model's outputs on other text stay the same; random rows would take over decoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from utils.geez_vocab.tokenizer_edit import Swap, load_tokenizer


def piece_ids(original_tokenizer: dict[str, Any], swaps: Sequence[Swap]) -> dict[int, list[int]]:
    """Re-purposed id -> the ids the original BPE model splits its new token's bytes into."""
    model = load_tokenizer(original_tokenizer).model
    return {swap.id: [piece.id for piece in model.tokenize(swap.new)] for swap in swaps}


def initialize_rows(embedding: torch.Tensor, pieces: dict[int, list[int]]) -> None:
    """Set each row `id` of `embedding` (vocab, d_model) to the mean of the *original* rows
    `pieces[id]`, in place; a piece that is itself re-purposed still counts with its old row."""
    original = embedding.detach().clone()
    with torch.no_grad():
        for index, parts in pieces.items():
            if not parts:
                raise ValueError(f"new token at id {index} has no pieces in the old vocabulary")
            embedding[index] = original[parts].mean(dim=0)


def repurpose_embeddings(
    model: Any, original_tokenizer: dict[str, Any], swaps: Sequence[Swap]
) -> None:
    """Initialize the re-purposed rows of a transformers Whisper model (in place). Raises
    ValueError when the output projection is not tied to the embedding: a Ge'ez vocabulary
    would then leave the old meanings in the output layer."""
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    if output.data_ptr() != embedding.data_ptr():
        raise ValueError("the model's output projection is not tied to its token embedding")
    initialize_rows(embedding, piece_ids(original_tokenizer, swaps))
