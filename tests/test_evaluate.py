"""vc evaluate: metrics on known cases, pairs, probes, and a resumed run equal to an uninterrupted one.

The scorers (Resemblyzer, ECAPA-TDNN, Whisper tiny, DNSMOS) are the real ones, loaded once per process;
the model is the tiny random one with Griffin-Lim, so the run tests check behaviour, not quality.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("resemblyzer")
pytest.importorskip("faster_whisper")
pytest.importorskip("speechmos")

from conftest import SHARED_DATA  # noqa: E402

from vc.audio import load_audio  # noqa: E402
from vc.cli import main as cli  # noqa: E402
from vc.evaluate import asr, ecapa, moonshine, pairs, probes, quality, report, runner, speaker  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As `vc evaluate` runs by default (the scorers load with the thread count of the moment)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load16(path) -> np.ndarray:
    return load_audio(path, 16000)


# -- speaker similarity and threshold ---------------------------------------------------------------

def test_identical_audio_similarity_is_one(example_clips):
    wav = load16(example_clips[0])
    assert speaker.cosine(speaker.embed(wav), speaker.embed(wav.copy())) == pytest.approx(1.0, abs=1e-5)


def test_eer_threshold_on_synthetic_scores():
    # overlapping uniform scores: FAR = FRR = 1/6 at t = 0.5
    same, diff = np.linspace(0.4, 1.0, 6001), np.linspace(0.0, 0.6, 6001)
    eer, t = speaker.eer_threshold(same, diff)
    assert eer == pytest.approx(1 / 6, abs=1e-3) and t == pytest.approx(0.5, abs=1e-3)
    # Gaussians 0.8 / 0.5, sd 0.05: the crossing is midway, EER = Phi(-3) = 0.00135
    rng = np.random.default_rng(0)
    eer, t = speaker.eer_threshold(rng.normal(0.8, 0.05, 200000), rng.normal(0.5, 0.05, 200000))
    assert t == pytest.approx(0.65, abs=2e-3) and eer == pytest.approx(0.00135, abs=3e-4)
    # separable lists: no error, threshold midway between them
    assert speaker.eer_threshold([0.7, 0.9], [0.1, 0.3]) == pytest.approx((0.0, 0.5))
    with pytest.raises(ValueError):
        speaker.eer_threshold([0.5], [])


def test_calibrate_counts_trials():
    e = np.eye(4)[[0, 0, 1, 1, 2]] + 0.01
    cal = speaker.calibrate(e, ["a", "a", "b", "b", "c"])
    assert (cal["n_same"], cal["n_different"], cal["n_speakers"]) == (2, 8, 3)
    assert 0.1 < cal["threshold"] < 0.99 and cal["eer"] == 0.0
    with pytest.raises(ValueError, match="same-speaker"):
        speaker.calibrate(np.eye(3), ["a", "b", "c"])


def halves(wav):
    n = wav.size // 2
    return wav[:n], wav[n:]


def test_different_speakers_score_below_the_threshold(example_clips):
    """Threshold from same-speaker (two halves of a clip) and different-speaker trials; whole clips
    of different speakers score below it on average, and each half is closer to its other half."""
    wavs = [load16(p) for p in example_clips]
    embs, spk = [], []
    for k, w in enumerate(wavs):
        for h in halves(w):
            embs.append(speaker.embed(h))
            spk.append(k)
    cal = speaker.calibrate(np.stack(embs), spk)
    whole = [speaker.embed(w) for w in wavs]
    cross = [speaker.cosine(whole[i], whole[j]) for i in range(len(whole)) for j in range(i + 1, len(whole))]
    assert np.mean(cross) < cal["threshold"] < cal["same_mean"]


def test_dev_speakers_below_threshold_calibrated_on_dev_data(example_clips):
    manifest = SHARED_DATA / "manifest.tsv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} absent")
    from vc.data import find_utterances
    examples = {p.name.split("_")[0] for p in example_clips}
    utts = [u for u in find_utterances(manifest, "dev")      # short clips: speechocean762
            if u.speaker.startswith("so762") and u.speaker not in examples]
    chosen = pairs.calibration_set(utts, per_speaker=3)[:12]          # 4 other speakers x 3
    cal = speaker.calibrate(np.stack([speaker.embed(load16(p)) for p, _ in chosen]), [s for _, s in chosen])
    whole = [speaker.embed(load16(p)) for p in example_clips]
    cross = [speaker.cosine(whole[i], whole[j]) for i in range(len(whole)) for j in range(i + 1, len(whole))]
    assert np.mean(cross) < cal["threshold"]


# -- content ---------------------------------------------------------------------------------------

def test_cer_and_wer_on_hand_counted_pairs():
    # "the cat sat on the mat" (22 characters) -> "the cat sit on mat": 1 substitution (a -> i)
    # and 4 deletions ("the "): CER 5 / 22; words: 1 substitution + 1 deletion of 6
    assert asr.cer("The cat sat on the mat.", "the cat sit on mat") == pytest.approx(5 / 22)
    assert asr.wer("The cat sat on the mat.", "the cat sit on mat") == pytest.approx(2 / 6)
    assert asr.cer("I have 2 cats, THAT'S it!", "i have two cats thats it") == 0.0
    assert asr.cer("", "anything") is None and asr.cer("abc", "") == 1.0
    assert asr.normalize("It cost 1,342 pounds") == "it cost one thousand three hundred forty two pounds"


def test_identical_audio_transcribes_identically(example_clips):
    wav = load16(example_clips[-1])            # so762-2022: "friends planned to visit later ..."
    first, second = asr.transcribe(wav), asr.transcribe(wav.copy())
    assert first and asr.cer(first, second) == 0.0
    assert asr.cer("FRIENDS PLANNED TO VISIT LATER IN THE AFTERNOON", first) < 0.3


def test_second_recogniser_reads_real_speech_and_is_deterministic(example_clips):
    """Moonshine, the recogniser training never uses: the same words as the transcript, the same
    transcript twice, nothing from silence."""
    wav = load16(example_clips[-1])
    first, second = moonshine.transcribe(wav), moonshine.transcribe(wav.copy())
    assert first == second
    assert asr.cer("FRIENDS PLANNED TO VISIT LATER IN THE AFTERNOON", first) < 0.3
    assert moonshine.transcribe(np.zeros(0, np.float32)) == ""
    # two seconds of faint noise before the words: the model alone reads nothing (it did here), the
    # trimmed clip reads the words
    noise = np.random.default_rng(0).standard_normal(16000 * 2).astype(np.float32) * 0.003
    paused = np.concatenate([noise, wav, noise[:16000]])
    assert asr.cer("FRIENDS PLANNED TO VISIT LATER IN THE AFTERNOON", moonshine.transcribe(paused)) < 0.3
    assert 0.8 * wav.size < moonshine.trim(paused, 25.0).size < wav.size + 16000 * 0.5


def test_missing_second_recogniser_is_named(monkeypatch):
    import importlib.util

    from vc.cli import UsageError
    from vc.evaluate import check_scorers
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moonshine_cpp" else real(name, *a))
    with pytest.raises(UsageError, match="moonshine"):
        check_scorers()


# -- quality ---------------------------------------------------------------------------------------

def test_mcd_zero_for_identical_audio_and_positive_otherwise(example_clips):
    a, b = load_audio(example_clips[0]), load_audio(example_clips[1])
    assert quality.mcd(a, a) == pytest.approx(0.0, abs=1e-9)
    assert 2.0 < quality.mcd(a, b) < 30.0


def test_mel_cepstrum_recovers_known_coefficients():
    k, c = np.arange(80), [0.5, 0.3, -0.2, 0.1]
    log_spec = 1.0 + sum(cm * np.cos(np.pi * m * (k + 0.5) / 80) for m, cm in enumerate(c, start=1))
    np.testing.assert_allclose(quality.mel_cepstrum(log_spec[:, None])[:6, 0], c + [0, 0], atol=1e-12)


def test_dnsmos_prefers_speech_to_noise(example_clips):
    speech = quality.dnsmos(load16(example_clips[0]))
    noise = quality.dnsmos(np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32))
    assert 1.0 <= noise["ovrl"] < speech["ovrl"] <= 5.0


# -- pairs and probes ------------------------------------------------------------------------------

def test_read_pairs_resolves_paths_and_rejects_bad_tables(tmp_path):
    (tmp_path / "p.tsv").write_text("source\ttarget\ttext\na.wav\tsub/b.wav\tHELLO\n")
    (p,) = pairs.read_pairs(tmp_path / "p.tsv")
    assert p.source == str(tmp_path / "a.wav") and p.target == str(tmp_path / "sub" / "b.wav")
    assert p.text == "HELLO" and p.ceiling == p.target and not p.reference
    (tmp_path / "bad.tsv").write_text("src,tgt\na.wav,b.wav\n")
    with pytest.raises(ValueError, match="bad.tsv.*'source' and 'target'"):
        pairs.read_pairs(tmp_path / "bad.tsv")
    (tmp_path / "gap.tsv").write_text("source\ttarget\na.wav\t\n")
    with pytest.raises(ValueError, match="line 2"):
        pairs.read_pairs(tmp_path / "gap.tsv")


def test_corpus_pairs_are_every_ordered_speaker_pair_and_deterministic():
    from vc.data import Utterance
    utts = [Utterance(f"/{s}/{k}.wav", s, "dev", text=f"{s} {k}") for s in "abc" for k in range(4)]
    ps = pairs.corpus_pairs(utts, seed=0)
    assert len(ps) == 6 and len({(p.source_speaker, p.target_speaker) for p in ps}) == 6
    for p in ps:
        assert p.source_speaker != p.target_speaker
        assert p.target.startswith(f"/{p.target_speaker}/") and p.ceiling.startswith(f"/{p.target_speaker}/")
        assert p.ceiling != p.target and p.text == p.source.strip("/").replace("/", " ")[:-4]
    assert ps == pairs.corpus_pairs(list(reversed(utts)), seed=0)
    assert ps != pairs.corpus_pairs(utts, seed=1)
    sub = pairs.subset(ps, 3)
    assert len(sub) == 3 and sub == pairs.subset(ps, 3) and all(p in ps for p in sub)


def test_probe_finds_speakers_in_informative_features_only():
    rng = np.random.default_rng(0)
    spk = np.repeat(np.arange(5), 6)
    informative = np.eye(5)[spk] * 3 + rng.normal(0, 0.3, (30, 5))
    noise = rng.normal(0, 1, (30, 5))
    out = probes.speaker_probes({"informative": informative, "noise": noise}, [f"s{k}" for k in spk])
    assert out["chance"] == pytest.approx(0.2) and out["n_test"] == 15
    assert out["informative"] == 1.0 and out["noise"] < 0.6
    assert "skipped" in probes.speaker_probes({"x": noise[:3]}, ["a", "b", "c"])


def test_content_stats_shape_and_invariance_to_scale():
    import torch
    x = torch.randn(4, 50, dtype=torch.float64)
    s = probes.content_stats(x)
    assert s.shape == (4 * 4 + 6,)
    np.testing.assert_allclose(probes.content_stats(3 * x + 1)[8:], s[8:], atol=1e-9)


def test_bootstrap_ci_brackets_the_mean():
    rng = np.random.default_rng(1)
    v = rng.normal(0.5, 0.1, 400)
    lo, hi = report.bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * 0.1 / 20, rel=0.2)
    assert report.bootstrap_ci([1.0]) is None


# -- a whole run -----------------------------------------------------------------------------------

@pytest.fixture
def pairs_tsv(tmp_path, example_clips):
    """3 speakers, two half-clips each (so SVAR and the probes have labels), 2 pairs and a broken one."""
    folder = tmp_path / "clips"
    folder.mkdir()
    names = []
    for clip in example_clips[:3]:
        wav, sr = sf.read(clip, dtype="float32")
        for k, h in enumerate(halves(wav)):
            sf.write(folder / f"{clip.stem}_{k}.wav", h, sr)
        names.append(clip.stem)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav file")
    rows = ["source\ttarget\treference\ttext\tsource_speaker\ttarget_speaker",
            f"{names[0]}_0.wav\t{names[1]}_0.wav\t{names[1]}_1.wav\t\t{names[0]}\t{names[1]}",
            f"broken.wav\t{names[2]}_0.wav\t\t\tnobody\t{names[2]}",
            f"{names[2]}_1.wav\t{names[0]}_1.wav\t\tsome words\t{names[2]}\t{names[0]}"]
    (folder / "pairs.tsv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.tsv"


def comparable(out_dir):
    rep = json.loads((out_dir / "report.json").read_text())
    rep.pop("speed")
    md = (out_dir / "report.md").read_text()
    return rep, md[: md.index("## Speed")]


def test_interrupted_and_resumed_run_gives_the_same_report(tmp_path, pairs_tsv, tiny_checkpoint, monkeypatch):
    args = ["evaluate", "--model", str(tiny_checkpoint), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
            "--no-progress"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert cli(args + ["--out", str(whole)]) == 1              # 1: a pair failed

    real_score, calls = runner.Scorer.score, []

    def interrupted(self, pair, *args):
        calls.append(pair)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_score(self, pair, *args)

    monkeypatch.setattr(runner.Scorer, "score", interrupted)
    assert cli(args + ["--out", str(resumed)]) == 130
    assert len((resumed / runner.RESULTS).read_text().splitlines()) == 1
    assert not (resumed / "report.json").exists()
    monkeypatch.setattr(runner.Scorer, "score", real_score)
    assert cli(args + ["--out", str(resumed)]) == 1
    assert comparable(resumed) == comparable(whole)

    rep = json.loads((whole / "report.json").read_text())
    assert rep["pairs"] == {"total": 3, "scored": 2, "failed": 1}
    assert "broken.wav" in rep["failures"][0]["error"]
    assert rep["speaker_verification"]["n_same"] == 3 and rep["speaker_verification"]["threshold"] is not None
    assert rep["disentanglement"]["n_speakers"] == 3 and rep["disentanglement"]["chance"] == pytest.approx(1 / 3)
    conv = rep["systems"]["converted"]
    assert conv["mcd"]["n"] == 1 and rep["systems"]["resynthesis"]["mcd"]["n"] == 2
    assert rep["systems"]["source"]["sim_source"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert rep["content"]["pairs_with_transcript"] == 1
    assert rep["speed"]["model_rtf"]["total"] > 0 and rep["speed"]["vocoder_rtf"]["total"] > 0
    # the second, independent verifier: its own fields, calibration and cost
    assert set(rep["verifiers"]) == {"resemblyzer", "ecapa"} and "ECAPA" in rep["verifiers"]["ecapa"]["name"]
    ecapa_cal = rep["speaker_verification_ecapa"]
    assert ecapa_cal["n_same"] == 3 and ecapa_cal["threshold"] is not None
    assert ecapa_cal["threshold"] != rep["speaker_verification"]["threshold"]
    for name in ("converted", "source", "resynthesis", "reconstruction"):
        for field in ("ecapa_sim_target", "ecapa_sim_source", "ecapa_svar", "ecapa_target_closer"):
            assert rep["systems"][name][field]["n"] == 2, (name, field)
    assert rep["systems"]["source"]["ecapa_sim_source"]["mean"] == pytest.approx(1.0, abs=1e-5)
    # against another clip of the target: only where the pair names one (the first: its reference),
    # and only for the rows that did not start from that clip
    for name, n in (("converted", 1), ("source", 1), ("resynthesis", 0), ("reconstruction", 0)):
        for field in ("sim_other", "ecapa_sim_other", "ecapa_other_svar", "ecapa_other_closer", "other_closer"):
            assert rep["systems"][name][field]["n"] == n, (name, field)
    first = json.loads((whole / runner.RESULTS).read_text().splitlines()[0])["systems"]["converted"]
    assert first["ecapa_sim_other"] != first["ecapa_sim_target"]
    assert rep["speed"]["evaluation_seconds_per_pair"]["ecapa"] > 0
    assert rep["meta"]["second_verifier"]["package"].startswith(ecapa.PACKAGE)
    # the second, independent recogniser: its own fields on every system, against the transcript or
    # its own reading of the source
    assert set(rep["recognisers"]) == {"whisper", "moonshine"}
    for name in ("converted", "source", "resynthesis", "reconstruction"):
        assert rep["systems"][name]["moonshine_cer"]["n"] == 2, name
    records = [json.loads(line) for line in (whole / runner.RESULTS).read_text().splitlines()]
    scored = [r for r in records if "error" not in r]
    assert [("moonshine_words" in r) for r in scored] == [r["words_from"] != "transcript" for r in scored]
    untranscribed = next(r for r in scored if r["words_from"] != "transcript")
    assert untranscribed["systems"]["source"]["moonshine_cer"] == 0.0      # its own reading of the source
    assert rep["speed"]["evaluation_seconds_per_pair"]["moonshine"] > 0
    assert rep["meta"]["second_recogniser"]["package"].startswith("moonshine-cpp")
    for name in ("report.md", "similarity.png", "mel_pair000.png", "audio/pair000_converted.wav"):
        assert (whole / name).is_file(), name
    md = (whole / "report.md").read_text()
    assert "| converted |" in md and "| vocoder resynthesis |" in md and "broken.wav" in md
    assert "ECAPA sim to target" in md and "**ECAPA SVAR**" in md and "**Against another clip of the target**" in md
    assert "Moonshine CER % ↓" in md and "**Moonshine CER**" in md

    # a report folder of one model refuses results of another
    other = tmp_path / "other.pt"
    import torch
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["meta"] = {"note": "another model"}
    torch.save(state, other)
    assert cli(["evaluate", "--model", str(other), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
                "--no-progress", "--out", str(whole)]) == 2


def test_screening_run_scores_only_the_chosen_systems(tmp_path, pairs_tsv, tiny_checkpoint):
    """--systems converted,reconstruction: no baselines that do not depend on the model, a report
    that still renders; asking for more later scores the pairs again instead of mixing."""
    out = tmp_path / "screen"
    args = ["evaluate", "--model", str(tiny_checkpoint), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
            "--no-progress", "--out", str(out)]
    assert cli(args + ["--systems", "reconstruction, converted"]) == 1          # the broken pair
    rep = json.loads((out / "report.json").read_text())
    assert list(rep["systems"]) == ["converted", "reconstruction"]
    assert rep["meta"]["systems"] == ["converted", "reconstruction"]
    assert rep["systems"]["converted"]["ecapa_sim_target"]["n"] == 2
    assert rep["content"]["cer_converted_minus_source"]["mean"] is None
    for line in (out / runner.RESULTS).read_text().splitlines():
        rec = json.loads(line)
        assert "error" in rec or set(rec["systems"]) == {"converted", "reconstruction"}
    md = (out / "report.md").read_text()
    assert "| converted |" in md and "| reconstruction |" in md
    assert "| source unchanged |" not in md and "| vocoder resynthesis |" not in md
    assert "Not scored in this run (`--systems`): source unchanged, vocoder resynthesis." in md
    assert (out / "similarity.png").is_file()
    assert cli(args + ["--systems", "converted,bogus"]) == 2
    assert cli(args + ["--systems", "source"]) == 1
    rep = json.loads((out / "report.json").read_text())
    assert list(rep["systems"]) == ["source"] and "| source unchanged |" in (out / "report.md").read_text()


def test_ecapa_separates_speakers_and_is_deterministic(example_clips):
    wavs = [load16(p) for p in example_clips]
    e = ecapa.embed(wavs[0])
    assert e.shape == (ecapa.DIM,) and np.isfinite(e).all()
    np.testing.assert_array_equal(e, ecapa.embed(wavs[0].copy()))
    same = [speaker.cosine(ecapa.embed(a), ecapa.embed(b)) for a, b in map(halves, wavs)]
    whole = [ecapa.embed(w) for w in wavs]
    cross = [speaker.cosine(whole[i], whole[j]) for i in range(len(whole)) for j in range(i + 1, len(whole))]
    assert min(same) > max(cross)
    assert np.isfinite(ecapa.embed(np.zeros(800, np.float32))).all()         # silence, 50 ms


def test_missing_second_verifier_is_named(monkeypatch):
    from vc.cli import UsageError
    from vc.evaluate import check_scorers
    monkeypatch.setattr(ecapa, "PACKAGE", "no-such-distribution-here")
    with pytest.raises(UsageError, match="no-such-distribution-here"):
        check_scorers()


def test_shards_share_one_report(tmp_path, pairs_tsv, tiny_checkpoint):
    """Two --shard processes score disjoint pairs; the run without --shard scores nothing new (but
    the failed pair, as any resumed run does) and reports on all of them, like a single run."""
    args = ["evaluate", "--model", str(tiny_checkpoint), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
            "--no-progress", "--systems", "converted"]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert cli(args + ["--out", str(single)]) == 1
    assert cli(args + ["--out", str(sharded), "--shard", "0/2"]) == 0
    assert not (sharded / "report.json").exists()
    assert cli(args + ["--out", str(sharded), "--shard", "1/2"]) == 0
    lines = [len((sharded / f"results.shard-{i}-of-2.jsonl").read_text().splitlines()) for i in (0, 1)]
    assert lines == [2, 1]
    real_score, rescored = runner.Scorer.score, []

    def spy(self, pair, *a):
        rescored.append(Path(pair.source).name)
        return real_score(self, pair, *a)

    runner.Scorer.score = spy
    try:
        assert cli(args + ["--out", str(sharded)]) == 1
    finally:
        runner.Scorer.score = real_score
    assert rescored == ["broken.wav"]             # only the failed pair is tried again
    a, b = comparable(single), comparable(sharded)
    assert a[0]["systems"] == b[0]["systems"] and a[0]["pairs"] == b[0]["pairs"]
    assert cli(args + ["--out", str(sharded), "--shard", "2/2"]) == 2


def test_adapt_changes_the_conversions_not_the_reconstruction(tmp_path, pairs_tsv, tiny_checkpoint):
    """--adapt N refines the speaker vectors of the conversions; the reconstruction (the
    autoencoder alone) keeps the encoder's vector; a report folder refuses another --adapt."""
    args = ["evaluate", "--model", str(tiny_checkpoint), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
            "--no-progress", "--systems", "converted,reconstruction", "--strength", "1.5"]
    reps = {}
    for n in ("0", "10"):
        assert cli(args + ["--adapt", n, "--out", str(tmp_path / n)]) == 1        # the broken pair
        reps[n] = json.loads((tmp_path / n / "report.json").read_text())
    assert reps["10"]["meta"]["adapt_steps"] == 10 and reps["0"]["meta"]["adapt_steps"] == 0
    for field in ("ecapa_sim_target", "sim_target"):
        recon = [reps[n]["systems"]["reconstruction"][field]["mean"] for n in reps]
        conv = [reps[n]["systems"]["converted"][field]["mean"] for n in reps]
        assert recon[0] == pytest.approx(recon[1], abs=1e-4) and abs(conv[0] - conv[1]) > 1e-4, field
    assert cli(args + ["--adapt", "5", "--out", str(tmp_path / "10")]) == 2


def test_match_changes_the_conversions_not_the_reconstruction(tmp_path, pairs_tsv, tiny_checkpoint):
    """--match W matches the conversions' envelopes to the target's frames (vc.match); the
    reconstruction has no target; a report folder refuses another --match."""
    args = ["evaluate", "--model", str(tiny_checkpoint), "--pairs", str(pairs_tsv), "--vocoder", "griffinlim",
            "--no-progress", "--systems", "converted,reconstruction"]
    reps = {}
    for w in ("0", "0.5"):
        assert cli(args + ["--match", w, "--out", str(tmp_path / w)]) == 1        # the broken pair
        reps[w] = json.loads((tmp_path / w / "report.json").read_text())
    assert reps["0.5"]["meta"]["match"] == 0.5 and reps["0"]["meta"]["match"] == 0.0
    recon = [reps[w]["systems"]["reconstruction"]["sim_target"]["mean"] for w in reps]
    conv = [reps[w]["systems"]["converted"]["sim_target"]["mean"] for w in reps]
    assert recon[0] == pytest.approx(recon[1], abs=1e-4) and abs(conv[0] - conv[1]) > 1e-4
    assert cli(args + ["--match", "0.25", "--out", str(tmp_path / "0.5")]) == 2
