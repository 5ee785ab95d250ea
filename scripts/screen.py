"""Screen training variants side by side: same wall-clock budget, same seeded `val` pairs.

    python scripts/screen.py CONFIG.yaml [CONFIG.yaml ...] --runs ~/vc-runs/screen \
        --minutes 25 --parallel 3 --pairs 40 --table reports/screening.md

For each config (its file name is the run's name; a `# what: ...` first line says what changed):
  1. trains `vc train --config CONFIG` with `max_minutes` set to --minutes (all runs at once,
     one thread each, so every run gets the same share of the machine); an existing run resumes;
  2. exports its last checkpoint and scores it with `vc evaluate --split val --systems
     converted,reconstruction` on the same --pairs seeded pairs of `val` speakers (never `dev`);
     a run scored before from the same checkpoint keeps its scores and adds only the pairs it
     lacks (--pairs 132 after --pairs 40 scores the other 92: the 40 are among all 132);
  3. writes one row per run into --table (Markdown) and its .tsv twin, replacing that run's
     old row: steps, wall time, similarity / SVAR / closer-to-target from both verifiers, CER of
     the conversions and of the model's own reconstruction, and speaker ID from content codes.
     With --draws 2 each run is also scored on a second draw of the pairs (other utterances of the
     same speakers, `vc evaluate --seed 1`, into val_eval_seed1): one draw of 132 pairs cannot
     resolve ~0.03 of DNSMOS (reports/match_smooth_probe_v9.md); compare_runs pools 'A+B' folders.
--skip-train scores what the runs hold now; --skip-eval only trains; --table-only rewrites the
table from the scores the runs already have.
Inference-only variants: a config with `score_only: CKPT` (relative to the config's folder) is not
trained; that checkpoint is scored as it is. `strength: S` in any config is passed to `vc evaluate
--strength` (vc.convert: source + S * (target - source) of the speaker vectors), `adapt: N` to
`vc evaluate --adapt` (speaker vectors refined by N steps), `match: W` to `vc evaluate --match`
(envelope matching, vc/match.py), `match_high: W` to `vc evaluate --match-high` (high-band
matching, vc/match.py), and `vocoder: NAME` to `vc evaluate
--vocoder` (a .pt file of HiFi-GAN generator weights is relative to the config's folder), never to
training. A fine-tune that sets no `strength`, `match` or `match_high` is scored with those of the model it
starts from (`init_from`'s meta, e.g. 1.25 for v9), as its users would convert with it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vc.evaluate.runner import read_all_results  # noqa: E402  (results.jsonl and --shard files)
VC = [sys.executable, "-m", "vc"]
COLUMNS = ["run", "what", "steps", "minutes", "pairs", "sim_tgt", "sim_src", "closer", "svar",
           "ecapa_sim_tgt", "ecapa_sim_src", "ecapa_closer", "ecapa_svar", "cer", "cer_capped", "cer_recon",
           "content_spk_id", "dnsmos", "moonshine_cer_capped"]


def what_changed(config: Path) -> str:
    first = config.read_text().splitlines()[:1]
    return first[0].split("what:", 1)[1].strip() if first and "what:" in first[0] else ""


def launch(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=open(log, "a"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def run_all(jobs: list[tuple[list[str], Path]], parallel: int):
    """Run the commands, at most ``parallel`` at a time; raise if any fails."""
    todo, running, failed = list(jobs), [], []
    while todo or running:
        while todo and len(running) < parallel:
            cmd, log = todo.pop(0)
            print(f"  start: {' '.join(map(str, cmd[2:]))}  (log {log})", flush=True)
            running.append((launch(cmd, log), log))
        time.sleep(5)
        for proc, log in list(running):
            if proc.poll() is not None:
                running.remove((proc, log))
                if proc.returncode:
                    failed.append(log)
    if failed:
        raise SystemExit(f"failed: {', '.join(map(str, failed))} (see the logs)")


def score_only(config: Path) -> Path | None:
    """The checkpoint an inference-only config scores as it is, or None (a config to train)."""
    path = (yaml.safe_load(config.read_text()) or {}).get("score_only")
    return (config.parent / path).resolve() if path else None


def train_jobs(configs, runs: Path, data: str, minutes: float):
    jobs = []
    for config in configs:
        cfg = yaml.safe_load(config.read_text())
        if cfg.get("score_only"):
            continue
        cfg.pop("strength", None)           # inference settings (vc evaluate --strength, --adapt)
        cfg.pop("adapt", None)
        cfg.pop("vocoder", None)
        cfg.pop("match", None)
        cfg.pop("match_high", None)
        cfg.update(max_minutes=minutes, threads=1)
        out = runs / config.stem
        out.mkdir(parents=True, exist_ok=True)
        (runs / f"{config.stem}.config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [*VC, "train", "--config", str(runs / f"{config.stem}.config.yaml"), "--data", data,
               "--out", str(out), "--no-progress", "--steps", str(cfg.get("steps", 10 ** 9))]
        if any(out.glob("ckpt_*.pt")):
            cmd.append("--resume")
        jobs.append((cmd, runs / f"{config.stem}.train.log"))
    return jobs


def inference_settings(config: Path) -> dict:
    """The config's inference keys; `strength`, `match` and `match_high` it lacks come from the meta of its
    `init_from` (a warm start converts as the model it starts from unless told otherwise)."""
    settings = yaml.safe_load(config.read_text()) or {}
    init = settings.get("init_from")
    keys = ("strength", "match", "match_high")
    if init and not settings.get("score_only") and any(key not in settings for key in keys):
        import torch
        path = Path(init) if Path(init).is_absolute() else ROOT / init      # vc train runs in ROOT
        meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
        for key in keys:
            if key not in settings and meta.get(key) is not None:
                settings[key] = meta[key]
                print(f"  {config.stem}: {key} {meta[key]} from {path.name}'s meta")
    return settings


def eval_jobs(configs, runs: Path, data: str, pairs: int, draws: int = 1,
              systems: str = "converted,reconstruction"):
    """The `vc evaluate` command of each config, one per draw of pairs: draw 0 into val_eval (the
    table's), draw d > 0 (`--seed d`: other utterances of the same speaker pairs) into val_eval_seed{d}.
    ``systems`` "converted" leaves the reconstruction out (about half the time; no recon CER)."""
    jobs = []
    for config in configs:
        out = runs / config.stem
        settings = inference_settings(config)
        strength, adapt, vocoder = settings.get("strength"), settings.get("adapt"), settings.get("vocoder")
        fixed = score_only(config)
        if fixed:
            out.mkdir(parents=True, exist_ok=True)
            model, same = fixed, True
        else:
            last = sorted(out.glob("ckpt_*.pt"))[-1]
            model = out / "screen_model.pt"
            same = (out / "screen_model.txt").is_file() and (out / "screen_model.txt").read_text().strip() == last.name
            if not (same and model.is_file()):   # an export is not byte-identical (torch.save), so keep the scored one
                subprocess.run([*VC, "export", str(last), "-o", str(model)], check=True, cwd=ROOT,
                               stdout=subprocess.DEVNULL)
            (out / "screen_model.txt").write_text(last.name)
        cmd = [*VC, "evaluate", "--model", str(model), "--data", data, "--split", "val",
               "--max-pairs", str(pairs), "--systems", systems, "--threads", "1",
               "--no-progress"]
        if strength is not None:
            cmd += ["--strength", str(strength)]
        if adapt:
            cmd += ["--adapt", str(adapt)]
        if settings.get("match") is not None:
            cmd += ["--match", str(settings["match"])]
        if settings.get("match_high") is not None:
            cmd += ["--match-high", str(settings["match_high"])]
        if vocoder:
            cmd += ["--vocoder", str((config.parent / vocoder).resolve()) if vocoder.endswith(".pt") else vocoder]
        for draw in range(draws):
            folder = out / ("val_eval" if draw == 0 else f"val_eval_seed{draw}")
            if folder.exists() and not same:              # a new checkpoint: score afresh
                for f in folder.glob("*"):
                    if f.is_file():
                        f.unlink()
            jobs.append(([*cmd, "--out", str(folder), *(["--seed", str(draw)] if draw else [])],
                         runs / f"{config.stem}.eval{'' if draw == 0 else f'_seed{draw}'}.log"))
    return jobs


def row(config: Path, runs: Path) -> dict:
    out = runs / config.stem
    rep = json.loads((out / "val_eval" / "report.json").read_text())
    conv, recon = rep["systems"]["converted"], rep["systems"].get("reconstruction", {})
    ckpt = score_only(config) or out / (out / "screen_model.txt").read_text().strip()
    import torch
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]
    get = lambda d, k, scale=1.0: (None if d.get(k, {}).get("mean") is None  # noqa: E731
                                   else round(d[k]["mean"] * scale, 3 if scale == 1 else 1))
    unique = dict(zip(meta.get("average_of") or [], meta.get("steps") or []))   # an input given twice trained once
    steps = meta.get("step", sum(s or 0 for s in unique.values()) or None)    # an average: its inputs' steps
    return {"run": config.stem, "what": what_changed(config), "steps": steps,
            "minutes": round(meta.get("wall_seconds", 0) / 60, 1),
            "pairs": len(read_all_results(out / "val_eval")),
            "sim_tgt": get(conv, "sim_target"), "sim_src": get(conv, "sim_source"),
            "closer": get(conv, "target_closer", 100), "svar": get(conv, "svar", 100),
            "ecapa_sim_tgt": get(conv, "ecapa_sim_target"), "ecapa_sim_src": get(conv, "ecapa_sim_source"),
            "ecapa_closer": get(conv, "ecapa_target_closer", 100), "ecapa_svar": get(conv, "ecapa_svar", 100),
            "cer": get(conv, "cer", 100), "cer_capped": capped_cer(out / "val_eval"),
            "cer_recon": get(recon, "cer", 100),
            "content_spk_id": round(100 * rep["disentanglement"].get("content", float("nan")), 1)
            if isinstance(rep.get("disentanglement"), dict) and "content" in rep["disentanglement"] else None,
            "dnsmos": get(conv, "dnsmos"), "moonshine_cer_capped": capped_cer(out / "val_eval", "moonshine_cer")}


def capped_cer(report_dir: Path, metric: str = "cer") -> float | None:
    """Mean CER of the conversions with each pair's CER capped at 100 %: one hallucinated
    transcript (CER 300 %) otherwise moves a 40-pair mean by 5 points. ``metric``: ``cer``
    (Whisper tiny, a training loss) or ``moonshine_cer`` (Moonshine, which training never uses)."""
    cers = []
    for rec in read_all_results(report_dir).values():
        cer = rec.get("systems", {}).get("converted", {}).get(metric)
        if cer is not None:
            cers.append(min(1.0, cer))
    return round(100 * sum(cers) / len(cers), 1) if cers else None


def write_table(table: Path, new_rows: list[dict]):
    tsv = table.with_suffix(".tsv")
    rows = {}
    if tsv.is_file():
        with open(tsv, newline="") as f:
            rows = {r["run"]: r for r in csv.DictReader(f, delimiter="\t")}
        for r in rows.values():          # rows from before the pairs column: every one scored 40
            r["pairs"] = r.get("pairs") or 40
    rows.update({r["run"]: r for r in new_rows})
    table.parent.mkdir(parents=True, exist_ok=True)
    with open(tsv, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, delimiter="\t")
        w.writeheader()
        w.writerows(rows.values())
    head = ("run", "what changed", "steps", "min", "pairs", "sim tgt", "sim src", "closer %", "SVAR %",
            "ECAPA sim tgt", "ECAPA sim src", "ECAPA closer %", "ECAPA SVAR %", "CER %", "CER capped %",
            "recon CER %",
            "content spk-ID %", "DNSMOS", "Moonshine CER capped %")
    lines = ["# Screening on `val` (seeded ordered pairs of val speakers, HiFi-GAN)", "",
             "Made by `scripts/screen.py` (its docstring says how). Resemblyzer columns first, then the "
             "ECAPA-TDNN verifier that training never uses. CER is Whisper tiny's, which vc's word losses "
             "train against; the last column is Moonshine's, which training never uses (rows scored since "
             "round s53). SVAR thresholds are calibrated on real val "
             "utterances. `pairs`: how many of the 132 ordered pairs were scored (a seeded subset; "
             "the 40 are among all 132). With 40 pairs a share moves by about 8 points from noise alone.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("" if r.get(c) in (None, "None") else str(r[c]) for c in COLUMNS) + " |"
              for r in rows.values()]
    table.write_text("\n".join(lines) + "\n")
    print(f"wrote {table}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", type=Path)
    p.add_argument("--runs", type=Path, required=True, help="run folders (keep it outside the work tree)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--minutes", type=float, default=25, help="training wall-clock budget per run")
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--draws", type=int, default=1, help="draws of val pairs to score: 2 adds `--seed 1` "
                   "(other utterances) into val_eval_seed1, for compare_runs 'val_eval+val_eval_seed1'")
    p.add_argument("--systems", default="converted,reconstruction",
                   help="what to score: 'converted' alone takes about half the time (no reconstruction CER)")
    p.add_argument("--table", type=Path, default=ROOT / "reports" / "screening.md")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--table-only", action="store_true", help="rewrite the table from the runs' existing scores")
    args = p.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        write_table(args.table, [row(c, args.runs) for c in args.configs])
        return
    if not args.skip_train:
        print(f"training {len(args.configs)} runs, {args.minutes} min each", flush=True)
        run_all(train_jobs(args.configs, args.runs, args.data, args.minutes), args.parallel)
    if not args.skip_eval:
        print(f"scoring on {args.pairs} val pairs", flush=True)
        run_all(eval_jobs(args.configs, args.runs, args.data, args.pairs, args.draws, args.systems), args.parallel)
        write_table(args.table, [row(c, args.runs) for c in args.configs])


if __name__ == "__main__":
    main()
