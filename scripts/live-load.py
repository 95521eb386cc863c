#!/usr/bin/env python3
"""Search latency over HTTP while a writer adds documents, against the same load without.

Copies INDEX (the writes change it), serves the copy with `tessera serve`, then runs two
phases of SECONDS each: CLIENTS searching clients alone, and the same clients while one
writer POSTs one new document (SciFact text under a new id) every 1/RATE seconds. Prints
each phase's search p50/p95/p99 and errors, and the writes' latency (each answers once
committed and visible). Only the standard library.

    scripts/live-load.py INDEX [--bin target/release/tessera] [--seconds 30] [--rate 10]
                               [--clients 1] [--mode plaid] [--corpus datasets/scifact/corpus.jsonl]
                               [--vectors N]

With --vectors N each written document also carries N pre-encoded token vectors (random
unit vectors of the index's dimension), so the server encodes no ColBERT vectors for it
(only SPLADE weights, when the index has splade): the write load of an application that
encodes elsewhere. Without it the server encodes every document's text, which on a small
CPU may cost more than the rate allows.
"""
import argparse
import http.client
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(-(-p / 100 * len(v) // 1)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("--bin", default="target/release/tessera")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--mode", default="plaid")
    ap.add_argument("--corpus", default="datasets/scifact/corpus.jsonl")
    ap.add_argument("--vectors", type=int, default=0)
    a = ap.parse_args()

    work = tempfile.mkdtemp()
    copy = f"{work}/live"
    shutil.copytree(a.index, copy, ignore=shutil.ignore_patterns("writer.lock"))
    server = subprocess.Popen([a.bin, "serve", f"live={copy}", "--addr", "127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    host, port = line.split("http://")[1].split()[0].rsplit(":", 1)
    # The server opens its indexes after it starts listening: wait for "ready:".
    for l in server.stderr:
        if l.startswith("ready:"):
            break
        if l.startswith("error:"):
            sys.exit(f"tessera serve: {l.strip()}")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    texts = []
    with open(a.corpus) as f:
        for l in f:
            d = json.loads(l)
            texts.append(f"{d.get('title', '')} {d.get('text', '')}".strip())
            if len(texts) >= 2000:
                break
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", "/indexes/live")
    dim = json.loads(c.getresponse().read())["dim"]
    rng = random.Random(0)

    def unit_rows(n):
        rows = []
        for _ in range(n):
            v = [rng.gauss(0, 1) for _ in range(dim)]
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            rows.append([round(x / norm, 5) for x in v])
        return rows

    query = json.dumps({"query": "vitamin D deficiency is associated with higher mortality",
                        "k": 10, "mode": a.mode})

    def searcher(stop, lat, errors):
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        while not stop.is_set():
            t = time.time()
            try:
                c.request("POST", "/indexes/live/search", query, {"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    errors.append(f"{r.status} {body[:200]!r}")
                else:
                    lat.append((time.time() - t) * 1e3)
            except Exception as e:  # noqa: BLE001 - every failure counts
                errors.append(repr(e))
                c = http.client.HTTPConnection(host, int(port), timeout=120)

    def write_one(i, lat, errors):
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        doc = {"id": f"live-{i}", "text": texts[i % len(texts)]}
        if a.vectors:
            doc["vectors"] = unit_rows(a.vectors)
        doc = {"documents": [doc]}
        t = time.time()
        try:
            c.request("POST", "/indexes/live/documents", json.dumps(doc), {"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                errors.append(f"{r.status} {body[:200]!r}")
            else:
                lat.append((time.time() - t) * 1e3)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    def writer(stop, lat, errors, start_id):
        # Writes arrive at RATE per second whether or not earlier ones have answered
        # (several clients writing), so the server's group commit can batch them.
        i, t0, pending = 0, time.time(), []
        while not stop.is_set():
            due = t0 + i / a.rate
            if time.time() < due:
                time.sleep(due - time.time())
            t = threading.Thread(target=write_one, args=(start_id + i, lat, errors))
            t.start()
            pending.append(t)
            i += 1
        for t in pending:
            t.join()

    results = {}
    for phase, with_writes in [("searches alone", False), ("searches while writing", True)]:
        stop = threading.Event()
        lat, errors, wlat, werrors = [], [], [], []
        threads = [threading.Thread(target=searcher, args=(stop, lat, errors)) for _ in range(a.clients)]
        if with_writes:
            threads.append(threading.Thread(target=writer, args=(stop, wlat, werrors, 0)))
        for t in threads:
            t.start()
        time.sleep(a.seconds)
        stop.set()
        for t in threads:
            t.join()
        results[phase] = {
            "searches": len(lat), "search_errors": len(errors), "first_errors": errors[:3],
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
        }
        if with_writes:
            results[phase].update({
                "writes": len(wlat), "write_errors": len(werrors), "first_write_errors": werrors[:3],
                "writes_per_s": len(wlat) / a.seconds,
                "write_p50_ms": pct(wlat, 50), "write_p99_ms": pct(wlat, 99),
            })
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", "/indexes/live")
    info = json.loads(c.getresponse().read())
    server.terminate()
    server.wait()
    shutil.rmtree(work)
    print(json.dumps({"mode": a.mode, "clients": a.clients, "seconds": a.seconds, "rate": a.rate,
                      "vectors_per_write": a.vectors,
                      "phases": results,
                      "segments_after": len(info["report"]["segments"]),
                      "live_docs_after": info["report"]["live_docs"]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
