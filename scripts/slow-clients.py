#!/usr/bin/env python3
"""Slow-client (slowloris) run against `tessera serve` with its default limits.

Starts the server on an index, opens N connections that send a request head one byte per
second (they would need about a minute each), and meanwhile has one client search over a
kept-alive connection for the whole run. Prints that client's latency percentiles and
errors, and when the slow connections were cut (seconds from connecting to the server
closing them). Only the standard library.

    scripts/slow-clients.py INDEX [--slow 1000] [--seconds 30] [--bin target/release/tessera]
"""
import argparse
import errno
import http.client
import json
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--bin", default="target/release/tessera")
    ap.add_argument("--mode", default="plaid")
    ap.add_argument("--serve-args", default="", help="extra flags for tessera serve")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = subprocess.Popen(
        [a.bin, "serve", f"main={a.index}", "--addr", "127.0.0.1:0", *a.serve_args.split()],
        stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    addr = line.split("http://")[1].split()[0]
    host, port = addr.rsplit(":", 1)
    port = int(port)
    # The server opens its indexes after it starts listening: wait for "ready:".
    for l in server.stderr:
        if l.startswith("ready:"):
            break
        if l.startswith("error:"):
            sys.exit(f"tessera serve: {l.strip()}")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

    head = (b"POST /indexes/main/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Slow: " + b"a" * 40 + b"\r\n\r\n")
    sel = selectors.DefaultSelector()
    slow = []  # [sock, connected_at, sent, closed_at]
    for _ in range(a.slow):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        conn = [s, time.time(), 0, None]
        slow.append(conn)
        sel.register(s, selectors.EVENT_READ, conn)

    latencies, errors, statuses = [], [], {}
    stop = threading.Event()

    def searcher():
        c = http.client.HTTPConnection(host, port, timeout=60)
        body = json.dumps({"query": "vitamin D deficiency and mortality", "k": 10, "mode": a.mode})
        while not stop.is_set():
            t = time.time()
            try:
                c.request("POST", "/indexes/main/search", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status != 200:
                    errors.append(f"HTTP {r.status}")
                else:
                    latencies.append((time.time() - t) * 1e3)
            except Exception as e:  # noqa: BLE001 - every failure counts as an error
                errors.append(repr(e))
                c = http.client.HTTPConnection(host, port, timeout=60)

    th = threading.Thread(target=searcher)
    start = time.time()
    th.start()
    next_byte = start
    while time.time() - start < a.seconds:
        now = time.time()
        if now >= next_byte:
            for conn in slow:
                if conn[3] is None and conn[2] < len(head):
                    try:
                        conn[0].send(head[conn[2]:conn[2] + 1])
                        conn[2] += 1
                    except (BlockingIOError, InterruptedError):
                        pass  # still connecting, or the socket buffer is full: next second
                    except OSError as e:
                        if e.errno == errno.ENOTCONN:
                            continue
                        conn[3] = now
                        sel.unregister(conn[0])
            next_byte += 1.0
        for key, _ in sel.select(timeout=0.05):
            conn = key.data
            try:
                data = conn[0].recv(4096)
            except OSError:
                data = b""
            if not data and conn[3] is None:
                conn[3] = time.time()
                sel.unregister(conn[0])
    stop.set()
    th.join()
    server.terminate()  # SIGTERM: a graceful shutdown must not wait for the slow ones
    t = time.time()
    try:
        server.wait(timeout=30)
        shutdown_s = time.time() - t
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        shutdown_s = None

    cut = [c[3] - c[1] for c in slow if c[3] is not None]
    print(json.dumps({
        "slow_connections": a.slow,
        "seconds": a.seconds,
        "searcher": {
            "requests": len(latencies) + len(errors),
            "errors": len(errors),
            "first_errors": errors[:3],
            "statuses": statuses,
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies) if latencies else None,
        },
        "shutdown_after_sigterm_s": shutdown_s,
        "slow_cut": {
            "count": len(cut),
            "min_s": min(cut) if cut else None,
            "median_s": percentile(cut, 50),
            "max_s": max(cut) if cut else None,
        },
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
