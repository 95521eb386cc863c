#!/usr/bin/env python3
"""Run a command and report its memory: peak RSS (VmHWM, the kernel's exact high-water
mark, file-backed mapped pages included) and the peak of its anonymous memory (RssAnon,
sampled every 0.1 s: heap, what the process itself holds). Mapped index files count in
RSS while their pages are resident, but the kernel can drop them at any time; RssAnon
cannot be dropped. Usage: scripts/peak-rss.py [--json FILE] -- CMD ARGS...
The command's exit status is passed on; the report goes to stderr (and FILE)."""
import json
import subprocess
import sys
import time


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def main():
    args = sys.argv[1:]
    json_path = None
    if args[:1] == ["--json"]:
        json_path, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    started = time.time()
    p = subprocess.Popen(args)
    peak_anon = peak_file = hwm = 0
    while p.poll() is None:
        s = status(p.pid)
        peak_anon = max(peak_anon, s.get("RssAnon", 0))
        peak_file = max(peak_file, s.get("RssFile", 0))
        hwm = max(hwm, s.get("VmHWM", 0))
        time.sleep(0.1)
    report = {
        "command": args,
        "exit": p.returncode,
        "seconds": round(time.time() - started, 2),
        "peak_rss_bytes": hwm,
        "peak_anon_bytes": peak_anon,
        "peak_file_bytes": peak_file,
        "peak_rss_gib": round(hwm / 2**30, 3),
        "peak_anon_gib": round(peak_anon / 2**30, 3),
    }
    text = json.dumps(report)
    print(text, file=sys.stderr)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
