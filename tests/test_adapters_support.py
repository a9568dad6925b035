"""Tiny randomly initialised encoders for the adapter, export and recommend tests.

Built inside the tests (no pretrained weights are needed): a 2-layer BERT with a word-level
vocabulary, wrapped as a sentence-transformers model, and a LoRA adapter on top saved the way
the students stage saves a LoRA-tuned bi-encoder (a sentence-transformers folder whose model
is a PEFT adapter: adapter_config.json + adapter_model.safetensors).
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["quiet", "bar", "live", "music", "jazz", "pizza", "pasta", "museum", "art", "gallery", "park", "hike", "trail", "beach", "surf", "coffee", "brunch", "vegan", "sushi", "ramen", "wine", "beer", "cocktails", "rooftop", "view", "kids", "family", "history", "castle", "market", "night", "club", "dance", "book", "store", "guitar", "strings", "drums", "amp", "pedal", "cheap", "expensive", "cozy", "loud", "the", "a", "and", "with", "for", "in", "to", "of", "we", "love", "looking", "great", "place", "food"]


def _tokenizer():
    """A lower-casing WordPiece tokenizer over the special tokens and WORDS."""
    from transformers import BertTokenizerFast

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
    return BertTokenizerFast(vocab={token: index for index, token in enumerate(vocabulary)})


def make_base_encoder(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random 2-layer BERT sentence-transformer (mean pooling, normalised) saved in `folder`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    raw = folder.parent / f".{folder.name}-raw"
    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(hidden, "mean"), Normalize()], device="cpu")
    model.save(str(folder))
    return folder


def make_lora_encoder(base: Path, folder: Path, seed: int = 1, r: int = 4) -> Path:
    """`base` with a LoRA adapter whose weights are random (so it changes the embeddings)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base), device="cpu")
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r, lora_alpha=2 * r, target_modules=["query", "key", "value", "dense"], init_lora_weights=False
    )
    model[0].model = get_peft_model(model[0].model, config)
    model.save(str(folder))
    return folder


def make_cross_encoder(folder: Path, seed: int = 3, hidden: int = 32) -> Path:
    """A random 2-layer BERT CrossEncoder (one relevance logit) saved in `folder`."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    raw = folder.parent / f".{folder.name}-raw"
    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    CrossEncoder(str(raw), device="cpu").save(str(folder))
    return folder


def make_lora_cross_encoder(base: Path, folder: Path, seed: int = 4, r: int = 4) -> Path:
    """`base` (a CrossEncoder folder) with a random LoRA adapter and a retrained classifier head."""
    import torch
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(base), device="cpu")
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=["query", "value"],
        modules_to_save=["classifier"],
        init_lora_weights=False,
    )
    model[0].model = get_peft_model(model[0].model, config)
    with torch.no_grad():
        model[0].model.base_model.model.classifier.modules_to_save["default"].weight.normal_()
    model.save(str(folder))
    return folder
