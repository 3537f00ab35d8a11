"""Caption tokenisation: open_clip's BPE tokenizer (49,408 tokens, context length 77), or any
object with its call signature ``tokenizer(texts: list[str]) -> LongTensor (len(texts), L)``."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import torch

__all__ = ["open_clip_tokenizer", "resolve_tokenizer", "tokenize", "CaptionTokens"]

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


def open_clip_tokenizer(context_length: int = 77) -> Tokenizer:
    """open_clip's ``SimpleTokenizer``: lower-cased, whitespace-cleaned BPE, ``<start_of_text>`` …
    ``<end_of_text>``, zero padding; a caption too long is cut and ``<end_of_text>`` forced into
    the last slot. Its vocabulary file ships with open_clip_torch, so this works offline."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def resolve_tokenizer(tokenizer: str | Tokenizer = "open_clip", context_length: int = 77) -> Tokenizer:
    """``"open_clip"``, ``"package.module:factory"`` (called with ``context_length``), or a
    tokenizer object itself."""
    if callable(tokenizer):
        return tokenizer
    if tokenizer == "open_clip":
        return open_clip_tokenizer(context_length)
    if isinstance(tokenizer, str) and ":" in tokenizer:
        module, _, name = tokenizer.partition(":")
        return getattr(importlib.import_module(module), name)(context_length=context_length)
    raise ValueError(f"tokenizer must be 'open_clip', 'package.module:factory' or a callable, got {tokenizer!r}")


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], context_length: int | None = None) -> torch.Tensor:
    """Token ids (len(texts)×L, int64), checked: a tokenizer must return one row per text."""
    ids: Any = tokenizer(list(texts))
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != len(texts):
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"tokenizer returned {shape} for {len(texts)} texts; expected a (texts × context) tensor")
    if context_length is not None and ids.shape[1] != context_length:
        raise ValueError(f"tokenizer returned {ids.shape[1]} tokens per text; the text tower takes {context_length}")
    return ids.long()


class CaptionTokens:
    """``flip_tokenize``: a caption (str) into its token ids (``context_length``, int64), for
    captions read as text — WebDataset shards streamed by core's ``shards`` dataset
    (``field_transforms=dict(text=dict(type="flip_tokenize"))``)."""

    def __init__(self, tokenizer: str | Tokenizer = "open_clip", context_length: int = 77) -> None:
        self.tokenizer, self.context_length = resolve_tokenizer(tokenizer, context_length), context_length

    def __call__(self, caption: str) -> torch.Tensor:
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"empty or non-text caption {caption!r}")
        return tokenize(self.tokenizer, [caption.strip()], self.context_length)[0]
