"""scripts/screen.py: a run's row comes from its scores, CER is capped per pair, rows are replaced
by run name, and the table renders both verifiers."""
import json
import shutil
from pathlib import Path

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def screen():
    return load_script("screen")


def fake_run(runs: Path, name: str, ckpt: Path, cers, sim_target: float):
    out = runs / name
    (out / "val_eval").mkdir(parents=True)
    shutil.copy(ckpt, out / "ckpt_00000010.pt")
    (out / "screen_model.txt").write_text("ckpt_00000010.pt")
    (runs / f"{name}.yaml").write_text(f"# what: {name} changed\nsteps: 10\n")
    stat = lambda m: {"mean": m, "ci95": None, "n": 2}  # noqa: E731
    conv = {"sim_target": stat(sim_target), "sim_source": stat(0.5), "target_closer": stat(1.0),
            "svar": stat(0.5), "ecapa_sim_target": stat(0.3), "ecapa_sim_source": stat(0.1),
            "ecapa_target_closer": stat(0.75), "ecapa_svar": stat(0.0), "cer": stat(sum(cers) / len(cers)),
            "dnsmos": stat(2.5)}
    report = {"systems": {"converted": conv, "reconstruction": {"cer": stat(0.4)}},
              "disentanglement": {"content": 0.25}}
    (out / "val_eval" / "report.json").write_text(json.dumps(report))
    (out / "val_eval" / "results.jsonl").write_text(
        "\n".join(json.dumps({"key": str(i), "systems": {"converted": {"cer": c}}}) for i, c in enumerate(cers)) + "\n")
    return runs / f"{name}.yaml"


