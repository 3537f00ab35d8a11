"""The caption tokenizer, BERT's embedding layer and SimVTP's text masking, each against an
independent implementation (the ``tokenizers`` vocabulary read by transformers' BERT tokenizer,
transformers' BertEmbeddings and its MLM collator)."""
from __future__ import annotations

import pytest
import torch
from maekit_videotext.text import SPECIAL_TOKENS, CaptionTokenizer, TextEmbeddings, TextMasker, load_bert_embeddings

CAPTIONS = ["A seven moving to the left", "the digit 3 heading upward", "Two digits, a 7 and a 1, move up",
            "a handwritten nine sliding towards the bottom", "zero drifting rightward"]


def fitted(vocab_size: int = 80, max_length: int = 32) -> CaptionTokenizer:
    tokenizer = CaptionTokenizer(vocab_size=vocab_size, max_length=max_length)
    tokenizer.fit([CAPTIONS[:3], CAPTIONS[3:]])
    return tokenizer


def test_learned_vocabulary_round_trips_and_matches_transformers_bert_tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    tokenizer = fitted()
    vocab = tokenizer.vocab
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS) and len(vocab) <= 80
    text = tokenizer(CAPTIONS)
    assert text.ids.shape[0] == len(CAPTIONS) and (text.ids[:, 0] == vocab.index("[CLS]")).all()
    assert tokenizer.decode(text.ids) == [c.lower() for c in CAPTIONS]  # WordPiece decoding rejoins punctuation
    # the vocabulary file it writes is BERT's vocab.txt: transformers' BERT tokenizer gives the same ids
    (path,) = tokenizer.save_fitted(tmp_path)
    lines = path.read_text().splitlines()
    bert = BertTokenizerFast(vocab={token: i for i, token in enumerate(lines)})
    expected = bert(CAPTIONS, padding=True, return_tensors="pt")
    assert torch.equal(text.ids, expected["input_ids"])
    assert torch.equal(~text.padding, expected["attention_mask"].bool())
    reloaded = CaptionTokenizer(vocab_size=80, vocab_file=str(path))
    assert torch.equal(reloaded(CAPTIONS).ids, text.ids)


def test_learned_vocabulary_is_a_function_of_the_captions():
    """Characters first, then whole words by falling count; the same captions give the same
    vocabulary (``tokenizers``' own trainer does not); an unseen word splits into characters."""
    from maekit_videotext.text import train_wordpiece

    vocab = train_wordpiece(CAPTIONS * 3 + ["seven seven"], 200)
    assert vocab == train_wordpiece(list(reversed(CAPTIONS * 3 + ["seven seven"])), 200)
    words = [token for token in vocab if len(token) > 1 and not token.startswith(("[", "##"))]
    assert words[0] == "the" and vocab.index("##e") < vocab.index("the")  # characters, then words by count (the: 9)
    tokenizer = CaptionTokenizer(vocab_size=200)
    tokenizer.set_vocab(vocab)
    ids = tokenizer(["sevens"]).ids[0].tolist()
    assert tokenizer.token_id("[UNK]") not in ids and tokenizer.decode(torch.tensor([ids])) == ["sevens"]
    assert train_wordpiece(CAPTIONS, 12) == train_wordpiece(CAPTIONS, 200)[:12]  # a smaller budget cuts the end


def test_vocabulary_travels_in_the_state_dict_whatever_its_length():
    tokenizer = fitted()
    fresh = CaptionTokenizer(vocab_size=80, max_length=32)
    assert not fresh.fitted
    fresh.load_state_dict(tokenizer.state_dict())
    assert fresh.fitted and torch.equal(fresh(CAPTIONS).ids, tokenizer(CAPTIONS).ids)
    with pytest.raises(ValueError, match="has not been fitted"):
        CaptionTokenizer(vocab_size=80)(CAPTIONS)


def test_truncation_keeps_cls_and_sep():
    tokenizer = fitted(max_length=6)
    ids = tokenizer(["a handwritten nine sliding towards the bottom and on"]).ids[0]
    assert len(ids) == 6 and ids[0] == tokenizer.token_id("[CLS]") and ids[-1] == tokenizer.token_id("[SEP]")


def test_bad_vocabulary_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        CaptionTokenizer(vocab_file=str(tmp_path / "missing.txt"))
    bad = tmp_path / "vocab.txt"
    bad.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match=r"vocab.txt: lacks BERT's special tokens \['\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        CaptionTokenizer(vocab_file=str(bad))
    with pytest.raises(ValueError, match="built for vocab_size=8"):
        CaptionTokenizer(vocab_size=8).set_vocab(list(SPECIAL_TOKENS) + ["a", "b", "c", "d"])


