"""Pair by pair: how two scored models differ on the same pairs (`vc evaluate` output folders).

    python scripts/compare_runs.py BASELINE_EVAL_DIR CANDIDATE_EVAL_DIR [MORE_CANDIDATES ...]

Each folder holds the results.jsonl of `vc evaluate` (e.g. a screening run's val_eval). Pairs are
matched by their key (the same seeded pairs), and for every metric the mean of (candidate -
baseline) over the pairs both scored is printed with a 95 % percentile-bootstrap interval of that
paired mean: pair-to-pair spread cancels, so a difference that two separate means with their own
wide intervals hide can still show. CER is capped at 100 % per pair (one hallucinated transcript
would otherwise move a 40-pair mean by 5 points). An interval that excludes 0 is marked '*'.

A folder may be several joined by '+' (``val_eval+val_eval_seed1``: `vc evaluate --seed 1` scores
other utterances of the same speaker pairs, under other keys): their pairs are pooled, so that a
difference too small for one draw of 132 `val` pairs (DNSMOS by ~0.03) can show in two. A key
found in several of the joined folders (two training seeds of a recipe, scored on the same pairs:
``seed0/val_eval+seed1/val_eval``) is one pair whose every metric is the mean over those folders:
the bootstrap still resamples pairs, not seeds.

Each verifier's similarity is also shown against *another* clip of the target speaker (the
pair's ceiling clip: `sim_other`, `ecapa_sim_other`): envelope matching copies from the target
clip itself, so a change seen against that clip only may be the clip's, not the speaker's.
Words likewise come from two recognisers: Whisper tiny (`cer`), which vc's word losses train
against, and Moonshine base (`moonshine_cer`), which training never uses; folders scored before
Moonshine was added have no such rows. `Moonshine - Whisper` (each capped, per pair) changes
where a candidate's CER moves more for one recogniser than for the other: a drop in Whisper's CER
that Moonshine does not share is a model pleasing the recogniser it trains against. ``--recognisers`` instead sets the two side by side within
each folder: per system, Whisper's and Moonshine's capped CER of the same clips and their paired
difference. Where the difference is larger for the conversions than for real speech (the source
row) or for the vocoder's resynthesis, Moonshine hears the conversions as relatively worse than the
recogniser they were trained against does.

``--by target`` (or ``source``) repeats the comparison within groups of pairs whose target (or
source) speaker is of one kind: the speaker's corpus in the manifest (--data), children (age
under 15: speechocean762's are 6-14) apart. `val` has speechocean762 speakers only, half of them
children; `dev` is half LibriSpeech and has no child: this is how a `val` gain can be seen to
hold, or not, on the kinds of voices `val` lacks. ``--by format`` splits the pairs by how their
source and target files are coded instead (``lossless -> lossy``: vc.audio.is_lossy): `val` is
70 % Ogg Opus, `dev` and most uploads are lossless.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vc.audio import is_lossy  # noqa: E402
from vc.evaluate.report import bootstrap_ci  # noqa: E402

# (system, metric, label, scale): scale 100 shows a share in points
METRICS = [("converted", "sim_target", "Resemblyzer sim to target", 1),
           ("converted", "sim_source", "Resemblyzer sim to source", 1),
           ("converted", "sim_other", "Resemblyzer sim to another target clip", 1),
           ("converted", "ecapa_sim_target", "ECAPA sim to target", 1),
           ("converted", "ecapa_sim_source", "ECAPA sim to source", 1),
           ("converted", "ecapa_margin", "ECAPA margin (target - source)", 1),
           ("converted", "ecapa_sim_other", "ECAPA sim to another target clip", 1),
           ("converted", "ecapa_margin_other", "ECAPA margin (other clip - source)", 1),
           ("converted", "cer", "CER converted, capped (points)", 100),
           ("reconstruction", "cer", "CER reconstructed, capped (points)", 100),
           ("converted", "moonshine_cer", "Moonshine CER converted, capped (points)", 100),
           ("reconstruction", "moonshine_cer", "Moonshine CER reconstructed, capped (points)", 100),
           ("converted", "moonshine_minus_whisper", "Moonshine - Whisper CER converted (points)", 100),
           ("converted", "dnsmos", "DNSMOS converted", 1),
           ("converted", "dnsmos_bak", "DNSMOS background converted", 1)]


def read_results(folder) -> dict[str, dict]:
    """{pair key: that pair's record} from ``folder``/results.jsonl (or its shards); ``folder``
    may be several joined by '+', pooled."""
    if "+" in str(folder):
        merged: dict[str, dict] = {}
        for part in str(folder).split("+"):
            for k, r in read_results(Path(part)).items():
                if k in merged:               # the same pair scored again: a replicate, averaged in value()
                    first = merged[k]
                    merged[k] = {"key": k, "pair": first.get("pair"),
                                 "replicates": first.get("replicates", [first]) + [r]}
                else:
                    merged[k] = r
        return merged
    folder = Path(folder)
    files = sorted(folder.glob("results*.jsonl"))
    if not files:
        raise SystemExit(f"{folder}: no results.jsonl (score it with `vc evaluate --out {folder}` first)")
    records = {}
    for f in files:
        for line in f.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["key"]] = rec
    return records


def value(rec: dict, system: str, metric: str) -> float | None:
    if "replicates" in rec:                   # one pair scored in several folders: their mean
        vs = [v for r in rec["replicates"] if (v := value(r, system, metric)) is not None]
        return float(np.mean(vs)) if vs else None
    if metric in ("ecapa_margin", "ecapa_margin_other"):    # how much nearer the target's voice than the source's
        other = "ecapa_sim_other" if metric == "ecapa_margin_other" else "ecapa_sim_target"
        t, s = value(rec, system, other), value(rec, system, "ecapa_sim_source")
        return None if t is None or s is None else t - s
    if metric == "moonshine_minus_whisper":   # a change here: one recogniser credits the change more than the other
        m, w = value(rec, system, "moonshine_cer"), value(rec, system, "cer")
        return None if m is None or w is None else m - w
    v = rec.get("systems", {}).get(system, {}).get(metric)
    if v is None:
        return None
    return min(1.0, float(v)) if metric.endswith("cer") else float(v)


def speaker_groups(manifest: Path) -> dict[str, str]:
    """{speaker: its kind}: the corpus, or 'child' for a speaker under 15 (the manifest's age)."""
    with open(manifest, newline="") as f:
        return {r["speaker"]: "child" if r.get("age", "").isdigit() and int(r["age"]) < 15 else r["corpus"]
                for r in csv.DictReader(f, delimiter="\t")}


def coding(pair: dict) -> str:
    """'lossless -> lossy' and the like: how a pair's source and target files are coded."""
    return " -> ".join("lossy" if is_lossy(pair.get(side, "")) else "lossless" for side in ("source", "target"))


def grouped(records: dict[str, dict], side: str, kinds: dict[str, str]) -> dict[str, dict[str, dict]]:
    """{kind: {key: record}}: the pairs split by the kind of their ``side`` ('target' or 'source')
    speaker, or with ``side`` 'format' by how their files are coded (:func:`coding`)."""
    out: dict[str, dict[str, dict]] = {}
    for key, rec in records.items():
        pair = rec.get("pair") or {}
        kind = coding(pair) if side == "format" else kinds.get(pair.get(f"{side}_speaker"), "unknown")
        out.setdefault(kind, {})[key] = rec
    return out


def paired(base: dict[str, dict], cand: dict[str, dict]) -> list[dict]:
    """One row per metric: n, baseline mean, candidate mean, mean difference and its interval."""
    rows = []
    for system, metric, label, scale in METRICS:
        a, b = [], []
        for key in sorted(base.keys() & cand.keys()):
            x, y = value(base[key], system, metric), value(cand[key], system, metric)
            if x is not None and y is not None:
                a.append(x)
                b.append(y)
        if not a:
            continue
        d = np.subtract(b, a) * scale
        ci = bootstrap_ci(d)
        rows.append({"metric": label, "n": len(d), "base": float(np.mean(a)) * scale,
                     "cand": float(np.mean(b)) * scale, "diff": float(d.mean()), "ci95": ci,
                     "significant": ci is not None and (ci[0] > 0 or ci[1] < 0)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", help="a vc evaluate folder (or several joined by '+', pooled)")
    p.add_argument("candidates", nargs="*")
    p.add_argument("--recognisers", action="store_true",
                   help="per folder and system: Whisper's and Moonshine's CER of the same clips, and their difference")
    p.add_argument("--by", choices=("target", "source", "format"),
                   help="also compare within the kinds of target (or source) speaker: corpus, children (under 15) "
                        "apart; or within the codings of the pair's files (format: lossless or lossy, source -> target)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "manifest.tsv",
                   help="the manifest that says each speaker's corpus and age (for --by)")
    args = p.parse_args(argv)
    by_speaker = args.by in ("target", "source")
    if by_speaker and not args.data.is_file():
        raise SystemExit(f"{args.data}: manifest not found (--by needs --data)")
    base = read_results(args.baseline)
    if args.recognisers:
        for folder in [args.baseline, *args.candidates]:
            show(recognisers(read_results(folder)), f"{folder}: Moonshine - Whisper on the same clips (paired)")
        return 0
    if not args.candidates:
        p.error("give a candidate folder (or --recognisers)")
    kinds = speaker_groups(args.data) if by_speaker else {}
    for folder in args.candidates:
        cand = read_results(folder)
        show(paired(base, cand), f"{folder} - {args.baseline} (paired)")
        if args.by:
            base_groups, cand_groups = grouped(base, args.by, kinds), grouped(cand, args.by, kinds)
            for kind in sorted(base_groups):
                what = f"{args.by} speaker" if by_speaker else "files"
                show(paired(base_groups[kind], cand_groups.get(kind, {})), f"  {what}: {kind}")
    return 0


def recognisers(records: dict[str, dict]) -> list[dict]:
    """One row per system scored: n, Whisper's capped CER, Moonshine's, and their paired difference
    (points), over the pairs both recognisers read."""
    rows = []
    for system in ("converted", "source", "resynthesis", "reconstruction"):
        both = [(value(r, system, "cer"), value(r, system, "moonshine_cer")) for r in records.values()]
        both = [(w, m) for w, m in both if w is not None and m is not None]
        if len(both) < 2:
            continue
        w, m = (100 * np.array(x) for x in zip(*both))
        ci = bootstrap_ci(m - w)
        rows.append({"metric": f"CER {system}: Whisper -> Moonshine", "n": len(w), "base": float(w.mean()),
                     "cand": float(m.mean()), "diff": float((m - w).mean()), "ci95": ci,
                     "significant": ci is not None and (ci[0] > 0 or ci[1] < 0)})
    return rows


def show(rows: list[dict], title: str):
    print(f"\n{title}")
    print(f"{'metric':36s} {'n':>4s} {'base':>8s} {'cand':>8s} {'diff':>8s}  95 % CI")
    for r in rows:
        ci = "" if r["ci95"] is None else f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        print(f"{r['metric']:36s} {r['n']:4d} {r['base']:8.3f} {r['cand']:8.3f} {r['diff']:+8.3f}  "
              f"{ci}{' *' if r['significant'] else ''}")


if __name__ == "__main__":
    sys.exit(main())
