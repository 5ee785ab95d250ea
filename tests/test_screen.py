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
    table = tmp_path / "screening.md"
    screen.write_table(table, [row, screen.row(b, runs)], pairs=2)
    fake_run(runs, "c", tiny_checkpoint, [0.1, 0.1], 0.9)
    a2 = screen.row(a, runs) | {"sim_tgt": 0.8}
    screen.write_table(table, [a2], pairs=2)                          # replaces a's row, keeps b's
    lines = [ln for ln in table.read_text().splitlines() if ln.startswith("| a ") or ln.startswith("| b ")]
    assert len(lines) == 2 and "| 0.8 |" in lines[0] and "ECAPA SVAR %" in table.read_text()
    assert table.with_suffix(".tsv").is_file()
