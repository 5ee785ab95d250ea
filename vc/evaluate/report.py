"""From per-pair records to report.json, report.md and similarity.png.

Every figure is a mean over the scored pairs with a 95 % percentile-bootstrap confidence interval
(2,000 resamples of the pairs, fixed seed: the same records always give the same report).
Timings live under ``speed`` only: they are the one part of a report that a re-run changes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SYSTEMS = {"converted": "converted", "source": "source unchanged",
           "resynthesis": "vocoder resynthesis", "reconstruction": "reconstruction"}
METRICS = ("sim_target", "sim_source", "svar", "target_closer", "cer", "wer", "dnsmos", "mcd")


def bootstrap_ci(values, n: int = 2000, level: float = 0.95, seed: int = 0) -> list[float] | None:
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    means = v[np.random.default_rng(seed).integers(0, v.size, (n, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def summary(values) -> dict:
    v = [float(x) for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None, "ci95": bootstrap_ci(v), "n": len(v)}


def build(records: list[dict], calibration: dict, probe: dict, meta: dict) -> dict:
    ok = [r for r in records if "error" not in r]
    thr = calibration.get("threshold")
    systems = {}
    for name in SYSTEMS:
        rows = [r["systems"][name] for r in ok]
        col = lambda k: [row[k] for row in rows]  # noqa: E731
        systems[name] = {k: summary(col(k)) for k in ("sim_target", "sim_source", "cer", "wer",
                                                      "dnsmos", "dnsmos_sig", "dnsmos_bak", "mcd")}
        systems[name]["svar"] = summary([float(s >= thr) for s in col("sim_target")] if thr is not None else [])
        systems[name]["target_closer"] = summary([float(r["sim_target"] > r["sim_source"]) for r in rows])
    with_text = [r for r in ok if r["words_from"] == "transcript"]
    delta = lambda rs: summary([r["systems"]["converted"]["cer"] - r["systems"]["source"]["cer"]  # noqa: E731
                                for r in rs if r["systems"]["converted"]["cer"] is not None
                                and r["systems"]["source"]["cer"] is not None])
    content = {"cer_converted_minus_source": delta(ok),
               "pairs_with_transcript": len(with_text),
               "pairs_against_asr_of_source": len(ok) - len(with_text),
               "with_transcript": {name: {k: summary([r["systems"][name][k] for r in with_text])
                                          for k in ("cer", "wer")} for name in SYSTEMS},
               "cer_converted_minus_source_with_transcript": delta(with_text)}
    return {"meta": meta, "pairs": {"total": len(records), "scored": len(ok), "failed": len(records) - len(ok)},
            "failures": [{"source": r["pair"]["source"], "target": r["pair"]["target"], "error": r["error"]}
                         for r in records if "error" in r],
            "systems": systems, "content": content, "speaker_verification": calibration,
            "disentanglement": probe, "speed": speed(ok)}


def speed(ok: list[dict]) -> dict:
    """Real-time factors (compute seconds / seconds of audio produced) of each conversion stage,
    and what the evaluation itself spent per pair."""
    audio = sum(r["seconds"]["converted"] for r in ok)
    out = {}
    for stage in ("features", "model", "vocoder"):
        per = [r["stages"].get(stage, 0.0) / r["seconds"]["converted"] for r in ok]
        out[f"{stage}_rtf"] = {"total": sum(r["stages"].get(stage, 0.0) for r in ok) / audio if audio else None,
                               **summary(per)}
    stages = sorted({k for r in ok for k in r["eval_seconds"]})
    out["evaluation_seconds_per_pair"] = {k: float(np.mean([r["eval_seconds"].get(k, 0.0) for r in ok]))
                                          for k in stages}
    cpu = [r["eval_cpu_seconds"] for r in ok if "eval_cpu_seconds" in r]
    out["evaluation_cpu_seconds_per_pair"] = float(np.mean(cpu)) if cpu else None
    out["converted_seconds_per_pair"] = float(audio / len(ok)) if ok else None
    return out


# -- writing -----------------------------------------------------------------------------------

def fmt(s: dict, digits: int = 2, percent: bool = False) -> str:
    if s is None or s.get("mean") is None:
        return "—"
    k = 100.0 if percent else 1.0
    text = f"{s['mean'] * k:.{digits}f}"
    if s.get("ci95"):
        lo, hi = s["ci95"]
        text += f" [{lo * k:.{digits}f}, {hi * k:.{digits}f}]"
    return text


def markdown(rep: dict) -> str:
    m, sv, dis, sp, ct = rep["meta"], rep["speaker_verification"], rep["disentanglement"], rep["speed"], rep["content"]
    lines = [f"# Evaluation of {m['model']}", "",
             f"Vocoder {m['vocoder']}; pairs from {m['pairs_from']}; {rep['pairs']['scored']} pairs scored, "
             f"{rep['pairs']['failed']} failed. Means with 95 % bootstrap confidence intervals.", "",
             "| system | sim to target ↑ | sim to source | SVAR % ↑ | CER % ↓ | WER % ↓ | DNSMOS ↑ "
             "| MCD dB ↓ |",
             "|---|---|---|---|---|---|---|---|"]
    for name, label in SYSTEMS.items():
        s = rep["systems"][name]
        lines.append(f"| {label} | {fmt(s['sim_target'])} | {fmt(s['sim_source'])} | "
                     f"{fmt(s['svar'], 1, True)} | {fmt(s['cer'], 1, True)} | {fmt(s['wer'], 1, True)} | "
                     f"{fmt(s['dnsmos'])} | {fmt(s['mcd'])} |")
    thr = f"{sv['threshold']:.3f}" if sv.get("threshold") is not None else "—"
    lines += ["",
              f"- **sim**: Resemblyzer cosine to the target clip / to the source. Converted speech closer to "
              f"the target than to the source in "
              f"{fmt(rep['systems']['converted']['target_closer'], 1, True)} % of pairs.",
              ("- **SVAR**: " + sv.get("note", "not computed.") if sv.get("threshold") is None else
               f"- **SVAR**: share with sim to target ≥ {thr}, " + (
                   f"the equal-error threshold of {sv['n_same']} same-speaker and {sv['n_different']} "
                   f"different-speaker trials of {sv['n_utterances']} real utterances of {sv['n_speakers']} "
                   f"evaluation speakers (EER {sv['eer'] * 100:.1f} %)." if "eer" in sv else sv.get("note", ""))),
              f"- **CER / WER**: Whisper tiny.en on the output vs the words it should say: the transcript "
              f"({ct['pairs_with_transcript']} pairs) or Whisper on the source ({ct['pairs_against_asr_of_source']} "
              f"pairs, where the source row is 0 by construction). CER converted − CER source: "
              f"{fmt(ct['cer_converted_minus_source'], 1, True)} points "
              f"(pairs with a transcript only: {fmt(ct['cer_converted_minus_source_with_transcript'], 1, True)}).",
              "- **MCD**: to a real recording of the target speaker saying the same words: the `reference` "
              "for converted and source rows, the clip itself for resynthesis and reconstruction.",
              "- **vocoder resynthesis / reconstruction** start from another real clip of the target speaker"
              + (" (the target clip itself where no reference is given: their sim to target is then optimistic)"
                 if m.get("ceiling_is_target") else "") + ".", ""]
    lines += ["## Disentanglement (speaker identification from frozen codes)", ""]
    if "skipped" in dis:
        lines.append(f"Skipped: {dis['skipped']}.")
    else:
        lines += [f"Logistic regression on {dis['n_train']} utterances, tested on {dis['n_test']} held-out "
                  f"utterances of the same {dis['n_speakers']} speakers. Chance: {dis['chance'] * 100:.1f} %.", "",
                  "| representation | accuracy % |", "|---|---|",
                  f"| content code (pooled statistics) ↓ | {dis['content'] * 100:.1f} |",
                  f"| speaker vector ↑ | {dis['speaker'] * 100:.1f} |",
                  f"| log-mel mean and std (input, for scale) | {dis['mel'] * 100:.1f} |",
                  f"| Resemblyzer d-vector (for scale) | {dis['resemblyzer'] * 100:.1f} |"]
    lines += ["", "## Speed (real-time factor: compute seconds per second of audio)", "",
              "| stage | RTF |", "|---|---|"]
    for stage in ("features", "model", "vocoder"):
        total = sp[f"{stage}_rtf"]["total"]
        lines.append(f"| {stage} | {total:.4f} |" if total is not None else f"| {stage} | — |")
    per_pair = ", ".join(f"{k} {v:.2f} s" for k, v in sp["evaluation_seconds_per_pair"].items())
    cpu = sp.get("evaluation_cpu_seconds_per_pair")
    lines += ["", f"Evaluation cost per pair (wall clock): {per_pair}"
              + (f"; {cpu:.1f} CPU seconds in all." if cpu is not None else "."), ""]
    if rep["failures"]:
        lines += ["## Failed pairs", ""] + [f"- {f['source']} → {f['target']}: {f['error']}" for f in rep["failures"]]
        lines.append("")
    lines += ["![similarity](similarity.png)", ""]
    return "\n".join(lines)


def similarity_figure(records: list[dict], threshold: float | None):
    """Histograms of sim to target and sim to source, converted vs the baselines."""
    from ..plots import plt
    ok = [r for r in records if "error" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    lowest = min([r["systems"][n][k] for r in ok for n in SYSTEMS for k in ("sim_target", "sim_source")], default=0.3)
    bins = np.linspace(min(0.3, np.floor(lowest * 20) / 20), 1.0, 36)
    for ax, key, title in ((axes[0], "sim_target", "similarity to the target clip"),
                           (axes[1], "sim_source", "similarity to the source")):
        for name, label in SYSTEMS.items():
            values = np.clip([r["systems"][name][key] for r in ok], bins[0], bins[-1])   # 1.0000001 counts
            ax.hist(values, bins=bins, histtype="step", lw=1.6, label=label)
        if threshold is not None and key == "sim_target":
            ax.axvline(threshold, color="k", ls="--", lw=1, label=f"SV threshold {threshold:.2f}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("Resemblyzer cosine")
    axes[0].set_ylabel("pairs")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def write(out_dir: Path, rep: dict, records: list[dict]) -> Path:
    from ..plots import plt
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (out_dir / "report.md").write_text(markdown(rep))
    fig = similarity_figure(records, rep["speaker_verification"].get("threshold"))
    fig.savefig(out_dir / "similarity.png", dpi=90)
    plt.close(fig)
    return out_dir / "report.md"
