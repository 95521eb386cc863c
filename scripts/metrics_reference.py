#!/usr/bin/env python3
"""Fixture for the metric tests: a seeded run and qrels, scored by pytrec_eval.

The run deliberately has score ties (scores rounded to one decimal; trec_eval breaks
them by document id, descending), graded relevance (0, 1, 2, 3), a query judged only
non-relevant, a judged query missing from the run, a run query with no judgements, and
self-hits (a document whose id is the query id, which BEIR drops before scoring; so
does this script, and so does Tessera's harness).

Regenerate (from the repo root):
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install pytrec_eval-terrier
    /tmp/ref/bin/python scripts/metrics_reference.py
Writes tests/fixtures/metrics/{qrels.tsv, run.trec, expected.json}.
"""
import json
import random
from pathlib import Path

import pytrec_eval

CUTOFFS = [1, 3, 5, 10, 100, 1000]
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"


def make_fixture(rng):
    docs = [f"d{i:03d}" for i in range(150)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(5, 120))
        run[qid] = {d: round(rng.uniform(0, 5), 1) for d in retrieved}
    qrels["q0"] = {"d001": 0, "d002": 0}              # judged, nothing relevant
    run["q1"]["q1"] = 9.9                              # self-hit at the top
    docs.append("q1")
    qrels["q1"]["q1"] = 2                              # judged relevant, still dropped
    run["q2"]["q2"] = 0.5
    del run["q3"]                                      # judged, not retrieved
    run["q_unjudged"] = {"d010": 1.0, "d011": 2.0}     # retrieved, not judged
    tie = {d: 2.0 for d in ["d050", "d051", "d052", "d053"]}
    run["q4"] = tie | {"d054": 3.0}                    # an all-tie ranking
    qrels["q4"] = {"d050": 1, "d053": 2}
    return qrels, run


def main():
    rng = random.Random(20261127)
    qrels, run = make_fixture(rng)
    with open(OUT / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for d, r in docs.items():
                f.write(f"{qid}\t{d}\t{r}\n")
    with open(OUT / "run.trec", "w") as f:
        for qid, docs in run.items():
            # Listed in arbitrary (insertion) order with a meaningless rank column:
            # trec_eval sorts by score then docid itself, and so must we.
            for i, (d, s) in enumerate(docs.items()):
                f.write(f"{qid} Q0 {d} {i + 1} {s} fixture\n")

    # BEIR: drop retrieved documents whose id equals the query id.
    run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    measures = {f"ndcg_cut.{','.join(map(str, CUTOFFS))}",
                f"recall.{','.join(map(str, CUTOFFS))}",
                f"map_cut.{','.join(map(str, CUTOFFS))}"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    expected = {"per_query": {}, "num_queries": len(per_query)}
    for qid, m in per_query.items():
        row = {}
        for k in CUTOFFS:
            row[f"ndcg@{k}"] = m[f"ndcg_cut_{k}"]
            row[f"recall@{k}"] = m[f"recall_{k}"]
            row[f"map@{k}"] = m[f"map_cut_{k}"]
        expected["per_query"][qid] = row
    # MRR@k = trec_eval's recip_rank on each ranking cut at k (in trec_eval order).
    for k in CUTOFFS:
        cut = {}
        for q, docs in run.items():
            ranked = sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)[:k]
            cut[q] = dict(ranked)
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for qid, m in rr.items():
            expected["per_query"][qid][f"mrr@{k}"] = m["recip_rank"]
    names = sorted(next(iter(expected["per_query"].values())).keys())
    expected["mean"] = {n: sum(r[n] for r in expected["per_query"].values()) / len(per_query) for n in names}
    expected["generator"] = f"scripts/metrics_reference.py, pytrec_eval {getattr(pytrec_eval, '__version__', '?')}"
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"{len(per_query)} queries evaluated; mean ndcg@10 {expected['mean']['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
