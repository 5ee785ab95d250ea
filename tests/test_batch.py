"""vc batch: tables and folders, bad rows, resuming, kills, shards, workers (tiny model, Griffin-Lim)."""
from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import speechlike, write_wav
from vc.cli import main
from vc.jobs import TEMP_FILE, parse_shard, plan_table, shard


def vc_batch(ckpt, *args, workers=1) -> int:
    return main(["batch", *map(str, args), "--model", str(ckpt), "--vocoder", "griffinlim",
                 "--workers", str(workers), "--threads", "1"])   # 1 thread: fast on a busy machine


def report(out_dir: Path, name="batch_report.tsv") -> dict[int, dict]:
    with open(out_dir / name, newline="", encoding="utf-8") as f:
        return {int(r["row"]): r for r in csv.DictReader(f, delimiter="\t")}


def outputs(out_dir: Path) -> dict[str, int]:
    """Relative path -> st_mtime_ns of every audio output (temporary files are not outputs)."""
    return {p.relative_to(out_dir).as_posix(): p.stat().st_mtime_ns
            for p in sorted(out_dir.rglob("*")) if p.suffix in (".wav", ".flac") and p.is_file()}


def temp_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.rglob("*") if TEMP_FILE.match(p.name)]


def write_table(path: Path, rows, header=("source", "target", "output"), sep="\t") -> Path:
    path.write_text(sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in rows))
    return path


@pytest.fixture
def mixed(tmp_path):
    """A table of 3 good rows (two sources share a stem) and 6 bad ones, paths relative to it."""
    d = tmp_path / "data"
    write_wav(d / "src.wav", 1.5, seed=1)
    write_wav(d / "other" / "src.wav", 1.2, 44100, seed=2)
    write_wav(d / "talk.flac", 1.0, seed=3)
    write_wav(d / "voice.wav", 1.5, 22050, f0=220, seed=4, channels=2)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 20)
    sf.write(str(d / "silent.wav"), np.zeros(16000, np.float32), 16000)
    write_wav(d / "short.wav", 0.2, seed=5)
    rows = [("src.wav", "voice.wav", ""),                 # 1 good
            ("other/src.wav", "voice.wav", ""),           # 2 good, same stem as row 1
            ("talk.flac", "voice.wav", "named/talk.wav"),  # 3 good, explicit output
            ("corrupt.wav", "voice.wav", ""),             # 4 corrupt
            ("missing.wav", "voice.wav", ""),             # 5 missing
            ("silent.wav", "voice.wav", ""),              # 6 silent
            ("short.wav", "voice.wav", ""),               # 7 too short
            ("src.wav", "voice.wav", "../../escaped.wav"),  # 8 escapes OUT_DIR
            ("src.wav", "voice.wav", str(tmp_path / "abs.wav"))]  # 9 absolute
    return write_table(d / "pairs.tsv", rows), tmp_path / "out"


def test_table_good_rows_done_bad_rows_reported(tiny_checkpoint, mixed, capsys):
    table, out = mixed
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 1
    rep = report(out)
    assert [rep[i]["status"] for i in range(1, 10)] == ["done"] * 3 + ["failed"] * 6
    reasons = {i: rep[i]["reason"] for i in range(4, 10)}
    assert "corrupt.wav: unreadable or corrupt" in reasons[4]
    assert "missing.wav: file not found" in reasons[5]
    assert "silent.wav: all silence" in reasons[6]
    assert "short.wav: too short" in reasons[7]
    assert "outside OUT_DIR" in reasons[8] and "absolute" in reasons[9]
    files = outputs(out)
    assert len(files) == 3 and "named/talk.wav" in files
    assert len({f for f in files if f.startswith("src__in_voice_of__voice__")}) == 2   # same stem, 2 names
    for name in files:
        wav, sr = sf.read(out / name)
        assert sr == 22050 and wav.ndim == 1 and len(wav) > 0.5 * sr and np.abs(wav).max() > 0.01
    assert not (table.parent.parent / "escaped.wav").exists() and not (out.parent / "abs.wav").exists()
    printed = capsys.readouterr().out
    assert "3 done, 0 skipped, 6 failed" in printed and "row 4: " in printed