def test_embedding_layer_equals_transformers_bert_embeddings_on_copied_weights():
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertModel

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=40)
    bert = BertModel(config).eval()
    ours = TextEmbeddings(vocab_size=50, dim=32, max_positions=40).eval()
    load_bert_embeddings(ours, {f"bert.{k}": v for k, v in bert.state_dict().items()})
    ids = torch.randint(0, 50, (3, 11))
    assert torch.allclose(ours(ids), bert.embeddings(input_ids=ids), atol=1e-6)
    with pytest.raises(ValueError, match="BERT embedding weights of another size: word_embeddings"):
        load_bert_embeddings(TextEmbeddings(vocab_size=51, dim=32, max_positions=40), bert.state_dict())
    with pytest.raises(ValueError, match="no BERT embedding weights"):
        load_bert_embeddings(ours, {})


def masking_statistics(draw, ids: torch.Tensor, special: torch.Tensor, mask_id: int, rounds: int) -> tuple[float, float, float, bool]:
    """Share of ordinary tokens chosen, and of the chosen: [MASK], unchanged; whether any special one was chosen."""
    chosen_total = ordinary_total = masked_total = kept_total = 0
    touched_special = False
    for _ in range(rounds):
        masked_ids, labels = draw()
        chosen = labels != -100
        ordinary = ~special
        touched_special |= bool((chosen & special).any())
        chosen_total += int(chosen.sum())
        ordinary_total += int(ordinary.sum())
        masked_total += int((masked_ids[chosen] == mask_id).sum())
        kept_total += int((masked_ids[chosen] == ids[chosen]).sum())
    return chosen_total / ordinary_total, masked_total / chosen_total, kept_total / chosen_total, touched_special


@pytest.mark.parametrize("replace", [(1.0, 0.0), (0.8, 0.1)])
def test_text_masking_has_the_distribution_of_transformers_mlm_collator(replace):
    """SimVTP's masking (0.75, all [MASK]) and BERT's 80/10/10 as an option: the share of ordinary
    tokens chosen, the shares replaced by [MASK] and left unchanged, and that [CLS]/[SEP]/[PAD] are
    never chosen match transformers' DataCollatorForLanguageModeling over many draws."""
    from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

    tokenizer = fitted()
    text = tokenizer(CAPTIONS)
    special = torch.isin(text.ids, torch.tensor(tokenizer.special_ids()))
    mask_id = tokenizer.token_id("[MASK]")
    masker = TextMasker(0.75, *replace)
    torch.manual_seed(0)
    ours = masking_statistics(lambda: (lambda t: (t.masked_ids, t.labels))(
        masker(text, tokenizer.special_ids(), mask_id, len(tokenizer.vocab))), text.ids, special, mask_id, 400)
    bert = BertTokenizerFast(vocab={token: i for i, token in enumerate(tokenizer.vocab)})
    collator = DataCollatorForLanguageModeling(bert, mlm_probability=0.75, mask_replace_prob=replace[0],
                                               random_replace_prob=replace[1], seed=0)
    rows = [{"input_ids": row[~pad].tolist()} for row, pad in zip(text.ids, text.padding)]

    def theirs_draw():
        out = collator(rows)
        return out["input_ids"], out["labels"]

    theirs = masking_statistics(theirs_draw, text.ids, special, mask_id, 400)
    assert not ours[3] and not theirs[3]
    for a, b in zip(ours[:3], theirs[:3]):
        assert abs(a - b) < 0.03, (ours, theirs)
    assert abs(ours[0] - 0.75) < 0.03 and abs(ours[1] - replace[0]) < 0.03


def test_text_masking_follows_its_noise():
    tokenizer = fitted()
    text = tokenizer(CAPTIONS)
    noise = torch.rand(*text.ids.shape, 2)
    masker = TextMasker(0.75)
    one = masker(text, tokenizer.special_ids(), tokenizer.token_id("[MASK]"), 80, noise)
    two = masker(text, tokenizer.special_ids(), tokenizer.token_id("[MASK]"), 80, noise.clone())
    assert torch.equal(one.masked_ids, two.masked_ids)
    ordinary = ~torch.isin(text.ids, torch.tensor(tokenizer.special_ids()))
    assert torch.equal(one.labels != -100, (noise[..., 0] < 0.75) & ordinary)
    with pytest.raises(ValueError, match="replacement shares"):
        TextMasker(0.75, 0.8, 0.3)
