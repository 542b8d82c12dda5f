#!/usr/bin/env python3
"""Writes model/EVALUATION.md: the headline figures of the four reports
scripts/evaluate-model.sh makes (read from them, never typed in), and links
to each report with its tables and figures."""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "model/evaluation")
# The worlds' size, as scripts/evaluate-model.sh ran them.
customers = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
days = int(sys.argv[3]) if len(sys.argv) > 3 else 120
reports = [
    ("classic", "classic", "classic.md"),
    ("lifecycle", "lifecycle", "lifecycle.md"),
    ("classic (the embedded model)", "lifecycle", "classic-on-lifecycle.md"),
    ("lifecycle", "classic", "lifecycle-on-classic.md"),
]


def sections(text):
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


def row(section, head, model_pred):
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] == head and model_pred(cells[1]):
            return [float(c) for c in cells[2:]]
    return None


out = [
    "# Model evaluation",
    "",
    "Made by `scripts/evaluate-model.sh`: two synthetic worlds simulated differently "
    f"(`pulse generate --world classic|lifecycle`, {customers:,} customers × {days} days each), "
    "`pulse train --capture` on each (every candidate fitted on the training customers, "
    "calibrated on the validation customers, the shipped kind chosen on the validation customers), "
    "and each world's shipped model judged by `pulse evaluate --capture` on the other world, "
    "beside baselines fitted on that world. Labels: `docs/LABELS.md`. "
    "The embedded model is the one trained on classic.",
    "",
    "Headline: churn_risk_14d on held-out customers (AUC / Brier / ECE). `shipped` is the model trained on "
    "the first world; `recency` (days since the last session, mapped to a probability by an isotonic fit on "
    "the tested world's validation customers), `logistic` and `gbt` (fitted on the tested world's own training "
    "customers) are baselines.",
    "",
    "| trained on | tested on | split | shipped | recency | logistic | gbt (tested world) |",
    "|---|---|---|---|---|---|---|",
]
f1 = []
for trained, tested, name in reports:
    text = (root / name).read_text()
    secs = sections(text)
    for title, split in [("in time, held-out customers", "in time"), ("out of time, held-out customers after the cut", "out of time")]:
        sec = secs.get(title, "")
        if "Skipped" in sec or not sec:
            out.append(f"| {trained} | {tested} | {split} | skipped | | | |")
            continue
        shipped = row(sec, "churn_risk_14d", lambda m: m.startswith("**"))
        fmt = lambda r: "–" if r is None else f"{r[0]:.4f} / {r[1]:.4f} / {r[2]:.4f}"
        cells = [fmt(shipped)] + [fmt(row(sec, "churn_risk_14d", lambda m, k=k: m.strip("*") == k)) for k in ["recency", "logistic", "gbt"]]
        out.append(f"| {trained} | {tested} | {split} | " + " | ".join(cells) + " |")
    m = re.search(r"Macro-F1 ([0-9.]+)", text)
    if m:
        f1.append((trained, tested, m.group(1)))
out += [
    "",
    "Segments: macro-F1 of pulse's final segment (§6 rules on the model's prediction for each held-out (test) "
    "customer's last vector) against the generator's own segment on the last day:",
    "",
    "| model trained on | tested on | macro-F1 |",
    "|---|---|---|",
]
out += [f"| {a} | {b} | {c} |" for a, b, c in f1]
out += [
    "",
    "The reports, with every head, every candidate, the differences with 95% intervals from customer "
    "resamples, the confusion matrices, and ROC and calibration plots:",
    "",
]
out += [f"- [{name}](evaluation/{name}): trained on {t}, tested on {w}" for t, w, name in reports]
Path(root.parent / "EVALUATION.md").write_text("\n".join(out) + "\n")
print(f"wrote {root.parent / 'EVALUATION.md'}")