def test_rerun_converts_nothing_new_then_redoes_a_deleted_output(tiny_checkpoint, mixed):
    table, out = mixed
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 1
    first = outputs(out)
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 1          # bad rows still fail
    assert outputs(out) == first                                      # nothing rewritten
    assert [r["status"] for r in report(out).values()].count("skipped") == 3
    gone = sorted(first)[0]
    (out / gone).unlink()
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 1
    again = outputs(out)
    assert set(again) == set(first)
    assert [f for f in first if again[f] != first[f]] == [gone]      # only that one was redone
    assert [r["status"] for r in report(out).values()].count("done") == 1


def test_overwrite_and_dry_run(tiny_checkpoint, mixed, capsys):
    table, out = mixed
    assert vc_batch(tiny_checkpoint, table, "-o", out, "--dry-run") == 1    # 6 rows cannot be done
    assert not out.exists()                                                 # nothing written
    assert "would convert 6" in capsys.readouterr().out    # rows 1-3 + corrupt/silent/short (found while converting)
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 1
    first = outputs(out)
    assert vc_batch(tiny_checkpoint, table, "-o", out, "--overwrite") == 1
    assert all(outputs(out)[f] != first[f] for f in first)


def test_kill_midway_leaves_no_partial_output_and_rerun_completes(tiny_checkpoint, tmp_path):
    src = [write_wav(tmp_path / "in" / f"s{i:02d}.wav", 1.0, seed=i) for i in range(20)]
    write_wav(tmp_path / "voice.wav", 1.5, f0=200, seed=99)
    table = write_table(tmp_path / "pairs.csv", [(str(s), str(tmp_path / "voice.wav")) for s in src],
                        header=("source", "target"), sep=",")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vc", "batch", str(table), "-o", str(out), "--model", str(tiny_checkpoint),
           "--vocoder", "griffinlim", "--workers", "1", "--threads", "1"]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    while not (out.exists() and outputs(out)):
        assert proc.poll() is None, f"batch ended before any output: {log.read_text()[-2000:]}"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no output after 300 s")
        time.sleep(0.01)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running, "the batch finished before it could be killed"
    done = outputs(out)
    assert 1 <= len(done) < 20
    for name in done:                                  # every output under OUT_DIR is whole
        assert len(sf.read(out / name)[0]) > 0
    assert not (out / "batch_report.tsv").exists()

    assert vc_batch(tiny_checkpoint, table, "-o", out) == 0
    rep = report(out)
    assert sum(r["status"] == "skipped" for r in rep.values()) == len(done)
    assert sum(r["status"] == "done" for r in rep.values()) == 20 - len(done)
    assert len(outputs(out)) == 20 and temp_files(out) == []
    for name in outputs(out):
        assert len(sf.read(out / name)[0]) > 0


def test_stray_temp_file_is_not_an_output_and_is_removed(tiny_checkpoint, tmp_path, capsys):
    write_wav(tmp_path / "a.wav", 1.0, seed=1)
    write_wav(tmp_path / "b.wav", 1.0, f0=200, seed=2)
    table = write_table(tmp_path / "t.tsv", [("a.wav", "b.wav", "x/ab.wav")])
    out = tmp_path / "out"
    stray = out / "x" / ".ab.wav.k3j_9zqa.part"          # what a kill during save_audio leaves
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"RIFF half a file")
    other = out / "x" / ".unrelated.wav.abcdefgh.part"   # another shard's file in progress: kept
    other.write_bytes(b"RIFF")
    assert vc_batch(tiny_checkpoint, table, "-o", out, "--dry-run") == 0
    assert "convert" in capsys.readouterr().out           # the temp file does not count as done
    assert vc_batch(tiny_checkpoint, table, "-o", out) == 0
    assert report(out)[1]["status"] == "done"
    assert not stray.exists() and other.exists()
    assert "removed 1 temporary" in capsys.readouterr().out