def test_rows_and_table(screen, tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    a = fake_run(runs, "a", tiny_checkpoint, [0.5, 3.0], 0.7)
    b = fake_run(runs, "b", tiny_checkpoint, [0.2, 0.4], 0.6)
    row = screen.row(a, runs)
    assert row["what"] == "a changed" and row["sim_tgt"] == 0.7 and row["ecapa_closer"] == 75.0
    assert row["cer"] == 175.0 and row["cer_capped"] == 75.0          # the hallucination counts as 100 %
    assert row["cer_recon"] == 40.0 and row["content_spk_id"] == 25.0
    assert row["pairs"] == 2                                           # what was scored, not what was asked
    table = tmp_path / "screening.md"
    screen.write_table(table, [row, screen.row(b, runs)])
    fake_run(runs, "c", tiny_checkpoint, [0.1, 0.1], 0.9)
    a2 = screen.row(a, runs) | {"sim_tgt": 0.8}
    screen.write_table(table, [a2])                          # replaces a's row, keeps b's
    lines = [ln for ln in table.read_text().splitlines() if ln.startswith("| a ") or ln.startswith("| b ")]
    assert len(lines) == 2 and "| 0.8 |" in lines[0] and "ECAPA SVAR %" in table.read_text()
    assert table.with_suffix(".tsv").is_file()
    # a table from before the pairs column: its rows were all scored on 40 pairs
    tsv = table.with_suffix(".tsv")
    head, *body = tsv.read_text().splitlines()
    drop = head.split("\t").index("pairs")
    tsv.write_text("\n".join("\t".join(c for i, c in enumerate(ln.split("\t")) if i != drop)
                             for ln in (head, *body)) + "\n")
    screen.write_table(table, [screen.row(b, runs)])
    rows = {ln.split(" | ")[0]: ln.split(" | ") for ln in table.read_text().splitlines() if ln.startswith("| ")}
    assert rows["| a"][4] == "40" and rows["| b"][4] == "2"


def test_pairs_scored_in_shards_count_once(screen, tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    a = fake_run(runs, "a", tiny_checkpoint, [0.5, 3.0], 0.7)
    ev = runs / "a" / "val_eval"
    lines = (ev / "results.jsonl").read_text().splitlines()
    (ev / "results.jsonl").unlink()
    (ev / "results.shard-0-of-2.jsonl").write_text(lines[0] + "\n")
    (ev / "results.shard-1-of-2.jsonl").write_text(lines[1] + "\n" + lines[0] + "\n")   # a repeat counts once
    row = screen.row(a, runs)
    assert row["pairs"] == 2 and row["cer_capped"] == 75.0


def test_scores_are_kept_for_the_same_checkpoint_and_dropped_for_a_new_one(screen, tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    a = fake_run(runs, "a", tiny_checkpoint, [0.5, 0.5], 0.7)
    scores = runs / "a" / "val_eval" / "results.jsonl"
    scores_text = scores.read_text()
    (runs / "a" / "screen_model.txt").unlink()                             # never scored: export afresh
    model = runs / "a" / "screen_model.pt"
    (cmd, _), = screen.eval_jobs([a], runs, "manifest.tsv", 40)
    scored = model.read_bytes()
    (runs / "a" / "val_eval" / "results.jsonl").write_text(scores_text)
    (cmd, _), = screen.eval_jobs([a], runs, "manifest.tsv", 132)
    assert scores.is_file() and cmd[cmd.index("--max-pairs") + 1] == "132"   # only the new pairs get scored
    assert model.read_bytes() == scored      # the very file scored (evaluate refuses another model's scores)
    shutil.copy(tiny_checkpoint, runs / "a" / "ckpt_00000020.pt")
    screen.eval_jobs([a], runs, "manifest.tsv", 132)
    assert not scores.exists()                                             # another checkpoint: afresh
    assert (runs / "a" / "screen_model.txt").read_text() == "ckpt_00000020.pt"


def test_an_inference_only_config_is_scored_as_it_is_with_its_strength(screen, tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    config = tmp_path / "v_s15.yaml"
    shutil.copy(tiny_checkpoint, tmp_path / "model.pt")
    config.write_text("# what: the model as it is, strength 1.5\nscore_only: model.pt\nstrength: 1.5\nadapt: 30\n"
                      "vocoder: tuned.pt\nmatch: 0.25\nmatch_high: 0.5\n")
    assert screen.train_jobs([config], runs, "manifest.tsv", 10) == []          # nothing to train
    (cmd, _), = screen.eval_jobs([config], runs, "manifest.tsv", 40)
    assert cmd[cmd.index("--model") + 1] == str((tmp_path / "model.pt").resolve())
    assert cmd[cmd.index("--strength") + 1] == "1.5" and cmd[cmd.index("--adapt") + 1] == "30"
    assert cmd[cmd.index("--vocoder") + 1] == str((tmp_path / "tuned.pt").resolve())   # beside the config
    assert cmd[cmd.index("--match") + 1] == "0.25" and cmd[cmd.index("--match-high") + 1] == "0.5"
    assert not (runs / "v_s15" / "screen_model.pt").exists()                    # no export of a copy
    first, second = screen.eval_jobs([config], runs, "manifest.tsv", 40, draws=2)
    assert first[0] == cmd and "--seed" not in cmd                              # draw 0: as before
    assert second[0][second[0].index("--out") + 1] == str(runs / "v_s15" / "val_eval_seed1")
    assert second[0][second[0].index("--seed") + 1] == "1" and second[1] != first[1]   # its own log
    assert cmd[cmd.index("--systems") + 1] == "converted,reconstruction"
    (quick, _), = screen.eval_jobs([config], runs, "manifest.tsv", 40, systems="converted")
    assert quick[quick.index("--systems") + 1] == "converted"                  # the conversions alone
    trained = tmp_path / "t.yaml"
    trained.write_text("steps: 10\nstrength: 2.0\nadapt: 30\nvocoder: griffinlim\nmatch: 0.5\nmatch_high: 0.5\n")
    (cmd, _), = screen.train_jobs([trained], runs, "manifest.tsv", 10)
    assert "strength" not in (runs / "t.config.yaml").read_text()               # never a training key
    assert "adapt" not in (runs / "t.config.yaml").read_text()
    assert "vocoder" not in (runs / "t.config.yaml").read_text()
    assert "match" not in (runs / "t.config.yaml").read_text()


def test_a_fine_tune_is_scored_with_the_strength_and_match_of_the_model_it_starts_from(screen, tmp_path, tiny_checkpoint):
    from vc.checkpoint import export_checkpoint
    start = export_checkpoint(tiny_checkpoint, tmp_path / "start.pt",
                              meta={"strength": 1.25, "match": 0.25, "match_high": 0.5})
    runs = tmp_path / "runs"
    for name, extra in (("plain", ""), ("own", "strength: 2.0\nmatch: 0\n")):
        out = runs / name
        out.mkdir(parents=True)
        shutil.copy(tiny_checkpoint, out / "ckpt_00000010.pt")
        (tmp_path / f"{name}.yaml").write_text(f"steps: 10\ninit_from: {start}\n{extra}")
    (plain, _), (own, _) = screen.eval_jobs([tmp_path / "plain.yaml", tmp_path / "own.yaml"], runs, "m.tsv", 40)
    assert plain[plain.index("--strength") + 1] == "1.25" and plain[plain.index("--match") + 1] == "0.25"
    assert own[own.index("--strength") + 1] == "2.0" and own[own.index("--match") + 1] == "0"   # the config wins
    assert plain[plain.index("--match-high") + 1] == "0.5" == own[own.index("--match-high") + 1]
