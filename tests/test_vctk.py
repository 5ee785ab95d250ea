"""The VCTK recipe on small fixtures in both published layouts.

Fixtures copy the real corpora's shape (folders, file names, speaker-info.txt formats, known
gaps: p315 without transcripts, p280 without mic2 audio and absent from old 0.80 speaker-info
files, transcripts without audio, audio without transcripts, an unreadable file); the audio is
short synthetic sound, so tests check what is found and how it is split, never quality.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_wav
from vc import vctk
from vc.data import find_utterances

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "vctk"

# utterances 001-003 play the parallel sentences (the same text for every speaker)
PARALLEL_TEXT = {1: "Please call Stella.", 2: "Ask her to bring these things with her from the store.",
                 3: "Six spoons of fresh snow peas, five thick slabs of blue cheese."}
NUMBERS = (1, 2, 3, 30, 31)
INFO_080 = """ID  AGE  GENDER  ACCENTS  REGION  
225  23  F    English    Southern  England
226  22  M    English    Surrey
227  38  M    English    Cumbria
228  22  F    English    Southern  England
229  23  F    English    Southern  England
232  23  M    English    Southern  England
315  18  M    American  New  England 
362  29  F    American  
"""
INFO_092 = """ID  AGE  GENDER  ACCENTS  REGION COMMENTS 
p225  23  F    English    Southern  England
p226  22  M    English    Surrey
p227  38  M    English    Cumbria
p228  22  F    English    Southern  England
p229  23  F    English    Southern  England
p232  23  M    English    Southern  England
p280  25  F    Unknown  France (mic2 files unavailable)
p315  18  M    American  New  England (Text unavailable)
s5  22  F    British  Southern  England
"""
F0 = {"p225": 210, "p226": 110, "p227": 100, "p228": 220, "p229": 200, "p232": 120, "p280": 230,
      "p315": 105, "s5": 215}


def _text(spk: str, num: int) -> str:
    return PARALLEL_TEXT.get(num) or f"Sentence {num} of speaker {spk}."


def make_vctk_080(root: Path) -> Path:
    """VCTK-Corpus 0.80: wav48/pXXX/pXXX_NNN.wav. speaker-info lacks p280 (as some copies do)."""
    root = root / "VCTK-Corpus"
    for i, spk in enumerate(["p225", "p226", "p227", "p228", "p229", "p232", "p280", "p315"]):
        for num in NUMBERS:
            write_wav(root / "wav48" / spk / f"{spk}_{num:03d}.wav", 1.0, 16000, F0[spk], seed=i * 100 + num)
            if spk != "p315" and (spk, num) != ("p225", 31):            # p315: no txt/ at all
                t = root / "txt" / spk / f"{spk}_{num:03d}.txt"
                t.parent.mkdir(parents=True, exist_ok=True)
                t.write_text(_text(spk, num) + "\n")
    (root / "txt" / "p226" / "p226_032.txt").write_text("A transcript without audio.\n")
    (root / "wav48" / "p227" / "p227_030.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    (root / "speaker-info.txt").write_text(INFO_080)
    (root / "README").write_text("CSTR VCTK Corpus (Version 0.80)\n")
    return root


def make_vctk_092(root: Path) -> Path:
    """VCTK-Corpus-0.92: wav48_silence_trimmed/pXXX/pXXX_NNN_mic{1,2}.flac (zip unpacks flat)."""
    audio = root / "wav48_silence_trimmed"
    for i, spk in enumerate(["p225", "p226", "p227", "p228", "p229", "p232", "p280", "p315", "s5"]):
        for num in NUMBERS:
            for mic in ("mic1", "mic2"):
                if spk == "p280" and mic == "mic2":
                    continue
                write_wav(audio / spk / f"{spk}_{num:03d}_{mic}.flac", 1.0, 16000, F0[spk], seed=i * 100 + num)
            if spk != "p315" and (spk, num) != ("p229", 30):
                t = root / "txt" / spk / f"{spk}_{num:03d}.txt"
                t.parent.mkdir(parents=True, exist_ok=True)
                t.write_text(_text(spk, num) + "\n")
    (root / "txt" / "p232" / "p232_099.txt").write_text("No recording of this one.\n")
    (audio / "p228" / "p228_031_mic1.flac").write_bytes(b"fLaC truncated")   # mic2 of it is fine
    (audio / "log.txt").write_text("silence trimming log\n")
    (root / "speaker-info.txt").write_text(INFO_092)
    (root / "README.txt").write_text("CSTR VCTK Corpus (Version 0.92)\n")
    return root


@pytest.fixture(scope="module")
def corpus_080(tmp_path_factory) -> Path:
    return make_vctk_080(tmp_path_factory.mktemp("vctk080"))


@pytest.fixture(scope="module")
def corpus_092(tmp_path_factory) -> Path:
    return make_vctk_092(tmp_path_factory.mktemp("vctk092"))


def _found(rows) -> set[tuple[str, str]]:
    return {(r.speaker, r.utt_id) for r in rows}


def _expected(speakers, missing=()) -> set[tuple[str, str]]:
    return {(f"vctk-{s}", f"{s}_{n:03d}") for s in speakers for n in NUMBERS} - set(missing)


# -- prepare ----------------------------------------------------------------------------------

def test_speaker_info_both_formats(corpus_080, corpus_092):
    old = vctk.read_speaker_info(corpus_080 / "speaker-info.txt")
    new = vctk.read_speaker_info(corpus_092 / "speaker-info.txt")
    assert old["p225"] == {"gender": "f", "age": "23", "accent": "English", "region": "Southern England"}
    assert set(old) == {"p225", "p226", "p227", "p228", "p229", "p232", "p315", "p362"}
    assert new["p225"] == old["p225"]
    assert new["p280"] == {"gender": "f", "age": "25", "accent": "Unknown", "region": "France"}
    assert new["p315"]["gender"] == "m" and new["s5"]["gender"] == "f"


def test_prepare_080(corpus_080, capsys):
    rows = vctk.scan(corpus_080.parent)                       # the folder above works too
    speakers = ["p225", "p226", "p227", "p228", "p229", "p232", "p280", "p315"]
    assert _found(rows) == _expected(speakers, {("vctk-p227", "p227_030")})
    by_id = {r.utt_id: r for r in rows}
    assert by_id["p226_001"].text == "Please call Stella." and by_id["p226_001"].gender == "m"
    assert by_id["p225_031"].text == "" and by_id["p315_002"].text == ""
    assert by_id["p280_001"].gender == "" and by_id["p225_001"].age == "23"
    assert all(r.sample_rate == "16000" and float(r.seconds) == 1.0 and r.split == "unassigned" for r in rows)
    log = capsys.readouterr().out
    assert "p227_030.wav: unreadable or corrupt audio" in log
    assert "p362: in speaker-info.txt but no audio" in log
    assert "p280: not in speaker-info.txt" in log and "vctk-p315: 5 recording(s) without a transcript" in log
    assert "1 transcript(s) without audio" in log


@pytest.mark.parametrize("mic", ["mic1", "mic2"])
def test_prepare_092(corpus_092, mic, capsys):
    rows = vctk.scan(corpus_092, mic=mic)
    speakers = ["p225", "p226", "p227", "p228", "p229", "p232", "p315", "s5"] + (["p280"] if mic == "mic1" else [])
    assert _found(rows) == _expected(speakers, {("vctk-p228", "p228_031")} if mic == "mic1" else ())
    assert all(r.path.endswith(f"_{mic}.flac") for r in rows)
    by_id = {r.utt_id: r for r in rows}
    assert by_id["s5_002"].text == PARALLEL_TEXT[2] and by_id["s5_002"].gender == "f"
    assert by_id["p229_030"].text == "" and by_id["p315_001"].text == ""
    log = capsys.readouterr().out
    assert ("p280: in speaker-info.txt but no mic2 audio" in log) == (mic == "mic2")


def test_is_vctk_and_find_utterances(corpus_080, corpus_092, tmp_path):
    assert vctk.is_vctk(corpus_080) and vctk.is_vctk(corpus_092) and vctk.is_vctk(corpus_080.parent)
    write_wav(tmp_path / "speaker_a" / "x.wav", 1.0)
    assert not vctk.is_vctk(tmp_path) and not vctk.is_vctk(tmp_path / "nothing")
    utts = find_utterances(corpus_092)                        # vc.data reads a VCTK root directly
    assert {u.split for u in utts} == {"train", "val", "dev"}
    assert len(utts) == len(vctk.scan(corpus_092)) and all(u.speaker.startswith("vctk-") for u in utts)


def test_prepare_rejects_non_vctk(tmp_path):
    with pytest.raises(ValueError, match="not a VCTK corpus"):
        vctk.scan(tmp_path)
    r = subprocess.run([sys.executable, "-m", "vc", "vctk", "prepare", str(tmp_path), "-o", str(tmp_path / "m.tsv")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("vc vctk: error:") and len(r.stderr.strip().splitlines()) == 1


# -- split ------------------------------------------------------------------------------------

def test_committed_heldout_list_follows_its_rule():
    listed = vctk.read_heldout(RECIPE / "heldout_speakers.txt")
    assert listed == vctk.default_heldout()
    genders = {f"p{t[:-1]}": t[-1] for t in vctk.SPEAKERS_080.split()}
    assert len(genders) == 109 and len(set(listed)) == 20
    assert sorted(genders[s] for s in listed) == ["F"] * 10 + ["M"] * 10
    assert not set(listed) & set(vctk.NOT_HELD_OUT)
    for line in (RECIPE / "heldout_speakers.txt").read_text().splitlines():
        if not line.startswith("#"):
            spk, g = line.split()
            assert genders[spk] == g


def test_full_corpus_uses_the_committed_list(capsys):
    """On a corpus with every speaker (rows only, no audio needed) the split is the list itself."""
    rows = [vctk.Row(path=f"/vctk/wav48/p{t[:-1]}/p{t[:-1]}_{n:03d}.wav", speaker=f"vctk-p{t[:-1]}",
                     gender=t[-1].lower(), text="x") for t in vctk.SPEAKERS_080.split() for n in range(1, 31)]
    listed = vctk.default_heldout()
    held = vctk.heldout_for(rows, listed)
    assert held == listed and "FALLING BACK" not in capsys.readouterr().out
    rows = vctk.assign_splits(rows, held)
    dev = {r.speaker for r in rows if r.split == "dev"}
    assert dev == {f"vctk-{s}" for s in listed}
    val = [r for r in rows if r.split == "val"]
    assert len(val) == 3 * (109 - 20)                       # 10 % of 30 recordings per speaker


def test_split_is_deterministic_and_disjoint(corpus_092, capsys):
    rows = vctk.scan(corpus_092)
    listed = vctk.read_heldout(RECIPE / "heldout_speakers.txt")
    held = vctk.heldout_for(rows, listed)
    assert "FALLING BACK" in capsys.readouterr().out         # the fixture lacks most listed speakers
    assert held == vctk.heldout_for(list(reversed(rows)), listed)
    gender = {r.speaker: r.gender for r in rows}
    assert sorted(gender[f"vctk-{s}"] for s in held) == ["f", "m"]   # 9 speakers: 2 held out, balanced
    a = vctk.assign_splits(rows, held)
    b = vctk.assign_splits(list(reversed(rows)), held)
    assert {r.path: r.split for r in a} == {r.path: r.split for r in b}
    spk = {s: {r.speaker for r in a if r.split == s} for s in ("train", "val", "dev")}
    assert spk["dev"] == {f"vctk-{s}" for s in held}
    assert not spk["dev"] & (spk["train"] | spk["val"]) and spk["val"] <= spk["train"]
    assert all(sum(r.split == "val" for r in a if r.speaker == s) == 1 for s in spk["train"])
    # both microphones give the same split of the same utterances
    mic2 = vctk.assign_splits(vctk.scan(corpus_092, mic="mic2"), held)
    split1 = {r.utt_id: r.split for r in a}
    assert all(split1[r.utt_id] == r.split for r in mic2 if r.utt_id in split1)


def test_pairs_are_parallel_sentences(corpus_092):
    rows = vctk.scan(corpus_092)
    rows = vctk.assign_splits(rows, ["p225", "p228", "p232"])
    pairs = vctk.parallel_pairs(rows, per_pair=2)
    assert len(pairs) == 3 * 2 * 2
    by_path = {r.path: r for r in rows}
    for p in pairs:
        src, tgt, ref = by_path[p["source"]], by_path[p["target"]], by_path[p["reference"]]
        assert src.speaker != tgt.speaker == ref.speaker and ref.split == src.split == "dev"
        assert src.text == ref.text == p["text"] and src.number in vctk.PARALLEL
        assert tgt.number not in vctk.PARALLEL                 # the voice sample says other words
    assert pairs == vctk.parallel_pairs(list(reversed(rows)), per_pair=2)


# -- the recipe, end to end -------------------------------------------------------------------

TINY_CONFIG = """\
model: {channels: 32, content_dim: 4, speaker_channels: 32, speaker_dim: 16, classifier_channels: 32}
segment_frames: 32
batch_size: 2
steps: 3
lr_warmup: 1
adv_warmup: 1
adv_ramp: 2
log_every: 1
val_every: 2
ckpt_every: 2
sample_every: 0
threads: 1
"""


def _vc_env() -> dict:
    env = dict(os.environ, PYTHON=sys.executable, VC=f"{sys.executable} -m vc")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_recipe_end_to_end(corpus_092, tmp_path):
    """run.sh stages 1-4 and 6 (5 too when vc.evaluate exists), from another directory, then
    `vc convert --model` accepts the exported model."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    work = tmp_path / "work"
    has_eval = (REPO / "vc" / "evaluate").exists() or (REPO / "vc" / "evaluate.py").exists()
    stages = ["--stage", "1", "--stop-stage", "4"]
    cmd = ["bash", str(RECIPE / "run.sh"), "--vctk", str(corpus_092), "--out", str(work),
           "--config", str(config), "--device", "cpu", "--workers", "2", "--vocoder", "griffinlim"]
    r = subprocess.run(cmd + stages, capture_output=True, text=True, cwd=tmp_path, env=_vc_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for n in (1, 2, 3, 4):
        assert f"== stage {n}:" in r.stdout and "done in" in r.stdout
    with open(work / "manifest.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == list(vctk.COLUMNS) and {row["split"] for row in rows} == {"train", "val", "dev"}
    assert any((work / "exp" / "cache").rglob("*.npy"))
    assert sorted(p.name for p in (work / "exp").glob("ckpt_*.pt")) == ["ckpt_00000002.pt", "ckpt_00000003.pt"]

    # stage 4 again resumes (the run is complete: nothing more to do), then export (and evaluate)
    last = ["--stage", "4", "--stop-stage", "6"] if has_eval else ["--stage", "4", "--stop-stage", "4"]
    r = subprocess.run(cmd + last, capture_output=True, text=True, cwd=tmp_path, env=_vc_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from" in r.stdout
    if has_eval:
        with open(work / "pairs.tsv", newline="") as f:
            pairs = list(csv.DictReader(f, delimiter="\t"))
        assert len(pairs) == 2 and all(p["reference"] and p["text"] for p in pairs)   # 2 dev speakers
        assert "MCD" in (work / "eval" / "report.md").read_text()
    else:
        r = subprocess.run(cmd + ["--stage", "6", "--stop-stage", "6"], capture_output=True, text=True,
                           cwd=tmp_path, env=_vc_env())
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    model = work / "model.pt"
    assert model.is_file()
    src, tgt = sorted((corpus_092 / "wav48_silence_trimmed" / "p226").glob("*_mic1.flac"))[:2]
    out = tmp_path / "converted.wav"
    r = subprocess.run([sys.executable, "-m", "vc", "convert", str(src), str(tgt), "-o", str(out), "--model",
                        str(model), "--vocoder", "griffinlim"], capture_output=True, text=True, env=_vc_env())
    assert r.returncode == 0 and out.stat().st_size > 1000, r.stderr


def test_recipe_rejects_bad_arguments(tmp_path):
    r = subprocess.run(["bash", str(RECIPE / "run.sh"), "--out", str(tmp_path / "w")],
                       capture_output=True, text=True, env=_vc_env())
    assert r.returncode == 2 and "--vctk CORPUS_ROOT is required" in r.stderr
    r = subprocess.run(["bash", str(RECIPE / "run.sh"), "--vctk", str(tmp_path / "none"), "--out",
                        str(tmp_path / "w")], capture_output=True, text=True, env=_vc_env())
    assert r.returncode == 2 and "no such folder" in r.stderr


@pytest.mark.parametrize("extra, words", [
    (["--vctk", "/nonexistent/vctk"], "no such folder"),
    (["--vctk", "{tmp}", "--stage", "x"], "--stage must be a whole number"),
    (["--vctk", "{tmp}", "--stage", "3", "--stop-stage", "2"], "stages run from 1 to 6"),
    (["--vctk", "{tmp}", "--mic", "mic3"], "--mic must be mic1 or mic2"),
    (["--vctk", "{tmp}", "--device", "foo"], "unknown device 'foo'"),
    (["--vctk", "{tmp}", "--config", "/nonexistent.yaml"], "no such config"),
])
def test_recipe_creates_nothing_before_its_arguments_are_checked(tmp_path, extra, words):
    work = tmp_path / "work" / "vctk"
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    r = subprocess.run(["bash", str(RECIPE / "run.sh"), "--out", str(work), *args],
                       capture_output=True, text=True, env=_vc_env(), cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "work").exists()
