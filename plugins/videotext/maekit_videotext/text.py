"""Captions as token ids, BERT's embedding layer, and SimVTP's text masking.

The tokenizer is BERT-style WordPiece (lower-cased, ``[PAD] [UNK] [CLS] [SEP] [MASK]``, captions as
``[CLS] … [SEP]``) run by the ``tokenizers`` library. bert-base-uncased's vocabulary is a hub download, so:

- ``vocab_file`` (a BERT ``vocab.txt``, one token per line, e.g. a local copy of bert-base-uncased's)
  loads a ready vocabulary; or
- without one, a WordPiece vocabulary of at most ``vocab_size`` tokens (characters, then the most
  frequent words: :func:`train_wordpiece`) is learned from the run's own training captions before
  the first step (core's tokenizer-fit hook), and written as ``vocab.txt`` into the run's folder.

Either way the vocabulary lives in the model's state as a byte buffer, so a checkpoint alone
tokenizes as it was trained (no file beside it needed) and never runs pickled code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from maekit.nn.tokenizers import Tokenizer

__all__ = ["SPECIAL_TOKENS", "CaptionTokenizer", "TextBatch", "TextEmbeddings", "TextMasker", "train_wordpiece"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(captions: Iterable[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary (tokens in id order) of at most ``vocab_size`` tokens from ``captions``:
    BERT's special tokens, then every character seen at the start of a word (``c``) and inside one
    (``##c``), then the most frequent whole words — each group by falling count, ties by the token
    itself. Words are BERT's (lower-cased, accents stripped, punctuation split: ``tokenizers``'
    ``BertNormalizer`` and ``BertPreTokenizer``); a word outside the vocabulary is split greedily
    into characters by WordPiece, so nothing becomes ``[UNK]`` unless characters were cut.

    Why not ``tokenizers``' WordPiece trainer: on the same captions it returns a different
    vocabulary from run to run (its merges break ties in hash order; measured here: three runs,
    three vocabularies), and two processes of one run must agree. This one is a pure function of
    the captions."""
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer, splitter = BertNormalizer(lowercase=True), BertPreTokenizer()
    words: Counter[str] = Counter()
    for caption in captions:
        words.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(caption)))
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        pieces[word[0]] += count
        pieces.update({f"##{c}": count for c in word[1:]})

    def by_count(counter: Counter[str]) -> list[str]:
        return sorted(counter, key=lambda token: (-counter[token], token))

    vocab = list(SPECIAL_TOKENS) + by_count(pieces)
    vocab += [word for word in by_count(words) if word not in pieces]
    return vocab[:vocab_size]


