#!/usr/bin/env python3
"""PyTorch + sentence-transformers baseline for scripts/gpu-check.sh: encode a BEIR corpus
into token embeddings with the same model directory and report documents/s and tokens/s.

Text = title + " " + text (empty parts skipped), as Tessera joins them; documents cut at
--max-len tokens, [CLS] and [SEP] included; sentence-transformers sorts by length and
batches like Tessera does. One warm-up batch is excluded from the timing.

    python3 scripts/gpu_reference.py --model DIR --corpus datasets/scifact/corpus.jsonl --device cuda
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    texts = []
    with open(args.corpus, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            texts.append(" ".join(p for p in (d.get("title", ""), d.get("text", "")) if p))
            if args.limit and len(texts) >= args.limit:
                break
    model = SentenceTransformer(args.model, device=args.device)
    model.max_seq_length = args.max_len
    if args.dtype == "f16":
        model.half()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    model.encode(texts[: args.batch_size], batch_size=args.batch_size, output_value="token_embeddings")
    sync()
    started = time.perf_counter()
    out = model.encode(texts, batch_size=args.batch_size, output_value="token_embeddings",
                       convert_to_numpy=False)
    sync()
    seconds = time.perf_counter() - started
    tokens = sum(int(o.shape[0]) for o in out)
    print(json.dumps({
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "dtype": args.dtype,
        "torch": torch.__version__,
        "documents": len(texts),
        "tokens": tokens,
        "seconds": seconds,
        "documents_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
    }, indent=2))


if __name__ == "__main__":
    main()
