"""Per-target tables, summaries across targets, and the Table-24-shaped report.

Seeds are averaged per target first; statistics run across targets (mean, std with ``ddof``,
median), deltas are taken against source-only per target, with the number of targets improved
and a paired Wilcoxon signed-rank test (scipy).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from bah.core.files import atomic_path, write_text, write_yaml

log = logging.getLogger(__name__)

METRICS = ("avgf1", "ap_legacy", "ap", "f1_pos", "video_avgf1", "positive_rate", "n_frames")
# Table 24's row names; methods without a paper row keep a descriptive name.
DISPLAY = {"source_only": "Source-only", "mmd": "UDA (MMD)", "subject_uda": "UDA (Sub-Based)",
           "shot": "SFUDA (SHOT)", "nrc": "SFUDA (NRC)", "adabn": "AdaBN", "pp_norm": "Per-participant norm",
           "oracle": "Oracle"}
ORDER = ("source_only", "mmd", "subject_uda", "shot", "nrc", "adabn", "pp_norm", "oracle")


def load_results(out: Path, methods: Optional[Sequence[str]] = None, pids: Optional[Sequence[str]] = None):
    """Every result JSON under ``out/results`` as a DataFrame (one row per method, target, seed)."""
    import pandas as pd

    rows = []
    for f in sorted((Path(out) / "results").glob("*/*/seed-*.json")):
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as exc:
            log.warning("skipping unreadable result %s (%s)", f, exc)
            continue
        if methods is not None and r["method"] not in methods:
            continue
        if pids is not None and r["pid"] not in pids:
            continue
        rows.append({"method": r["method"], "pid": str(r["pid"]), "seed": r["seed"], "split": r.get("split"),
                     "optimistic": bool(r.get("optimistic")), "seconds": r.get("seconds", float("nan")),
                     "source": str(out), **{m: r["metrics"].get(m, float("nan")) for m in METRICS}})
    return pd.DataFrame(rows, columns=["method", "pid", "seed", "split", "optimistic", "seconds", "source", *METRICS])


def per_target(results):
    """Mean over seeds per (method, target) and the delta against source-only."""
    import pandas as pd

    if results.empty:
        return pd.DataFrame(columns=["method", "pid", "n_seeds", *METRICS, "delta_avgf1", "delta_ap_legacy"])
    agg = {m: "mean" for m in METRICS}
    agg.update(seed="count", optimistic="max", seconds="mean", split="first")
    df = results.groupby(["method", "pid"], as_index=False).agg(agg).rename(columns={"seed": "n_seeds"})
    base = df[df.method == "source_only"].set_index("pid")
    for m in ("avgf1", "ap_legacy"):
        df[f"delta_{m}"] = df[m] - df.pid.map(base[m]) if not base.empty else np.nan
    return df


def _wilcoxon(d: np.ndarray) -> float:
    d = d[~np.isnan(d)]
    if len(d) < 1 or np.allclose(d, 0):
        return float("nan")
    try:
        from scipy.stats import wilcoxon
    except ImportError:  # scipy is optional
        return float("nan")
    return float(wilcoxon(d).pvalue)


def summarise(table, ddof: int = 1) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for method in _ordered(table.method.unique()):
        t = table[table.method == method]
        row: Dict[str, Any] = {"targets": int(len(t)), "seeds": int(t.n_seeds.max()) if len(t) else 0,
                               "optimistic": bool(t.optimistic.any()), "seconds_per_target": float(t.seconds.mean())}
        for m in ("avgf1", "ap_legacy", "ap", "f1_pos", "video_avgf1"):
            v = t[m].to_numpy(np.float64)
            v = v[~np.isnan(v)]
            row[m] = {"mean": float(v.mean()) if len(v) else float("nan"),
                      "std": float(v.std(ddof=ddof)) if len(v) > ddof else float("nan"),
                      "median": float(np.median(v)) if len(v) else float("nan")}
        d = t["delta_avgf1"].to_numpy(np.float64)
        if method != "source_only" and not np.isnan(d).all():
            row["delta_avgf1"] = {"mean": float(np.nanmean(d)), "improved": int((d > 0).sum()),
                                  "of": int((~np.isnan(d)).sum()), "wilcoxon_p": _wilcoxon(d)}
        out[method] = row
    return out


def _ordered(methods) -> List[str]:
    ms = list(methods)
    return [m for m in ORDER if m in ms] + sorted(m for m in ms if m not in ORDER)


def _pm(s: Dict[str, float]) -> str:
    if np.isnan(s["mean"]):
        return "n/a"
    return f"{s['mean']:.4f} ± {s['std']:.4f}" if not np.isnan(s["std"]) else f"{s['mean']:.4f}"


def table24_markdown(summary: Dict[str, Dict[str, Any]], split: str = "", ddof: int = 1) -> str:
    lines = ["| Method | AVGF1 | AP | ΔAVGF1 vs source-only | improved | Wilcoxon p | targets |",
             "|---|---|---|---|---|---|---|"]
    for method, r in summary.items():
        d = r.get("delta_avgf1")
        name = DISPLAY.get(method, method) + (" (optimistic: target-label selection)" if r["optimistic"] else "")
        lines.append(f"| {name} | {_pm(r['avgf1'])} | {_pm(r['ap_legacy'])} | "
                     + (f"{d['mean']:+.4f} | {d['improved']}/{d['of']} | "
                        + ("n/a" if np.isnan(d["wilcoxon_p"]) else f"{d['wilcoxon_p']:.3g}") if d else "– | – | –")
                     + f" | {r['targets']} |")
    note = (f"\nFrame-level metrics on each target's evaluation part ({split or 'holdout'} split), seeds averaged "
            f"per target, then mean ± std over targets (ddof={ddof}). AP is the legacy AP of the A/H class (the paper's metric; sklearn AP is in per_target.csv).")
    if split == "transductive":
        note += " Transductive: adaptation and evaluation use the same videos (TTA convention)."
    return "\n".join(lines) + "\n" + note + "\n"


def _csv(dest: Path, df) -> None:
    with atomic_path(dest) as tmp:
        df.to_csv(tmp, index=False)


def summary_frame(summary: Dict[str, Dict[str, Any]]):
    import pandas as pd

    rows = []
    for method, r in summary.items():
        d = r.get("delta_avgf1") or {}
        rows.append({"method": method, "row": DISPLAY.get(method, method), "targets": r["targets"],
                     "seeds": r["seeds"], "avgf1_mean": r["avgf1"]["mean"], "avgf1_std": r["avgf1"]["std"],
                     "ap_mean": r["ap_legacy"]["mean"], "ap_std": r["ap_legacy"]["std"],
                     "avgf1_median": r["avgf1"]["median"], "delta_avgf1": d.get("mean"),
                     "improved": d.get("improved"), "wilcoxon_p": d.get("wilcoxon_p"),
                     "optimistic": r["optimistic"], "seconds_per_target": r["seconds_per_target"]})
    return pd.DataFrame(rows)


def write_outputs(out: Path, plans, methods: Sequence[str], cfg: Any) -> Dict[str, Any]:
    """targets.csv, per_target.csv, summary.yml and config.yaml of one ``bah personalize`` run."""
    import pandas as pd

    from .settings import resolved

    out = Path(out)
    _csv(out / "targets.csv", pd.DataFrame([{"pid": p.pid, "excluded_reason": p.excluded or "",
                                              "adaptation_videos": ";".join(p.adaptation),
                                              "evaluation_videos": ";".join(p.evaluation)} for p in plans]))
    eligible = [p.pid for p in plans if not p.excluded]
    table = per_target(load_results(out, methods, eligible))
    _csv(out / "per_target.csv", table)
    summary = summarise(table, cfg.ddof)
    write_yaml(out / "summary.yml", {"split": cfg.target_split, "ddof": cfg.ddof, "seeds": list(cfg.seeds),
                                     "targets": {"requested": len(plans), "eligible": len(eligible)},
                                     "optimistic": bool(cfg.select_on_target_labels), "methods": summary})
    write_yaml(out / "config.yaml", resolved(cfg))
    return summary


def write_report(dirs: Sequence[Path], dest: Path, ddof: int = 1) -> Dict[str, Path]:
    """``bah personalize-report``: merge runs, write report.md, table24.csv, per_target.csv and gain plots."""
    import pandas as pd

    from bah.metrics.plots import plot_participant_bars

    frames, splits = [], set()
    for d in dirs:
        d = Path(d)
        if not (d / "results").is_dir():
            raise FileNotFoundError(f"{d}: no results/ folder (not a `bah personalize` output)")
        elig = None
        if (d / "targets.csv").exists():
            t = pd.read_csv(d / "targets.csv", dtype=str).fillna("")
            elig = t[t.excluded_reason == ""].pid.tolist()
        r = load_results(d, pids=elig)
        splits |= set(r.split.dropna().unique())
        frames.append(r)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if results.empty:
        raise ValueError(f"no results in {', '.join(map(str, dirs))}")
    dup = results.duplicated(["method", "pid", "seed"], keep=False)
    if dup.any():
        raise ValueError(f"the same (method, target, seed) appears in several folders, e.g. "
                         f"{results[dup].iloc[0][['method', 'pid', 'seed', 'source']].to_dict()}")
    table = per_target(results)
    summary = summarise(table, ddof)
    dest = Path(dest)
    files = {"markdown": dest / "report.md", "table": dest / "table24.csv", "per_target": dest / "per_target.csv"}
    split = ",".join(sorted(splits))
    write_text(files["markdown"], "# Personalisation by domain adaptation (Table 24 layout)\n\n"
               + table24_markdown(summary, split, ddof))
    _csv(files["table"], summary_frame(summary))
    _csv(files["per_target"], table)
    for method in summary:
        if method == "source_only":
            continue
        t = table[table.method == method].set_index("pid")
        if t["delta_avgf1"].notna().any():
            files[f"gains_{method}"] = plot_participant_bars(
                t, dest / f"gains-{method}.png", metric="delta_avgf1",
                title=f"{DISPLAY.get(method, method)}: AVGF1 gain over source-only per target")
    return files
