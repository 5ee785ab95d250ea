"""scripts/holdout_speakers.py: the chosen train speakers leave `train` for `heldout`, each as two
halves of its utterance; every other row stays, and training on the derived manifest skips them."""
import csv

import soundfile as sf
from conftest import load_script, write_wav

from vc.data import find_utterances


def test_heldout_speakers_leave_train_as_two_halves(tmp_path):
    root = tmp_path / "data"
    rows = []
    plan = [("librispeech", "train", "f")] * 3 + [("librispeech", "train", "m")] * 3 + \
           [("librispeech", "dev", "f"), ("so762", "train", "m")]
    for i, (corpus, split, gender) in enumerate(plan):
        path = f"{corpus}/s{i}.wav"
        write_wav(root / path, 2.0 + 0.1 * i, seed=i)
        rows.append(dict(path=path, speaker=f"{corpus}-{i}", corpus=corpus, split=split, gender=gender, seconds=""))
    with open(root / "manifest.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), delimiter="\t")
        w.writeheader(), w.writerows(rows)

    assert load_script("holdout_speakers").main(["--data", str(root / "manifest.tsv"), "--out", str(tmp_path / "out"),
                                                 "--per-gender", "2"]) == 0
    derived = tmp_path / "out" / "manifest.tsv"
    held = find_utterances(derived, "heldout")
    train = find_utterances(derived, "train")
    held_speakers = {u.speaker for u in held}
    assert len(held_speakers) == 4 and len(held) == 8                          # 2 women, 2 men, two halves each
    assert held_speakers <= {f"librispeech-{i}" for i in range(6)}            # one-utterance train speakers only
    assert not held_speakers & {u.speaker for u in train}                      # training never sees them
    assert {u.speaker for u in train} | held_speakers == {f"librispeech-{i}" for i in range(6)} | {"so762-7"}
    assert len(find_utterances(derived, "dev")) == 1                           # other splits untouched
    for spk in held_speakers:
        i = int(spk.split("-")[1])
        whole, _ = sf.read(root / f"librispeech/s{i}.wav")
        halves = [sf.read(u.path)[0] for u in held if u.speaker == spk]
        assert sum(len(h) for h in halves) == len(whole)
