#!/usr/bin/env python3
"""Resident memory of `tessera serve` per search mode, after warm-up (issue 17, item 5).

For each mode a fresh read-only server opens the index; its memory is read from
/proc/PID/status once the index is open, then again after every query of QUERIES (a
pre-encoded queries directory: vectors.npy f16/f32, offsets.npy; or a BEIR
queries.jsonl of texts the server encodes) has been searched twice in that mode. RssAnon is what the process holds (heap: id map, per-document
tables, search buffers); RssFile is the index's mapped pages the mode touched (shared
with the page cache; the kernel can drop them, and they come back from disk).

Usage: scripts/serve-rss.py INDEX QUERIES [--modes plaid,exhaustive] [--k 100]
       [--limit N] [--bin target/release/tessera] [--json FILE]
"""
import argparse
import ast
import http.client
import json
import struct
import subprocess
import sys
import threading


def read_npy(path):
    """(shape, flat list of floats) of a little-endian f16/f32/i8 .npy (no numpy here)."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            sys.exit(f"{path}: not a .npy file")
        major = f.read(2)[0]
        hlen = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = ast.literal_eval(f.read(hlen).decode("latin1"))
        fmt = {"<f2": "e", "<f4": "f", "<i8": "q"}[header["descr"]]
        shape = header["shape"]
        n = 1
        for s in shape:
            n *= s
        data = f.read(n * struct.calcsize(fmt))
        return shape, list(struct.unpack(f"<{n}{fmt}", data))


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def serve(binary, index):
    server = subprocess.Popen([binary, "serve", f"idx={index}", "--addr", "127.0.0.1:0",
                               "--read-only"], stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    host, port = line.split("http://")[1].split()[0].rsplit(":", 1)
    for l in server.stderr:
        if l.startswith("ready:"):
            break
        if l.startswith("error:"):
            sys.exit(f"tessera serve: {l.strip()}")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    return server, host, int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("queries")
    ap.add_argument("--modes", default="plaid,exhaustive")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--bin", default="target/release/tessera")
    ap.add_argument("--json")
    ap.add_argument("--limit", type=int, default=0,
                    help="exhaustive: search only the first N queries (one already touches "
                         "every vector)")
    a = ap.parse_args()

    if a.queries.endswith(".jsonl"):
        # Text queries (BEIR queries.jsonl), encoded by the server.
        with open(a.queries) as f:
            queries = [{"query": json.loads(l)["text"]} for l in f if l.strip()]
    else:
        (rows, dim), values = read_npy(f"{a.queries}/vectors.npy")
        _, offsets = read_npy(f"{a.queries}/offsets.npy")
        queries = []
        for s, e in zip(offsets, offsets[1:]):
            queries.append({"vectors": [values[r * dim:(r + 1) * dim] for r in range(s, e)]})

    report = {"index": a.index, "queries": len(queries), "k": a.k, "modes": {}}
    for mode in a.modes.split(","):
        server, host, port = serve(a.bin, a.index)
        try:
            c = http.client.HTTPConnection(host, port, timeout=600)
            c.request("GET", "/indexes/idx")
            info = json.loads(c.getresponse().read())
            opened = status(server.pid)
            todo = queries[:a.limit] if (mode == "exhaustive" and a.limit) else queries
            for _ in range(2):
                for q in todo:
                    body = json.dumps({**q, "k": a.k, "mode": mode})
                    c.request("POST", "/indexes/idx/search", body,
                              {"content-type": "application/json"})
                    r = c.getresponse()
                    data = r.read()
                    if r.status != 200:
                        sys.exit(f"{mode}: HTTP {r.status}: {data[:300]!r}")
            warm = status(server.pid)
        finally:
            server.terminate()
            server.wait()
        vectors = info.get("num_vectors") or info.get("vectors") or 0
        report["num_vectors"] = vectors
        report["num_docs"] = info.get("num_docs")
        per_m = 1e6 / max(vectors, 1)
        report["modes"][mode] = {
            "opened": opened,
            "warm": warm,
            "warm_rss_mib_per_million_vectors": round(warm["VmRSS"] / 2**20 * per_m, 1),
            "warm_anon_mib_per_million_vectors": round(warm["RssAnon"] / 2**20 * per_m, 1),
        }
        print(f"{mode}: opened RSS {opened['VmRSS'] / 2**20:.0f} MiB (anon "
              f"{opened['RssAnon'] / 2**20:.0f}) · warm RSS {warm['VmRSS'] / 2**20:.0f} MiB "
              f"(anon {warm['RssAnon'] / 2**20:.0f}, file {warm['RssFile'] / 2**20:.0f})",
              file=sys.stderr)
    text = json.dumps(report, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
