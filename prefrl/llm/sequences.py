"""Sequence log-probabilities of completions under any Hugging Face causal LM.

A batch is prompt + completion token ids, right-padded; only completion tokens count: the
log-probability of a completion is the sum over its tokens of log softmax at the target token
(REFERENCES: the DPO family), with the prompt and the padding masked out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Batch:
    """Token ids (B, T), attention mask (B, T) and completion mask (B, T): 1 where a token is a completion token."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor) -> Batch:
        return Batch(self.input_ids[idx], self.attention_mask[idx], self.completion_mask[idx])

    @property
    def completion_tokens(self) -> torch.Tensor:
        """Completion tokens per sequence (B,)."""
        return self.completion_mask.sum(1)


def context_length(model: Any) -> int | None:
    """The longest sequence the model accepts, from its config (None if it does not say)."""
    cfg = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def encode(tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int | None) -> Batch:
    """Tokenize prompt + completion pairs; clear errors for a missing pad token, empty completions and
    sequences longer than `max_length` (the model's context)."""
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: set one (e.g. tokenizer.pad_token = tokenizer.eos_token) "
                         "before training")
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts and {len(completions)} completions")
    rows = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            c = c + [tokenizer.eos_token_id]
        if not completion.strip() or len(c) == (tokenizer.eos_token_id is not None):
            raise ValueError(f"record {i}: the completion is empty (prompt {prompt[:60]!r})")
        if not p:
            raise ValueError(f"record {i}: the prompt is empty")
        if max_length is not None and len(p) + len(c) > max_length:
            raise ValueError(f"record {i}: prompt + completion is {len(p) + len(c)} tokens, longer than the model's "
                             f"context of {max_length} (prompt {prompt[:60]!r})")
        rows.append((p, c))
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    comp = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        comp[i, len(p) : len(p) + len(c)] = 1
    return Batch(ids, attn, comp)


def sequence_logprobs(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of log p(token | earlier tokens) over each sequence's completion tokens, shape (B,)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    targets = batch.input_ids[:, 1:]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * batch.completion_mask[:, 1:]).sum(-1)


@torch.no_grad()
def reference_logprobs(model: Any, batch: Batch, batch_size: int = 64) -> torch.Tensor:
    """The reference model's sequence log-probs, computed once (in chunks) and cached by the caller."""
    model.eval()
    return torch.cat([sequence_logprobs(model, batch.select(torch.arange(s, min(s + batch_size, len(batch)))))
                      for s in range(0, len(batch), batch_size)])
