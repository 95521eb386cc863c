#!/usr/bin/env python3
"""A tiny random SPLADE checkpoint for fast tests: tests/fixtures/tiny-splade/.

The tiny BERT of tests/fixtures/tiny-bert (its weights under `bert.`, its vocabulary of
225 tokens and tokenizer) plus a seeded random masked-language-model head
(`cls.predictions.transform.*`, `cls.predictions.bias`; the decoder tied to the word
embeddings, as in SPLADE-tiny). Its term weights mean nothing; it makes SPLADE's code
paths (encoding, postings, merges, search) run in seconds where SPLADE-tiny, with its
30,522-token vocabulary, needs minutes for SciFact.

Only the standard library: safetensors is 8 bytes of header length, a JSON header, then
the raw little-endian tensors. Regenerate: python3 scripts/make_tiny_splade.py
"""
import json
import random
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures" / "tiny-bert"
DST = ROOT / "tests" / "fixtures" / "tiny-splade"


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = (meta["dtype"], meta["shape"], body[a:b])
    return out


def write_safetensors(path, tensors):
    header, body, at = {}, b"", 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        body += data
        at += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + body)


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def main():
    rng = random.Random(20261201)
    config = json.loads((SRC / "config.json").read_text())
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    tensors = {f"bert.{k}": v for k, v in read_safetensors(SRC / "model.safetensors").items()}
    tensors["cls.predictions.transform.dense.weight"] = (
        "F32", [hidden, hidden], f32([rng.gauss(0, 0.2) for _ in range(hidden * hidden)]))
    tensors["cls.predictions.transform.dense.bias"] = ("F32", [hidden], f32([0.0] * hidden))
    tensors["cls.predictions.transform.LayerNorm.weight"] = ("F32", [hidden], f32([1.0] * hidden))
    tensors["cls.predictions.transform.LayerNorm.bias"] = ("F32", [hidden], f32([0.0] * hidden))
    # A strongly negative bias keeps documents sparse (about 30 of 225 terms on SciFact).
    tensors["cls.predictions.bias"] = ("F32", [vocab], f32([rng.gauss(-15.0, 1.5) for _ in range(vocab)]))
    DST.mkdir(parents=True, exist_ok=True)
    write_safetensors(DST / "model.safetensors", tensors)
    config["architectures"] = ["BertForMaskedLM"]
    config["tie_word_embeddings"] = True
    (DST / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    shutil.copy(SRC / "tokenizer.json", DST / "tokenizer.json")


if __name__ == "__main__":
    main()