def test_shards_cover_every_row_exactly_once(tiny_checkpoint, tmp_path):
    for i in range(4):
        write_wav(tmp_path / f"s{i}.wav", 1.0, seed=i)
    write_wav(tmp_path / "v1.wav", 1.0, f0=200, seed=10)
    write_wav(tmp_path / "v2.wav", 1.0, f0=250, seed=11)
    rows = [(f"s{i}.wav", f"v{v}.wav") for i in range(4) for v in (1, 2)] + [("nope.wav", "v1.wav")]
    table = write_table(tmp_path / "t.csv", rows, header=("source", "target"), sep=",")
    out = tmp_path / "out"
    seen = []
    for i in (1, 2, 3):
        status = vc_batch(tiny_checkpoint, table, "-o", out, "--shard", f"{i}/3")
        rep = report(out, f"batch_report.shard-{i}-of-3.tsv")
        assert status == (1 if 9 in rep else 0)           # row 9 (missing file) fails in its shard only
        seen += list(rep)
    assert sorted(seen) == list(range(1, 10))
    assert len(outputs(out)) == 8


def test_shard_selection_is_a_partition():
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (1, 1)
    rows = list(range(100))
    parts = [shard(rows, i, 7) for i in range(1, 8)]
    assert sorted(sum(parts, [])) == rows and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_folder_mode_mirrors_a_nested_tree(tiny_checkpoint, tmp_path):
    src = tmp_path / "corpus"
    for i, rel in enumerate(("a.wav", "x/b.flac", "x/y/c.wav", "x/y/z/d.ogg")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(src / rel), speechlike(1.0, seed=i), 16000)
    (src / "x" / "notes.txt").write_text("not audio")
    voice = tmp_path / "voice"
    write_wav(voice / "one.wav", 1.0, f0=200, seed=7)
    write_wav(voice / "two.wav", 1.0, f0=210, seed=8)
    out = src / "converted"                               # inside the sources: never taken as input
    args = ["--sources", src, "--target", voice / "one.wav", "--target", voice / "two.wav", "-o", out,
            "--format", "flac", "--sample-rate", "16000"]
    assert vc_batch(tiny_checkpoint, *args) == 0
    assert set(outputs(out)) == {"a.flac", "x/b.flac", "x/y/c.flac", "x/y/z/d.flac"}
    assert sf.info(str(out / "x/y/c.flac")).samplerate == 16000
    assert vc_batch(tiny_checkpoint, *args) == 0          # the outputs are not new sources
    assert all(r["status"] == "skipped" for r in report(out).values()) and len(report(out)) == 4


def test_each_voice_is_embedded_once(tiny_checkpoint, tmp_path, monkeypatch):
    from vc.convert import Converter
    calls = []
    real = Converter.target

    def counting(self, *clips):
        calls.append(tuple(Path(c).name for c in clips))
        return real(self, *clips)

    monkeypatch.setattr(Converter, "target", counting)
    for i in range(3):
        write_wav(tmp_path / f"s{i}.wav", 1.0, seed=i)
    write_wav(tmp_path / "v.wav", 1.0, f0=200, seed=10)
    write_wav(tmp_path / "spk" / "c1.wav", 1.0, f0=230, seed=11)
    write_wav(tmp_path / "spk" / "c2.wav", 1.0, f0=240, seed=12)
    rows = [(f"s{i}.wav", t) for t in ("v.wav", "spk", "s0.wav;v.wav") for i in range(3)]
    table = write_table(tmp_path / "t.csv", rows, header=("source", "target"), sep=",")
    assert vc_batch(tiny_checkpoint, table, "-o", tmp_path / "out") == 0
    assert len(calls) == 3                               # 9 rows, 3 voices
    assert sorted(calls) == [("c1.wav", "c2.wav"), ("s0.wav", "v.wav"), ("v.wav",)]
    assert len(outputs(tmp_path / "out")) == 9           # 'spk' and 's0+1' name the voices


