"""scripts/seen_speaker_pairs.py: train speakers only, each utterance cut into a reference half
and a source half that do not overlap, pairs of different speakers."""
import csv

import soundfile as sf
from conftest import load_script, write_wav


def test_halves_of_train_speakers_make_the_pairs(tmp_path):
    root = tmp_path / "data"
    rows = []
    for i, (split, gender) in enumerate([("train", "f")] * 3 + [("train", "m")] * 3 + [("dev", "f"), ("dev", "m")]):
        path = f"librispeech/s{i}.wav"
        write_wav(root / path, 2.0 + 0.1 * i, seed=i)
        rows.append(dict(path=path, speaker=f"libri-{i}", corpus="librispeech", split=split, gender=gender))
    with open(root / "manifest.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "speaker", "corpus", "split", "gender"], delimiter="\t")
        w.writeheader(), w.writerows(rows)

    script = load_script("seen_speaker_pairs")
    assert script.main(["--data", str(root / "manifest.tsv"), "--out", str(tmp_path / "out"),
                        "--per-gender", "2", "--pairs", "6"]) == 0
    with open(tmp_path / "out" / "pairs.tsv", newline="") as f:
        pairs = list(csv.DictReader(f, delimiter="\t"))
    assert len(pairs) == 6
    speakers = {p["source_speaker"] for p in pairs} | {p["target_speaker"] for p in pairs}
    assert speakers <= {f"libri-{i}" for i in range(6)}            # train speakers only
    for p in pairs:
        assert p["source_speaker"] != p["target_speaker"]
        assert p["source"].endswith(f"{p['source_speaker']}_b.wav")   # the source says the second half
        assert p["target"].endswith(f"{p['target_speaker']}_a.wav")   # the reference is the first half
        i = int(p["source_speaker"].split("-")[1])
        whole, _ = sf.read(root / f"librispeech/s{i}.wav")
        first, _ = sf.read(tmp_path / "out" / "clips" / f"libri-{i}_a.wav")
        second, _ = sf.read(p["source"])
        assert len(first) + len(second) == len(whole)
