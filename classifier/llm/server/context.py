"""The context guard of the server backend: a comment too long for the context window is
shortened, with the server's own tokenizer, as the local backend shortens it.

vLLM serves `POST /tokenize` (chat messages or plain text, answering the count and its
`max_model_len`) and `POST /detokenize` beside `/v1`. Most comments are far shorter than
the window: a prompt whose UTF-8 bytes, plus a template's few tokens, fit is sent without
asking (a byte-level tokenizer spends at least one byte per token), so the guard costs
requests only for long comments. A server without these endpoints gets prompts unchanged
(its own 400 then says what was too long).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Awaitable, Callable

from ..base import Prompt
from ..errors import ContextOverflow

TEMPLATE_TOKENS = 64  # the most tokens a chat template adds around two messages (ChatML: ~10)
logger = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class TokenizerUnavailable(Exception):
    """The server has no /tokenize (not vLLM, or an old one)."""


class ContextGuard:
    """`fit(prompt, max_tokens)`: the prompt, its comment shortened if it must be, and
    whether it was. `post(path, body)` sends a JSON request to the server's root."""

    def __init__(self, post: Post, model: str, max_length: int) -> None:
        self.post, self.model, self.max_length = post, model, max_length
        self.available = True

    async def fit(self, prompt: Prompt, max_tokens: int) -> tuple[Prompt, bool]:
        limit = self.max_length - max_tokens
        size = sum(len(part.encode()) for part in (prompt.instructions, prompt.context, prompt.comment, prompt.question)) + TEMPLATE_TOKENS
        if size <= limit or not self.available:
            return prompt, False
        try:
            return await self._shorten(prompt, max_tokens)
        except TokenizerUnavailable as exc:
            self.available = False
            logger.warning("long comments cannot be shortened to fit the context: %s", exc)
            return prompt, False

    async def _shorten(self, prompt: Prompt, max_tokens: int) -> tuple[Prompt, bool]:
        count, window = await self._count(prompt)
        limit = min(self.max_length, window) - max_tokens
        if count <= limit:
            return prompt, False
        comment = (await self._call("/tokenize", {"prompt": prompt.comment, "add_special_tokens": False}))["tokens"]
        keep = min(len(comment), limit - (count - len(comment)))
        while keep > 0:
            text = (await self._call("/detokenize", {"tokens": comment[:keep]}))["prompt"]
            shorter = replace(prompt, comment=text)
            count, _ = await self._count(shorter)
            if count <= limit:
                return shorter, True
            keep -= count - limit  # decoding a cut can re-tokenize a little longer
        raise ContextOverflow(
            f"prompt does not fit the context window: its fixed part and max_tokens={max_tokens} leave no room "
            f"for the comment within {min(self.max_length, window)} tokens; raise --max-length"
        )

    async def _count(self, prompt: Prompt) -> tuple[int, int]:
        answer = await self._call("/tokenize", {"messages": prompt.messages(), "add_generation_prompt": True})
        return answer["count"], answer["max_model_len"]

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post(path, {"model": self.model, **body})
