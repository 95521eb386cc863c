#!/usr/bin/env python3
"""Independent reference SPLADE weights for the SPLADE parity test.

The numpy float64 BERT of reference_vectors.py, plus the masked-language-model head written
from HF's BertLMPredictionHead: dense -> GELU(erf) -> LayerNorm -> word embeddings^T + bias
(the decoder is tied to the word embeddings; the checkpoint stores only
`cls.predictions.bias`). SPLADE weight of term t: max over the text's positions of
log(1 + relu(logit_t)). Nothing here is shared with Tessera's candle encoder.

Writes tests/fixtures/splade_parity.json: per text its token ids and every term with a
positive weight.

Regenerate:  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy safetensors tokenizers
             /tmp/ref/bin/python scripts/splade_reference.py models/splade-tiny
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from reference_vectors import TEXTS, bert_forward, gelu_erf, layer_norm


def canonical(name):
    """Old checkpoints call LayerNorm parameters gamma/beta."""
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def main():
    model = Path(sys.argv[1] if len(sys.argv) > 1 else "models/splade-tiny")
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    cfg = json.loads((model / "config.json").read_text())
    raw = {canonical(k): v for k, v in load_file(str(model / "model.safetensors")).items()}
    bert = {k.removeprefix("bert."): v for k, v in raw.items() if k.startswith("bert.")}
    g = lambda name: raw[name].astype(np.float64)
    decoder = g("bert.embeddings.word_embeddings.weight")  # tied: vocab x hidden
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    entries = []
    for text in TEXTS:
        ids = tok.encode(text).ids  # [CLS] ... [SEP]
        h = bert_forward(bert, cfg, np.array(ids))
        t = gelu_erf(h @ g("cls.predictions.transform.dense.weight").T + g("cls.predictions.transform.dense.bias"))
        t = layer_norm(t, g("cls.predictions.transform.LayerNorm.weight"),
                       g("cls.predictions.transform.LayerNorm.bias"), cfg["layer_norm_eps"])
        logits = t @ decoder.T + g("cls.predictions.bias")
        weights = np.log1p(np.maximum(logits, 0.0)).max(axis=0)
        terms = np.nonzero(weights > 0)[0]
        entries.append({
            "text": text,
            "ids": ids,
            "terms": [int(i) for i in terms],
            "weights": [float(weights[i]) for i in terms],
        })
    meta = {"model": model.name, "texts": entries,
            "generator": "scripts/splade_reference.py (numpy float64 BERT + MLM head)"}
    (out / "splade_parity.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote SPLADE weights for {len(TEXTS)} texts, "
          f"{sum(len(e['terms']) for e in entries)} non-zero terms")


if __name__ == "__main__":
    main()
