"""Results as a markdown table and JSON. Ratios of medians are the headline: the machine is shared and noisy.

Latency rows: ms per request, lower is better; "ours/Orthanc" > 1 means ours is slower.
Throughput rows: higher is better; "ours/Orthanc" > 1 means ours is faster.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from bench.scenarios import summary

SERVER_LABELS = {"ours": "ours", "orthanc": "Orthanc", "nginx": "nginx"}


def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "latency":
        ms = value * 1000
        return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _cell(outcome: dict, kind: str) -> str:
    status = outcome.get("status")
    if status == "n/a":
        return "n/a (not implemented)"
    if status != "ok":
        return f"{status.upper()}: {outcome.get('note', '')[:80]}".replace("|", "/")
    s = outcome.get("summary") or {}
    if not s:
        return "-"
    tail = s["p95"] if kind == "latency" else s["p5"]
    spread = (s["p75"] - s["p25"]) / s["median"] * 100 if s["median"] else 0
    return (f"**{_fmt(s['median'], kind)}** ({'p95' if kind == 'latency' else 'p5'} {_fmt(tail, kind)}; "
            f"{_fmt(s['min'], kind)}–{_fmt(s['max'], kind)}; IQR {spread:.0f}%; n={s['n']})")


def _ratio(row: dict, a: str, b: str) -> str:
    sa = row["servers"].get(a, {})
    sb = row["servers"].get(b, {})
    if sa.get("status") != "ok" or sb.get("status") != "ok":
        return "-"
    ma, mb = sa["summary"].get("median"), sb["summary"].get("median")
    if not ma or not mb:
        return "-"
    return f"{ma / mb:.2f}"


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [f"# Benchmark results — {meta['started']}", ""]
    lines.append(f"Machine: {meta['machine']}. Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
                 + ".")
    lines.append(f"Mode: {meta['mode']}; sizes: {meta['sizes']}; repetitions: {meta['reps']}; "
                 f"total {meta.get('elapsed_s', 0):.0f} s.")
    lines.append("")
    lines.append("Cells: **median** (p95 for latencies / p5 for throughputs; min–max; IQR as % of the median; "
                 "samples). Latencies in ms (lower is better: ratio > 1 = ours slower); throughputs in the row's "
                 "unit (higher is better: ratio > 1 = ours faster). Every answer is checked (status, part counts, "
                 "bytes, result counts); a wrong answer is reported as WRONG, not as a time.")
    lines.append("")
    groups: dict[str, list] = {}
    for row in results["rows"]:
        groups.setdefault(row["group"], []).append(row)
    for group, rows in groups.items():
        present = [s for s in ("ours", "orthanc", "nginx") if any(s in r["servers"] for r in rows)]
        lines.append(f"## {group}")
        lines.append("")
        header = ["scenario"] + [SERVER_LABELS[s] for s in present]
        if "orthanc" in present:
            header.append("ours/Orthanc")
        if "nginx" in present:
            header.append("ours/nginx")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in rows:
            unit = "ms" if row["kind"] == "latency" else row["unit"]
            cells = [f"{row['name']} [{unit}]"]
            cells += [_cell(row["servers"][s], row["kind"]) if s in row["servers"] else "" for s in present]
            if "orthanc" in present:
                ratio = _ratio(row, "ours", "orthanc")
                paired = row.get("paired_ratio_ours_orthanc")
                if paired and ratio != "-":
                    ratio += (f" (paired: {paired['median']:.2f}, {paired['min']:.2f}–{paired['max']:.2f})")
                cells.append(ratio)
            if "nginx" in present:
                cells.append(_ratio(row, "ours", "nginx"))
            lines.append("| " + " | ".join(cells) + " |")
        # STOW details: request latency and server CPU
        if group == "STOW-RS":
            lines.append("")
            lines.append("Per-request latency, server CPU (CPU seconds of the server's process tree / wall "
                         "seconds; 1.0 = one core busy), the benchmark client's CPU likewise, and the CPU used by every other "
                         "process on the machine meanwhile (from /proc/stat; the machine has "
                         f"{__import__('os').cpu_count()} cores and is shared):")
            lines.append("")
            lines.append("| run | server | request median ms | request p95 ms | server CPU | client CPU | "
                         "other processes' CPU |")
            lines.append("|---|---|---|---|---|---|---|")
            for row in rows:
                if not row["name"].endswith("(inst/s)"):
                    continue
                for s, o in row["servers"].items():
                    lat = o.get("request_latency") or {}
                    cpu = o.get("server_cpu_fraction") or []
                    ccpu = o.get("client_cpu_fraction") or [0]
                    ocpu = o.get("other_cpu_fraction") or [0]
                    if lat:
                        lines.append(f"| {row['name'].rsplit(' (', 1)[0]} | {SERVER_LABELS[s]} | "
                                     f"{lat['median'] * 1000:.0f} | {lat['p95'] * 1000:.0f} | "
                                     f"{sum(cpu) / len(cpu):.2f} | {sum(ccpu) / len(ccpu):.2f} | "
                                     f"{sum(ocpu) / len(ocpu):.2f} |")
        lines.append("")
    if results.get("memory"):
        lines.append("## Large STOW upload: memory")
        lines.append("")
        lines.append("| server | body | seconds | MB/s | RSS before MiB | peak RSS MiB | growth MiB | status |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for name, m in results["memory"].items():
            if m.get("status") == "ok" or m.get("rss_peak"):
                lines.append(f"| {SERVER_LABELS.get(name, name)} | {m['body_bytes'] / 2**30:.2f} GiB | "
                             f"{m['seconds']:.1f} | {m['samples'][0]:.0f} | {m['rss_before'] / 2**20:.0f} | "
                             f"{m['rss_peak'] / 2**20:.0f} | {m['rss_growth'] / 2**20:.0f} | "
                             f"{m['status']} {m.get('note', '')[:80]} |")
            else:
                lines.append(f"| {SERVER_LABELS.get(name, name)} | | | | | | | {m['status']}: "
                             f"{m.get('note', '')[:120]} |")
        lines.append("")
    if results.get("peak_rss"):
        lines.append("## Peak RSS during the run (process tree, sampled every 50 ms)")
        lines.append("")
        lines.append("| server | peak RSS MiB | RSS at end MiB |")
        lines.append("|---|---|---|")
        for name, value in results["peak_rss"].items():
            lines.append(f"| {SERVER_LABELS.get(name, name)} | {value['peak'] / 2**20:.0f} | "
                         f"{value['end'] / 2**20:.0f} |")
        lines.append("")
    if results.get("probes"):
        lines.append("## Probes")
        lines.append("")
        for key, value in results["probes"].items():
            lines.append(f"- {key}: {value}")
        lines.append("")
    return "\n".join(lines)


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started"].replace(":", "").replace("-", "").replace(" ", "T")[:15]
    json_path = out / f"results-{stamp}.json"
    md_path = out / f"results-{stamp}.md"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    md_path.write_text(markdown(results))
    (out / "latest.json").write_text(json_path.read_text())
    (out / "latest.md").write_text(md_path.read_text())
    return md_path, json_path


__all__ = ["markdown", "write", "summary"]
