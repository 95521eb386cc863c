#!/usr/bin/env python3
"""Convert Debian's dict-gcide and wordnet-base (extracted under ROOT) into a BEIR-style
dataset of real passages, for scale runs without a model hub:
  OUT/corpus.jsonl   `_id`, `title`, `text`, `source`; the two sources interleaved, so
                     any prefix (`--limit N` when indexing) mixes both
  OUT/queries.jsonl  QUERIES WordNet glosses, each naming its synset's first word...
  OUT/qrels/test.tsv ...judged against that word's GCIDE entry (definition -> dictionary
                     entry). The query's id is its own synset's passage id, so eval drops
                     that self-hit.
Queries are drawn (seeded) among pairs whose both passages lie in the first PREFIX
passages (default: all), so an index of a prefix can answer them.
Usage: scripts/real-corpus.py ROOT OUT [--prefix N] [--queries 200]
The text is GPL (GCIDE) and WordNet-licensed: never commit it; scripts/real-corpus.sh
downloads and converts it at bench time."""
import gzip
import json
import os
import re
import sys

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def gcide(root):
    """One passage per dictionary entry block (several headwords may share one)."""
    share = os.path.join(root, "usr/share/dictd")
    data = gzip.open(os.path.join(share, "gcide.dict.dz")).read()
    seen = set()
    with open(os.path.join(share, "gcide.index"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00-database"):
                continue
            head, off, length = parts[0], b64(parts[1]), b64(parts[2])
            if (off, length) in seen:
                continue
            seen.add((off, length))
            text = data[off:off + length].decode("utf-8", "replace")
            # Drop the source tags and join the wrapped lines.
            text = re.sub(r"\[(1913 Webster|PJC|WordNet 1\.5|Century Dict\.|Webster 1913 Suppl\.)[^\]]*\]", " ", text)
            text = " ".join(text.split())
            if len(text) < 20:
                continue
            yield {"_id": f"gcide-{len(seen)}", "title": head, "text": text, "source": "gcide"}


def wordnet(root):
    """One passage per synset: its words and its gloss."""
    share = os.path.join(root, "usr/share/wordnet")
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(share, f"data.{pos}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                head, gloss = line.split("|", 1)
                fields = head.split()
                count = int(fields[3], 16)
                words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
                yield {"_id": f"wn-{pos}-{fields[0]}", "title": ", ".join(words),
                       "text": gloss.strip(), "source": "wordnet"}


def interleave(a, b):
    a, b = list(a), list(b)
    out = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out


def main():
    import argparse
    import random
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("root")
    ap.add_argument("out")
    ap.add_argument("--prefix", type=int, default=0)
    ap.add_argument("--queries", type=int, default=200)
    a = ap.parse_args()
    docs = interleave(gcide(a.root), wordnet(a.root))
    os.makedirs(os.path.join(a.out, "qrels"), exist_ok=True)
    counts = {}
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for doc in docs:
            counts[doc["source"]] = counts.get(doc["source"], 0) + 1
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    prefix = docs[: a.prefix] if a.prefix else docs
    entry = {}
    for d in prefix:
        if d["source"] == "gcide":
            entry.setdefault(d["title"].lower(), d["_id"])
    pairs = [(d, entry[d["title"].split(", ")[0].lower()]) for d in prefix
             if d["source"] == "wordnet" and d["title"].split(", ")[0].lower() in entry]
    random.Random(7).shuffle(pairs)
    pairs = pairs[: a.queries]
    with open(os.path.join(a.out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for d, _ in pairs:
            f.write(json.dumps({"_id": d["_id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "qrels", "test.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for d, target in pairs:
            f.write(f"{d['_id']}\t{target}\t1\n")
    print(json.dumps({"out": a.out, "passages": len(docs), **counts, "queries": len(pairs)}))


if __name__ == "__main__":
    main()
