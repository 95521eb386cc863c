#!/usr/bin/env python3
"""SciFact's corpus with synthetic metadata fields, for filter tests and benchmarks.

Each document gets, from a hash of its id (so the same on every run):
  tenant     keyword, one of 7 values (t0..t6)
  year       int, 1990..2024
  tags       keyword list, each of a..e with probability 0.3
  bucket     int, 0..999 uniform: {"key": "bucket", "range": {"lt": 10}} keeps 1%
  published  date (RFC 3339), 2015..2024

    scripts/scifact-fields.py [datasets/scifact/corpus.jsonl] > /tmp/scifact-fields.jsonl
    tessera index /tmp/scifact-fields.jsonl --out IDX --field tenant:keyword \
        --field year:int --field tags:keyword --field bucket:int --field published:date
"""
import datetime
import hashlib
import json
import sys


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "datasets/scifact/corpus.jsonl"
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            h = int.from_bytes(hashlib.sha256(doc["_id"].encode()).digest()[:16], "little")
            day = datetime.date(2015, 1, 1) + datetime.timedelta(days=(h >> 40) % 3650)
            doc["metadata"] = {
                "tenant": f"t{h % 7}",
                "year": 1990 + (h >> 8) % 35,
                "tags": [t for i, t in enumerate("abcde") if (h >> (16 + 3 * i)) % 10 < 3],
                "bucket": (h >> 64) % 1000,
                "published": day.isoformat() + "T00:00:00Z",
            }
            sys.stdout.write(json.dumps(doc) + "\n")


if __name__ == "__main__":
    main()
