"""The network the encoder is tuned in (`tuning`): the encoder, mean pooling as the
sentence-transformers model pools, and one logit per decision; only the encoder is kept.

A module of its own because it imports torch, which a server without labels never loads.
"""
from __future__ import annotations

import torch
from torch import nn


class Heads(nn.Module):
    """Masked multi-label loss: a comment counts only for the decisions it is labelled for, and
    a decision's positives weigh `balance` times its negatives (rare topics are not drowned)."""

    def __init__(self, encoder: nn.Module, columns: int, balance: torch.Tensor) -> None:
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.config.hidden_size, columns)
        self.register_buffer("balance", balance)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor | None = None,
                known: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        logits = self.head((states * weights).sum(1) / weights.sum(1).clamp(min=1e-9))
        if targets is None or known is None:
            return {"logits": logits}
        losses = nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.balance,
                                                                reduction="none")
        return {"loss": (losses * known).sum() / known.sum().clamp(min=1), "logits": logits}
