"""Markdown tables for the benchmark results (pure formatting: dicts in, text out)."""

from __future__ import annotations

import math

from locres.bench.groundtruth import GOAL_RANGE_A, RESOLUTION_BINS_A, bin_label

GOAL_KEY = f"goal {bin_label(*GOAL_RANGE_A)}"
GOAL_MAE_A = 0.5


def fmt(x, digits: int = 2, signed: bool = False) -> str:
    """A number for a table cell; ``-`` for None or NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def markdown_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one letter per column (l, r, c), default left then right."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(str(h) for h in headers) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _status(s: dict) -> str:
    skipped = s.get("n_cases_skipped", 0)
    if s["n_cases_ok"] == s["n_cases"]:
        return f"ok on {s['n_cases']} case{'s' if s['n_cases'] != 1 else ''} (budget)" if skipped else "ok"
    err = s["errors"][0] if s["errors"] else "failed"
    return f"{s['n_cases_ok']}/{s['n_cases']} ok: {err[:90]}"


def overview_table(summary: dict) -> str:
    """One row per variant: pooled scores over all mask voxels and over the goal range, time, memory."""
    headers = ["method", "input", "MAE (A)", "bias (A)", "Spearman", "coverage", f"MAE {GOAL_KEY[5:]} A",
               "s / case", "peak MB", "status"]
    rows = []
    for label, s in summary.items():
        m, g = s["metrics"].get("all", {}), s["metrics"].get(GOAL_KEY, {})
        rows.append([label, s["input"], fmt(m.get("mae_a")), fmt(m.get("bias_a"), signed=True),
                     fmt(m.get("spearman")), fmt(m.get("coverage")), fmt(g.get("mae_a")),
                     fmt(s["seconds_median"], 1), fmt(s["peak_mb_max"], 0), _status(s)])
    return markdown_table(headers, rows, "ll" + "r" * 7 + "l")


def equal_coverage_table(equal: dict) -> str:
    """Single-map against half-map variants over the voxels both estimated (one row per variant)."""
    headers = ["method", "input", "MAE (A)", "bias (A)", "Spearman", "common voxels", "common coverage",
               "estimated by this mode only"]
    rows = []
    for entry in equal.values():
        for mode, label in (("single", entry["single"]), ("halves", entry["halves"])):
            m = entry[f"{mode}_metrics"]
            rows.append([label, "map" if mode == "single" else "halves", fmt(m.get("mae_a")),
                         fmt(m.get("bias_a"), signed=True), fmt(m.get("spearman")), entry["n_common"],
                         fmt(entry["common_coverage"]), entry[f"only_{mode}"]])
    return markdown_table(headers, rows, "ll" + "r" * 6)


def per_bin_table(summary: dict) -> str:
    """One row per variant and true-resolution bin (seconds/memory of the cases whose median is there)."""
    headers = ["method", "true res. (A)", "MAE (A)", "bias (A)", "Spearman", "coverage", "voxels",
               "s / case", "peak MB"]
    rows = []
    for lo, hi in RESOLUTION_BINS_A:
        key = bin_label(lo, hi)
        for label, s in summary.items():
            m = s["metrics"].get(key, {})
            t = s["per_bin_time"].get(key, {})
            if s["n_cases_ok"] == 0 or not m.get("n_mask"):
                continue  # failed variants are in the overview; empty bins say nothing
            rows.append([label, key, fmt(m.get("mae_a")), fmt(m.get("bias_a"), signed=True),
                         fmt(m.get("spearman")), fmt(m.get("coverage")), fmt(m.get("n_mask")),
                         fmt(t.get("seconds_median"), 1), fmt(t.get("peak_mb_max"), 0)])
    return markdown_table(headers, rows, "ll" + "r" * 7)


def goal_assessment(summary: dict, learned: str = "deepres") -> str:
    """Whether the learned model has the lowest single-map MAE, and MAE < 0.5 A over 2.5-12 A."""
    if learned not in summary or summary[learned]["n_cases_ok"] == 0:
        err = summary.get(learned, {}).get("errors", ["not run"])
        return f"- The learned model (`{learned}`) did not run: {err[0] if err else 'failed'}.\n"
    single = {k: s for k, s in summary.items() if s["input"] == "map" and s["n_cases_ok"] > 0}
    mae = {k: s["metrics"]["all"]["mae_a"] for k, s in single.items()}
    ours = mae[learned]
    others = {k: v for k, v in mae.items() if k != learned and math.isfinite(v)}
    lines = []
    if others:
        best_k = min(others, key=others.get)
        if ours < others[best_k]:
            lines.append(f"- Lowest MAE among single-map methods: **met** ({learned} {ours:.2f} A; next best "
                         f"{best_k} {others[best_k]:.2f} A).")
        else:
            lines.append(f"- Lowest MAE among single-map methods: **not met** ({learned} {ours:.2f} A; "
                         f"{best_k} {others[best_k]:.2f} A, {ours - others[best_k]:.2f} A better).")
    else:
        lines.append(f"- Lowest MAE among single-map methods: no other single-map method ran ({learned} "
                     f"{ours:.2f} A).")
    all_mae = {k: s["metrics"]["all"]["mae_a"] for k, s in summary.items() if s["n_cases_ok"] > 0}
    best_all = min(all_mae, key=lambda k: all_mae[k] if math.isfinite(all_mae[k]) else math.inf)
    lines.append(f"- Lowest MAE of all variants (half-map ones included): {best_all} "
                 f"{all_mae[best_all]:.2f} A.")
    g = summary[learned]["metrics"].get(GOAL_KEY, {}).get("mae_a", float("nan"))
    lo, hi = GOAL_RANGE_A
    if math.isfinite(g) and g < GOAL_MAE_A:
        lines.append(f"- MAE over true {lo:g}-{hi:g} A below {GOAL_MAE_A} A: **met** ({g:.2f} A).")
    else:
        lines.append(f"- MAE over true {lo:g}-{hi:g} A below {GOAL_MAE_A} A: **not met** ({fmt(g)} A, "
                     f"{fmt(g - GOAL_MAE_A)} A over).")
    cov = summary[learned]["metrics"]["all"].get("coverage")
    if cov is not None and cov < 0.99:
        lines.append(f"- Note: {learned} estimated {cov:.0%} of the mask voxels; MAE counts estimated "
                     "voxels only.")
    return "\n".join(lines) + "\n"


def sharpening_table(study: dict) -> str:
    """Median estimate in the mask per variant (rows) and sharpening B (columns), with the shift from B=0."""
    bs = study["b_factors_a2"]
    headers = ["method", "input"] + [f"B={b:+g}" for b in bs] + ["max shift (A)"]
    rows = []
    for label, s in study["variants"].items():
        med = s["median_a"]
        base = med[bs.index(0)] if 0 in bs and med[bs.index(0)] is not None else None
        shifts = [abs(m - base) for m in med if m is not None and base is not None]
        rows.append([label, s["input"]] + [fmt(m) for m in med] + [fmt(max(shifts)) if shifts else "-"])
    rows.append(["truth", "-"] + [fmt(study["truth_median_a"])] * len(bs) + ["0.00"])
    notes = [f"- {label} failed at some B: {s['errors'][0][:120]}" for label, s in study["variants"].items()
             if s.get("errors")]
    return markdown_table(headers, rows, "ll" + "r" * (len(bs) + 1)) + ("\n" + "\n".join(notes) + "\n"
                                                                         if notes else "")


def realmaps_tables(result: dict) -> str:
    """Per real map: the modelfsc yardstick, each variant's median, MAE / bias / Spearman against the
    yardstick, Spearman with B-factors, and the pairwise Spearman matrix."""
    out = []
    for name, m in result["maps"].items():
        nz, ny, nx = m["shape_zyx"]
        out.append(f"**{name}** ({nx}x{ny}x{nz} voxels (x, y, z), "
                   f"{m['voxel_size_a']:.3f} A/px, mask {m['mask_source']}; reported "
                   f"{fmt(m.get('reported_resolution_a'), 1)} A)\n")
        labels = [k for k, v in m["variants"].items() if v.get("error") is None]
        rep = m.get("reported_resolution_a")
        rows = []
        ref = m.get("modelfsc")
        if ref:
            dev = ref["median_a"] - rep if rep else None
            rows.append(["modelfsc (yardstick)", fmt(ref["median_a"]), fmt(dev, signed=True), "-", "-", "-",
                         "-", fmt(ref.get("spearman_bfactor")), "-", "-", "-", fmt(ref.get("seconds"), 1),
                         "ok" if ref.get("at_cap_fraction") is None else
                         f"{100 * ref['at_cap_fraction']:.0f} % of the footprint at its "
                         f"{ref['cap_a']:.1f} A cap"])
        for k, v in m["variants"].items():
            dev = v["median_a"] - rep if (rep and v.get("median_a") is not None) else None
            rows.append([k, fmt(v.get("median_a")), fmt(dev, signed=True), fmt(v.get("coverage")),
                         fmt(v.get("mae_vs_modelfsc_a")),
                         fmt(v.get("bias_vs_modelfsc_a"), signed=True), fmt(v.get("spearman_modelfsc")),
                         fmt(v.get("spearman_bfactor")), fmt(v.get("n_atoms")),
                         fmt(v.get("mae_vs_modelfsc_crossed_a")), fmt(v.get("spearman_modelfsc_crossed")),
                         fmt(v.get("seconds"), 1), (v.get("error") or "ok")[:90]])
        headers = ["method", "median (A)", "median - reported", "coverage", "MAE vs modelfsc (A)",
                   "bias vs modelfsc (A)", "Spearman vs modelfsc", "Spearman vs B-factor", "atoms",
                   "MAE below cap (A)", "Spearman below cap", "seconds", "status"]
        out.append(markdown_table(headers, rows, "l" + "r" * 11 + "l"))
        if len(labels) > 1:
            pair = m["pairwise_spearman"]
            out.append("\n" + markdown_table(["Spearman"] + labels,
                                             [[a] + [fmt(pair.get(a, {}).get(b)) for b in labels]
                                              for a in labels]))
        paired = [p for p in m.get("paired_vs_modelfsc", []) if p["voxels"]]
        if paired:
            out.append("\nAt equal coverage (both against modelfsc on the voxels both estimated):\n")
            out.append(markdown_table(
                ["pair", "voxels", "MAE first (A)", "MAE second (A)", "Spearman first", "Spearman second"],
                [[f"{p['a']} / {p['b']}", str(p["voxels"]), fmt(p["mae_a"]), fmt(p["mae_b"]),
                  fmt(p["spearman_a"]), fmt(p["spearman_b"])] for p in paired], "lrrrrr"))
        out.append("")
    return "\n".join(out)
