#!/usr/bin/env python3
"""Independent reference token vectors for the encoder parity test.

A plain-numpy BERT forward pass (float64) over all-MiniLM-L6-v2's safetensors, written from
the BERT paper / HF modeling_bert semantics, sharing no code with Tessera's candle encoder.
Tokenisation uses the Python `tokenizers` package with padding and truncation off.

Writes tests/fixtures/minilm_parity.json (texts, token ids, shapes) and
tests/fixtures/minilm_parity.f32 (little-endian float32, all texts' L2-normalised token
vectors concatenated row-major).

Regenerate:  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy safetensors tokenizers
             /tmp/ref/bin/python scripts/reference_vectors.py models/all-MiniLM-L6-v2
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

TEXTS = [
    "Late interaction scores every query token against every document token.",
    "0-dimensional biomaterials show inductive properties.",
    "The risk of cancer is higher in patients with BRCA1 mutations!",
    "What is the capital of France?",
    "a",
    "Héllo wörld — naïve café, résumé; Zürich & São Paulo.",
    "Vitamin D deficiency (25(OH)D < 20 ng/mL) was associated with increased mortality [p=0.003].",
    "ColBERTv2 compresses residuals to 1, 2 or 4 bits per dimension using bucket quantiles.",
    "東京 is the capital of Japan, and 北京 is the capital of China.",
    "   leading and trailing spaces   ",
    "Antibiotic resistance genes were detected in 37% of the samples collected from hospital wastewater, "
    "suggesting that effluent treatment is insufficient to remove them before discharge into rivers.",
    "MUVERA turns multi-vector retrieval into single-vector maximum inner product search.",
]


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_erf(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert_forward(w, cfg, ids, attend=None):
    """Last hidden states; `attend` (0/1 per position) masks attention keys."""
    g = lambda name: w[name].astype(np.float64)
    n = len(ids)
    h = g("embeddings.word_embeddings.weight")[ids]
    h = h + g("embeddings.position_embeddings.weight")[:n]
    h = h + g("embeddings.token_type_embeddings.weight")[0]
    eps = cfg["layer_norm_eps"]
    h = layer_norm(h, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda x, name: x @ g(p + name + ".weight").T + g(p + name + ".bias")
        q = lin(h, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(h, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(h, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        if attend is not None:
            s = np.where(np.asarray(attend)[None, None, :] > 0, s, -1e30)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * d)
        a = lin(ctx, "attention.output.dense")
        h = layer_norm(a + h, g(p + "attention.output.LayerNorm.weight"),
                       g(p + "attention.output.LayerNorm.bias"), eps)
        f = gelu_erf(lin(h, "intermediate.dense"))
        f = lin(f, "output.dense")
        h = layer_norm(f + h, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    return h


def main():
    model = Path(sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2")
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    cfg = json.loads((model / "config.json").read_text())
    weights = load_file(str(model / "model.safetensors"))
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    entries, rows = [], []
    for text in TEXTS:
        ids = tok.encode(text).ids
        h = bert_forward(weights, cfg, np.array(ids))
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        rows.append(h.astype(np.float32))
        entries.append({"text": text, "ids": ids})
    meta = {"model": "all-MiniLM-L6-v2", "dim": cfg["hidden_size"], "texts": entries,
            "generator": "scripts/reference_vectors.py (numpy float64 BERT forward)"}
    (out / "minilm_parity.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    np.concatenate(rows).astype("<f4").tofile(out / "minilm_parity.f32")
    print(f"wrote {sum(len(e['ids']) for e in entries)} token vectors for {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