def read_vocab_file(path: str | Path) -> list[str]:
    """A BERT ``vocab.txt`` (one token per line, line n = id n); errors name the file and what is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"vocab_file {path}: no such file (a BERT vocab.txt, one token per line)")
    tokens = path.read_text(encoding="utf-8").splitlines()
    missing = [token for token in SPECIAL_TOKENS if token not in tokens]
    if missing:
        raise ValueError(f"vocab_file {path}: lacks BERT's special tokens {missing} (expected a WordPiece vocab.txt)")
    return tokens


@dataclass
class TextBatch:
    """Token ids of a batch of captions, padded to the longest: ``ids`` B×L (long), ``padding``
    B×L (True at padding), and after masking ``masked_ids`` (the chosen tokens replaced) and
    ``labels`` (the original id where chosen, -100 elsewhere)."""

    ids: torch.Tensor
    padding: torch.Tensor
    masked_ids: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class CaptionTokenizer(Tokenizer):
    """Captions → ids with a WordPiece vocabulary held in the state dict (module docstring).

    ``vocab_size``: the ids the model's embedding and MLM head have (30522 = bert-base-uncased's);
    a trained vocabulary may come out smaller, the rest of the rows then go unused.
    ``max_length``: captions longer are cut (the last kept token becomes ``[SEP]``), as BERT's
    truncation. ``fit_samples``: how many training captions the vocabulary is learned from.
    """

    view = "caption"  # what core's fit hook reads from the training batches: the captions
    vocab_bytes: torch.Tensor

    def __init__(self, vocab_size: int = 30522, max_length: int = 512, vocab_file: str | None = None,
                 fit_samples: int = 100_000) -> None:
        super().__init__()
        if vocab_size < len(SPECIAL_TOKENS) + 1 or max_length < 3:
            raise ValueError(f"caption tokenizer needs vocab_size > {len(SPECIAL_TOKENS)} and max_length >= 3, "
                             f"got {vocab_size} and {max_length}")
        self.vocab_size, self.max_length, self.fit_samples = int(vocab_size), int(max_length), int(fit_samples)
        self.register_buffer("vocab_bytes", torch.zeros(0, dtype=torch.uint8))
        self._backend: Any = None
        if vocab_file is not None:
            self.set_vocab(read_vocab_file(vocab_file))

    # -- the vocabulary ------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.vocab_bytes.numel() > 0

    @property
    def vocab(self) -> list[str]:
        self.check_fitted()
        return bytes(self.vocab_bytes.tolist()).decode("utf-8").split("\n")

    def set_vocab(self, tokens: Sequence[str]) -> None:
        if len(tokens) > self.vocab_size:
            raise ValueError(f"the vocabulary has {len(tokens)} tokens; the model was built for vocab_size={self.vocab_size}")
        if any("\n" in token for token in tokens):
            raise ValueError("vocabulary tokens cannot contain line breaks")
        data = "\n".join(tokens).encode("utf-8")
        self.vocab_bytes = torch.tensor(list(data), dtype=torch.uint8, device=self.vocab_bytes.device)
        self._backend = None

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # the vocabulary's length is the file's, not fixed at build time: take the stored buffer as it is
        stored = state_dict.get(prefix + "vocab_bytes")
        if stored is not None:
            self.vocab_bytes = stored.to(dtype=torch.uint8, device=self.vocab_bytes.device).clone()
            self._backend = None
        super()._load_from_state_dict(state_dict, prefix, *args)

    def fit(self, batches: Iterable[Any], seed: int = 0) -> None:
        """Learn the vocabulary from the captions of ``batches`` (each a list of strings, or a list
        of lists when samples carry several captions): :func:`train_wordpiece`, deterministic."""
        captions = [text for batch in batches for text in _flatten(batch)]
        if not captions:
            raise ValueError("no training caption to learn a vocabulary from")
        self.set_vocab(train_wordpiece(captions, self.vocab_size))

    def fit_dataset(self, dataset: Any, seed: int = 0) -> bool:
        """Learn the vocabulary from every caption a caption dataset lists (``captions``, looked
        for through the views wrapping it), at most ``fit_samples`` of them, without decoding a
        clip; False when the dataset lists none (then core fits from the batches' captions)."""
        while dataset is not None and not hasattr(dataset, "captions"):
            if hasattr(dataset, "indices"):  # a subset: its parent's caption list holds more than it serves
                return False
            dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            return False
        captions = [text for texts in dataset.captions for text in texts][: self.fit_samples or None]
        self.fit([captions])
        return True

    def save_fitted(self, folder: Path) -> list[Path]:
        path = Path(folder) / "vocab.txt"
        path.write_text("\n".join(self.vocab) + "\n", encoding="utf-8")
        return [path]

    @property
    def num_tokens(self) -> int:
        """How many tokens the vocabulary has (≤ ``vocab_size``), from the tokenizer built once, not
        by decoding the vocabulary every step."""
        return int(self.backend.get_vocab_size())

    def token_id(self, token: str) -> int:
        return self.backend.token_to_id(token)

    @property
    def backend(self) -> Any:
        """The ``tokenizers`` WordPiece tokenizer for the current vocabulary (built once)."""
        if self._backend is None:
            from tokenizers import BertWordPieceTokenizer

            vocab = self.vocab
            tokenizer = BertWordPieceTokenizer(vocab={token: i for i, token in enumerate(vocab)}, lowercase=True)
            tokenizer.enable_truncation(self.max_length)
            tokenizer.enable_padding(pad_id=vocab.index("[PAD]"), pad_token="[PAD]")
            self._backend = tokenizer
        return self._backend

    # -- text ---------------------------------------------------------------------------------
    def forward(self, captions: Sequence[str]) -> TextBatch:
        """``[CLS] caption [SEP]`` ids padded to the longest caption of the batch."""
        if isinstance(captions, str) or not all(isinstance(text, str) for text in captions):
            raise TypeError(f"captions must be a list of strings, got {type(captions).__name__}")
        encoded = self.backend.encode_batch(list(captions))
        ids = torch.tensor([e.ids for e in encoded], dtype=torch.long, device=self.vocab_bytes.device)
        padding = torch.tensor([[not m for m in e.attention_mask] for e in encoded], device=ids.device)
        return TextBatch(ids=ids, padding=padding)

    def decode(self, ids: torch.Tensor) -> Any:  # type: ignore[override]
        """Ids (B×L) back to lower-cased text, special tokens left out."""
        return [self.backend.decode(row.tolist()) for row in ids]

    def special_ids(self) -> list[int]:
        return [self.token_id(token) for token in SPECIAL_TOKENS]

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, max_length={self.max_length}, fitted={self.fitted}"


def _flatten(batch: Any) -> Iterable[str]:
    for item in batch:
        if isinstance(item, str):
            yield item
        else:
            yield from item


class TextEmbeddings(nn.Module):
    """BERT's embedding layer (``BertEmbeddings``): word + learned absolute position + token type 0,
    LayerNorm (eps 1e-12), dropout. The parameter names are BERT's, so ``bert.embeddings.*`` of a
    local bert-base-uncased checkpoint loads into it (:func:`load_bert_embeddings`). Init as BERT:
    normal(0, 0.02), the padding row zero."""

    def __init__(self, vocab_size: int = 30522, dim: int = 768, max_positions: int = 512, type_vocab_size: int = 2,
                 dropout: float = 0.1, pad_token_id: int = 0, layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, dim)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        for embedding in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            nn.init.normal_(embedding.weight, std=0.02)
        with torch.no_grad():
            self.word_embeddings.weight[pad_token_id].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(f"captions of {length} tokens exceed the {self.position_embeddings.num_embeddings} positions "
                             f"of the text embedding (lower the tokenizer's max_length)")
        positions = torch.arange(length, device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


def load_bert_embeddings(embeddings: TextEmbeddings, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Copy BERT's embedding layer from a bert-base-uncased state dict (``bert.embeddings.*`` or
    ``embeddings.*`` keys; ``position_ids`` ignored) into ``embeddings``, strictly: a missing or
    misshaped weight is an error naming it."""
    ours = embeddings.state_dict()
    found = {}
    for key in ours:
        for prefix in ("bert.embeddings.", "embeddings."):
            if prefix + key in state_dict:
                found[key] = state_dict[prefix + key]
                break
    missing = sorted(set(ours) - set(found))
    if missing:
        raise ValueError(f"{source}: no BERT embedding weights {missing} (expected keys bert.embeddings.<name>)")
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(ours[k].shape)})" for k, v in found.items() if v.shape != ours[k].shape]
    if wrong:
        raise ValueError(f"{source}: BERT embedding weights of another size: {', '.join(wrong)}")
    embeddings.load_state_dict(found)


class TextMasker(nn.Module):
    """SimVTP's text masking: each token that is not special ([CLS], [SEP], [PAD], …) is chosen with
    probability ``mask_prob`` (a Bernoulli per token, so the count varies per caption); a chosen
    token becomes ``[MASK]`` with probability ``replace_mask`` (SimVTP: 1.0), a random token of the
    vocabulary (``vocab_size``: its length) with ``replace_random`` (BERT: 0.1), else stays. Labels are the original ids at chosen tokens
    and -100 elsewhere (cross-entropy's ignore index). The draws come from ``noise`` (uniform, B×L×2:
    the choice and the replacement), so the engine's per-sample seeding makes it reproducible."""

    def __init__(self, mask_prob: float = 0.75, replace_mask: float = 1.0, replace_random: float = 0.0) -> None:
        super().__init__()
        if not 0 <= mask_prob <= 1 or replace_mask < 0 or replace_random < 0 or replace_mask + replace_random > 1 + 1e-9:
            raise ValueError(f"text masking needs 0 <= mask_prob <= 1 and replacement shares summing to at most 1, got "
                             f"mask_prob={mask_prob}, replace_mask={replace_mask}, replace_random={replace_random}")
        self.mask_prob, self.replace_mask, self.replace_random = float(mask_prob), float(replace_mask), float(replace_random)

    def forward(self, text: TextBatch, special_ids: Sequence[int], mask_id: int, vocab_size: int,
                noise: torch.Tensor | None = None) -> TextBatch:
        ids = text.ids
        if noise is None:
            noise = torch.rand(*ids.shape, 2, device=ids.device)
        choose, replace = noise[..., 0].to(ids.device), noise[..., 1].to(ids.device)
        ordinary = ~torch.isin(ids, torch.tensor(list(special_ids), device=ids.device))
        chosen = (choose < self.mask_prob) & ordinary
        masked_ids = ids.clone()
        to_mask = chosen & (replace < self.replace_mask)
        masked_ids[to_mask] = mask_id
        to_random = chosen & (replace >= self.replace_mask) & (replace < self.replace_mask + self.replace_random)
        if to_random.any():  # uniform over the vocabulary, as transformers' collator draws it
            fraction = (replace[to_random] - self.replace_mask) / max(self.replace_random, 1e-12)
            masked_ids[to_random] = (fraction * vocab_size).long().clamp(max=vocab_size - 1)
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        return TextBatch(ids=ids, padding=text.padding, masked_ids=masked_ids, labels=labels)

    def extra_repr(self) -> str:
        return f"mask_prob={self.mask_prob}, replace_mask={self.replace_mask}, replace_random={self.replace_random}"