def test_two_workers_match_one(tiny_checkpoint, tmp_path):
    for i in range(3):
        write_wav(tmp_path / f"s{i}.wav", 1.0, seed=i)
    write_wav(tmp_path / "v.wav", 1.0, f0=200, seed=10)
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    rows = [(f"s{i}.wav", "v.wav") for i in range(3)] + [("s0.wav", "bad.wav")]
    table = write_table(tmp_path / "t.csv", rows, header=("source", "target"), sep=",")
    assert vc_batch(tiny_checkpoint, table, "-o", tmp_path / "one", workers=1) == 1
    assert vc_batch(tiny_checkpoint, table, "-o", tmp_path / "two", workers=2) == 1
    assert "target" in report(tmp_path / "two")[4]["reason"] and "bad.wav" in report(tmp_path / "two")[4]["reason"]
    one, two = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert set(one) == set(two) and len(one) == 3
    for name in one:
        a, b = sf.read(tmp_path / "one" / name)[0], sf.read(tmp_path / "two" / name)[0]
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-2


def test_default_names_and_conflicts(tmp_path):
    tree = tmp_path / "one"
    for rel in ("a/x.wav", "b/x.wav", "y.wav", "t1/v.wav", "t2/v.wav"):
        write_wav(tree / rel, 1.0)
    rows = [("a/x.wav", "t1/v.wav", ""), ("b/x.wav", "t1/v.wav", ""), ("a/x.wav", "t2/v.wav", ""),
            ("y.wav", "t1/v.wav", ""), ("y.wav", "t1/v.wav", ""),          # the same row twice
            ("a/x.wav", "t1/v.wav", "same.wav"), ("b/x.wav", "t1/v.wav", "same.wav")]
    jobs = plan_table(write_table(tree / "t.tsv", rows), tmp_path / "out")
    names = [j.output.name for j in jobs]
    assert len(set(names[:3])) == 3 and all(n.startswith("x__in_voice_of__v__") for n in names[:3])
    assert names[3] == names[4] == "y__in_voice_of__v.wav"
    assert jobs[4].status == "skipped" and "row 4" in jobs[4].reason
    assert jobs[5].status == "todo" and jobs[6].status == "failed" and "row 6" in jobs[6].reason
    moved = shutil.copytree(tree, tmp_path / "elsewhere" / "two")     # names do not depend on where
    assert [j.output.name for j in plan_table(moved / "t.tsv", tmp_path / "out2")] == names


def test_output_through_a_symlink_out_of_out_dir_is_refused(tmp_path):
    write_wav(tmp_path / "a.wav", 1.0)
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    jobs = plan_table(write_table(tmp_path / "t.tsv", [("a.wav", "a.wav", "link/x.wav"),
                                                       ("a.wav", "a.wav", "sub/../ok.wav")]), tmp_path / "out")
    assert jobs[0].status == "failed" and "outside OUT_DIR" in jobs[0].reason
    assert jobs[1].status == "todo" and jobs[1].output == (tmp_path / "out" / "ok.wav").resolve()


@pytest.mark.parametrize("case", ["missing table", "bad header", "bad shard", "shard 0", "shard 4/3",
                                  "no model", "table and sources", "sources without target", "workers 0"])
def test_wrong_commands_exit_2(case, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    write_wav(tmp_path / "a.wav", 1.0)
    good = write_table(tmp_path / "good.csv", [("a.wav", "a.wav")], header=("source", "target"), sep=",")
    bad = write_table(tmp_path / "bad.csv", [("a.wav", "a.wav")], header=("src", "tgt"), sep=",")
    out = tmp_path / "out"
    model = ["--model", str(tiny_checkpoint)]
    argv = {"missing table": [tmp_path / "nope.tsv", "-o", out, *model],
            "bad header": [bad, "-o", out, *model],
            "bad shard": [good, "-o", out, "--shard", "two/3", *model],
            "shard 0": [good, "-o", out, "--shard", "0/3", *model],
            "shard 4/3": [good, "-o", out, "--shard", "4/3", *model],
            "no model": [good, "-o", out],
            "table and sources": [good, "--sources", tmp_path, "--target", tmp_path / "a.wav", "-o", out, *model],
            "sources without target": ["--sources", tmp_path, "-o", out, *model],
            "workers 0": [good, "-o", out, "--workers", "0", *model]}[case]
    monkeypatch.setattr("vc.convert.DEFAULT_MODEL", tmp_path / "not_installed.pt")
    assert main(["batch", *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vc batch: error: "), err
    assert not out.exists()
