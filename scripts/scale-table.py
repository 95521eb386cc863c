#!/usr/bin/env python3
"""Print the scale runs of scripts/scale-run.sh as a Markdown table (and, with --json,
one object per run). Usage: scripts/scale-table.py [RESULTS_DIR] [--json]
RESULTS_DIR defaults to target/scale/results."""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "target/scale/results"
    rows = []
    for gen_path in glob.glob(os.path.join(root, "*.gen.json")):
        name = os.path.basename(gen_path)[: -len(".gen.json")]
        base = os.path.join(root, name)
        gen, build, brss, ev, srss = (load(f"{base}.{s}.json") for s in
                                      ("gen", "build", "build-rss", "eval", "serve-rss"))
        if not (gen and build and brss and ev):
            continue
        fin = build.get("finish_seconds") or {}
        vs = ev.get("vs_exhaustive") or {}
        ex_metrics = vs.get("exhaustive_metrics") or {}
        row = {
            "name": name,
            "dim": gen["dim"],
            "vectors": gen["vectors"],
            "documents": gen["documents"],
            "build_s": build["build_seconds"],
            "store_write_s": build["build_seconds"] - build["components_seconds"],
            "kmeans_s": fin.get("plaid_train"),
            "encode_s": fin.get("plaid_encode"),
            "ivf_s": fin.get("plaid_ivf"),
            "build_peak_rss_gib": brss["peak_rss_gib"],
            "build_peak_anon_gib": brss["peak_anon_gib"],
            "bytes_per_vector": build["bytes_per_vector"],
            "plaid_p50_ms": ev["latency_ms"]["p50"],
            "share_top100": vs.get("recall_at_k"),
            "share_top10": vs.get("recall_at_10"),
            "plaid_ndcg10": ev["metrics"].get("ndcg@10"),
            "exhaustive_ndcg10": ex_metrics.get("ndcg@10"),
            "exhaustive_p50_ms": (vs.get("exhaustive_latency_ms") or {}).get("p50"),
        }
        if srss:
            for mode, m in srss["modes"].items():
                row[f"serve_{mode}_rss_mib"] = m["warm"]["VmRSS"] / 2**20
                row[f"serve_{mode}_anon_mib"] = m["warm"]["RssAnon"] / 2**20
        rows.append(row)
    rows.sort(key=lambda r: (r["dim"], r["vectors"]))
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
        return
    f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
    print("| dim | vectors | docs | build s (store / k-means / encode / IVF) | build peak RSS GiB (anon) "
          "| B/vector | PLAID p50 ms | share top-100 / top-10 | nDCG@10 PLAID / exh | exhaustive p50 ms "
          "| serve RSS MiB plaid (anon) | serve RSS MiB exhaustive (anon) |")
    print("| --- " * 12 + "|")
    for r in rows:
        print(f"| {r['dim']} | {r['vectors'] / 1e6:g} M | {r['documents']:,} "
              f"| {f(r['build_s'], 0)} ({f(r['store_write_s'], 0)} / {f(r['kmeans_s'], 0)} / "
              f"{f(r['encode_s'], 0)} / {f(r['ivf_s'])}) "
              f"| {f(r['build_peak_rss_gib'], 2)} ({f(r['build_peak_anon_gib'], 2)}) "
              f"| {f(r['bytes_per_vector'])} | {f(r['plaid_p50_ms'])} "
              f"| {f(r['share_top100'], 3)} / {f(r['share_top10'], 3)} "
              f"| {f(r['plaid_ndcg10'], 3)} / {f(r['exhaustive_ndcg10'], 3)} "
              f"| {f(r['exhaustive_p50_ms'], 0)} "
              f"| {f(r.get('serve_plaid_rss_mib'), 0)} ({f(r.get('serve_plaid_anon_mib'), 0)}) "
              f"| {f(r.get('serve_exhaustive_rss_mib'), 0)} ({f(r.get('serve_exhaustive_anon_mib'), 0)}) |")


if __name__ == "__main__":
    main()
