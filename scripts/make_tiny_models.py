#!/usr/bin/env python3
"""Tiny random BERT checkpoints for fast tests, and reference vectors for the ColBERT path.

- tests/fixtures/tiny-bert/: plain sentence-transformers layout (no markers), a small
  WordPiece vocabulary covering tests/fixtures/tiny-beir, random weights (seeded), and a
  tokenizer.json that pads and truncates to 16 (as real checkpoints often do) so the
  tests prove the encoder turns both off.
- tests/fixtures/tiny-colbert/: the same BERT in PyLate layout: `1_Dense/` projection to
  16 dims, `config_sentence_transformers.json` with [unused0]/[unused1] markers, query
  expansion with [MASK] (not attended), lengths 12/24, a punctuation skiplist.
- tests/fixtures/tiny_colbert_parity.{json,f32}: query and document vectors of the tiny
  ColBERT computed by the numpy forward in scripts/reference_vectors.py, with ColBERT's
  framing rules re-implemented here.

Regenerate: /tmp/ref/bin/python scripts/make_tiny_models.py   (numpy, safetensors, tokenizers)
"""
import json
import re
import string
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_vectors import bert_forward  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
HIDDEN, LAYERS, HEADS, INTER, MAXPOS, PROJ = 32, 2, 2, 64, 512, 16


def vocabulary():
    specials = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = set()
    for name in ["corpus.jsonl", "queries.jsonl"]:
        for line in (FIX / "tiny-beir" / name).read_text().splitlines():
            obj = json.loads(line)
            for field in ("title", "text"):
                words.update(re.findall(r"[a-z0-9]+", obj.get(field, "").lower()))
    chars = list(string.ascii_lowercase + string.digits)
    tokens = specials + list(string.punctuation) + chars + ["##" + c for c in chars] + sorted(words)
    seen, out = set(), []
    for t in tokens:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return {t: i for i, t in enumerate(out)}


def make_tokenizer(vocab):
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    tok.enable_truncation(16)
    tok.enable_padding(length=16, pad_id=0, pad_token="[PAD]")
    return tok


def make_weights(vocab_size, rng):
    w = {}
    def lin(name, out_dim, in_dim):
        w[f"{name}.weight"] = (rng.standard_normal((out_dim, in_dim)) * 0.2).astype(np.float32)
        w[f"{name}.bias"] = (rng.standard_normal(out_dim) * 0.02).astype(np.float32)
    def ln(name):
        w[f"{name}.weight"] = (1 + rng.standard_normal(HIDDEN) * 0.05).astype(np.float32)
        w[f"{name}.bias"] = (rng.standard_normal(HIDDEN) * 0.05).astype(np.float32)
    w["embeddings.word_embeddings.weight"] = rng.standard_normal((vocab_size, HIDDEN)).astype(np.float32)
    w["embeddings.position_embeddings.weight"] = (rng.standard_normal((MAXPOS, HIDDEN)) * 0.1).astype(np.float32)
    w["embeddings.token_type_embeddings.weight"] = (rng.standard_normal((2, HIDDEN)) * 0.1).astype(np.float32)
    ln("embeddings.LayerNorm")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            lin(p + "attention.self." + n, HIDDEN, HIDDEN)
        lin(p + "attention.output.dense", HIDDEN, HIDDEN)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", INTER, HIDDEN)
        lin(p + "output.dense", HIDDEN, INTER)
        ln(p + "output.LayerNorm")
    return w


def config(vocab_size):
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": HIDDEN,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTER,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": MAXPOS, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0, "vocab_size": vocab_size}


def frame(tok, vocab, text, role, st):
    """ColBERT framing: [CLS] marker body[:room] [SEP], queries padded with [MASK]."""
    body = tok.encode(text, add_special_tokens=False).ids
    max_len = st["query_length"] if role == "query" else st["document_length"]
    marker = vocab[st["query_prefix"] if role == "query" else st["document_prefix"]]
    ids = [vocab["[CLS]"], marker] + body[: max_len - 3] + [vocab["[SEP]"]]
    attend = [1] * len(ids)
    keep = [True] * len(ids)
    if role == "query":
        pad = max_len - len(ids)
        ids += [vocab["[MASK]"]] * pad
        attend += [0] * pad
        keep += [True] * pad
    else:
        skip = {vocab[c] for c in st["skiplist_words"] if c in vocab}
        keep = [i not in skip for i in ids]
    return ids, attend, keep


def main():
    rng = np.random.default_rng(1234)
    vocab = vocabulary()
    tok = make_tokenizer(vocab)
    weights = make_weights(len(vocab), rng)
    cfg = config(len(vocab))

    plain = FIX / "tiny-bert"
    plain.mkdir(exist_ok=True)
    tok.save(str(plain / "tokenizer.json"))
    (plain / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    save_file(weights, str(plain / "model.safetensors"))
    (plain / "config_sentence_transformers.json").write_text(json.dumps({"__version__": {}}) + "\n")

    colbert = FIX / "tiny-colbert"
    (colbert / "1_Dense").mkdir(parents=True, exist_ok=True)
    tok.save(str(colbert / "tokenizer.json"))
    (colbert / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    save_file(weights, str(colbert / "model.safetensors"))
    proj = (rng.standard_normal((PROJ, HIDDEN)) * 0.3).astype(np.float32)
    save_file({"linear.weight": proj}, str(colbert / "1_Dense" / "model.safetensors"))
    (colbert / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": HIDDEN, "out_features": PROJ, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}) + "\n")
    st = {"query_prefix": "[unused0]", "document_prefix": "[unused1]", "query_length": 12,
          "document_length": 24, "attend_to_expansion_tokens": False, "do_query_expansion": True,
          "skiplist_words": list(string.punctuation)}
    (colbert / "config_sentence_transformers.json").write_text(json.dumps(st, indent=1) + "\n")

    # The saved files keep padding/truncation (the encoder must turn them off); the
    # reference framing below needs the bare tokenisation.
    tok.no_padding()
    tok.no_truncation()
    texts = [("query", "vitamin D and mortality?"), ("query", "do bed nets prevent malaria"),
             ("query", "a"), ("query", "resistance genes in hospital wastewater samples from many rivers and lakes"),
             ("document", "Vitamin D deficiency is associated with higher mortality in older adults."),
             ("document", "Mosquito nets, reduce malaria; transmission!"),
             ("document", "Antibiotic resistance genes were found in hospital wastewater samples, and "
                          "statins reduce cholesterol and cardiovascular mortality in adults."),
             ("document", "x")]
    entries, rows = [], []
    for role, text in texts:
        ids, attend, keep = frame(tok, vocab, text, role, st)
        h = bert_forward(weights, cfg, np.array(ids), attend) @ proj.T.astype(np.float64)
        h = h[np.array(keep)]
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        rows.append(h.astype(np.float32))
        entries.append({"role": role, "text": text, "ids": ids, "kept": int(sum(keep))})
    (FIX / "tiny_colbert_parity.json").write_text(json.dumps(
        {"dim": PROJ, "texts": entries, "generator": "scripts/make_tiny_models.py"}, indent=1) + "\n")
    np.concatenate(rows).astype("<f4").tofile(FIX / "tiny_colbert_parity.f32")
    print(f"vocab {len(vocab)}; wrote tiny-bert, tiny-colbert, {sum(len(r) for r in rows)} reference vectors")


if __name__ == "__main__":
    main()
