"""scripts/compare_runs.py: pairs are matched by key, CER is capped per pair, and a consistent
paired difference is called significant while noise around zero is not."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def compare():
    return load_script("compare_runs")


def write(folder: Path, rows):
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("\n".join(json.dumps(
        {"key": k, "systems": {"converted": {"cer": cer, "sim_target": sim}}}) for k, cer, sim in rows) + "\n")
    return folder


def scored(compare, folder: Path, converted: list[dict]):
    """A results.jsonl whose pair i has the converted system's metrics ``converted[i]``, read back."""
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("\n".join(
        json.dumps({"key": str(i), "systems": {"converted": m}}) for i, m in enumerate(converted)) + "\n")
    return compare.read_results(folder)


def test_paired_difference(compare, tmp_path, capsys):
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.2, 0.8, 40)                       # pairs differ a lot from each other
    base = write(tmp_path / "a", [(str(i), s, 0.5 + s / 2) for i, s in enumerate(spread)])
    # the candidate: every pair 5 CER points lower, the same similarity up to tiny noise, one
    # pair hallucinated (CER 3.0: capped at 1.0), one pair the baseline never scored
    cand_rows = [(str(i), s - 0.05, 0.5 + s / 2 + rng.normal(0, 1e-3)) for i, s in enumerate(spread)]
    cand_rows[0] = ("0", 3.0, cand_rows[0][2])
    cand = write(tmp_path / "b", cand_rows + [("extra", 0.0, 0.9)])
    rows = {r["metric"]: r for r in compare.paired(compare.read_results(base), compare.read_results(cand))}
    cer, sim = rows["CER converted, capped (points)"], rows["Resemblyzer sim to target"]
    assert cer["n"] == 40 and sim["n"] == 40                  # matched by key: "extra" left out
    expected = (1.0 - spread[0] + sum(-0.05 for _ in range(39))) * 100 / 40
    assert cer["diff"] == pytest.approx(expected)
    assert sim["diff"] == pytest.approx(0, abs=1e-3) and not sim["significant"]
    assert "ECAPA sim to target" not in rows                  # a metric nobody scored: no row
    assert compare.main([str(base), str(cand)]) == 0
    assert "CER converted, capped (points)" in capsys.readouterr().out


def test_missing_results_is_one_line(compare, tmp_path):
    with pytest.raises(SystemExit, match="no results.jsonl"):
        compare.read_results(tmp_path)


def test_ecapa_margin_is_target_minus_source_per_pair(compare, tmp_path):
    # the candidate nears the target by 0.01 and the source by 0.04: the margin falls by 0.03
    base = scored(compare, tmp_path / "a", [{"ecapa_sim_target": 0.2 + i / 100, "ecapa_sim_source": 0.1}
                                            for i in range(30)])
    cand = scored(compare, tmp_path / "b", [{"ecapa_sim_target": 0.21 + i / 100, "ecapa_sim_source": 0.14}
                                            for i in range(30)])
    margin = {r["metric"]: r for r in compare.paired(base, cand)}["ECAPA margin (target - source)"]
    assert margin["diff"] == pytest.approx(-0.03) and margin["significant"]


def test_by_target_compares_within_kinds_of_speaker(compare, tmp_path, capsys):
    """--by target: the pairs split by their target speaker's corpus, children (under 15, the
    manifest's age) apart; a gain on one kind and a loss on another both show."""
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("path\tspeaker\tcorpus\tsplit\tage\n"
                        "a.flac\tso-1\tspeechocean762\tval\t15\n"
                        "b.flac\tso-2\tspeechocean762\tval\t9\n"
                        "c.flac\tlibri-3\tlibrispeech\tdev\t\n")
    kinds = compare.speaker_groups(manifest)
    assert kinds == {"so-1": "speechocean762", "so-2": "child", "libri-3": "librispeech"}

    def folder(name, shift):
        (tmp_path / name).mkdir()
        recs = [{"key": f"{t}{i}", "pair": {"source_speaker": "so-1", "target_speaker": t},
                 "systems": {"converted": {"sim_target": 0.5 + i / 100 + shift[t]}}}
                for t in ("so-2", "libri-3") for i in range(20)]
        (tmp_path / name / "results.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
        return tmp_path / name
    base = folder("a", {"so-2": 0.0, "libri-3": 0.0})
    cand = folder("b", {"so-2": 0.05, "libri-3": -0.05})
    groups = compare.grouped(compare.read_results(cand), "target", kinds)
    assert sorted(groups) == ["child", "librispeech"] and len(groups["child"]) == 20
    assert compare.main([str(base), str(cand), "--by", "target", "--data", str(manifest)]) == 0
    out = capsys.readouterr().out
    child = out.split("target speaker: child")[1].split("target speaker:")[0]
    libri = out.split("target speaker: librispeech")[1]
    assert "+0.050" in child and "-0.050" in libri
    with pytest.raises(SystemExit, match="manifest not found"):
        compare.main([str(base), str(cand), "--by", "target", "--data", str(tmp_path / "none.tsv")])


def test_by_format_compares_within_the_codings_of_the_pairs_files(compare, tmp_path, capsys):
    """--by format: the pairs split by how their source and target files are coded (lossy: Ogg
    Opus/Vorbis, MP3); no manifest needed."""
    def folder(name, shift):
        (tmp_path / name).mkdir()
        recs = [{"key": f"{t}{i}", "pair": {"source": f"s{i}.flac", "target": f"t{i}.{t}"},
                 "systems": {"converted": {"dnsmos": 2.5 + i / 100 + shift[t]}}}
                for t in ("opus", "wav") for i in range(20)]
        (tmp_path / name / "results.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
        return tmp_path / name
    base = folder("a", {"opus": 0.0, "wav": 0.0})
    cand = folder("b", {"opus": 0.0, "wav": 0.1})
    groups = compare.grouped(compare.read_results(cand), "format", {})
    assert sorted(groups) == ["lossless -> lossless", "lossless -> lossy"]
    assert compare.coding({"source": "x.MP3", "target": "y.flac"}) == "lossy -> lossless"
    assert compare.main([str(base), str(cand), "--by", "format", "--data", str(tmp_path / "none.tsv")]) == 0
    out = capsys.readouterr().out
    lossless = out.split("files: lossless -> lossless")[1].split("files:")[0]
    lossy = out.split("files: lossless -> lossy")[1]
    assert "+0.100  [+0.100, +0.100] *" in lossless and "+0.000  [+0.000, +0.000]\n" in lossy


def test_folders_joined_by_plus_pool_their_pairs(compare, tmp_path):
    """Two draws of pairs (vc evaluate --seed 0 and 1) under other keys: 'a+b' holds both."""
    a = write(tmp_path / "a", [(str(i), 0.3, 0.6) for i in range(5)])
    b = write(tmp_path / "b", [(f"s1-{i}", 0.4, 0.7) for i in range(7)])
    pooled = compare.read_results(f"{a}+{b}")
    assert len(pooled) == 12 and pooled["s1-0"]["systems"]["converted"]["cer"] == 0.4
    rows = {r["metric"]: r for r in compare.paired(pooled, pooled)}
    assert rows["CER converted, capped (points)"]["n"] == 12


def test_the_same_pairs_in_joined_folders_are_averaged_not_overwritten(compare, tmp_path):
    """Two training seeds scored on the same pairs: 'seed0+seed1' is each pair's mean over the
    seeds, and the comparison is over the pairs (n stays 3), not over pairs x seeds."""
    base = write(tmp_path / "base", [(str(i), 0.3, 0.6) for i in range(3)])
    s0 = write(tmp_path / "s0", [(str(i), 0.2, 0.6) for i in range(3)])
    s1 = write(tmp_path / "s1", [(str(i), 0.4, 0.6) for i in range(3)] + [("only1", 0.9, 0.6)])
    pooled = compare.read_results(f"{s0}+{s1}")
    assert len(pooled) == 4 and abs(compare.value(pooled["0"], "converted", "cer") - 0.3) < 1e-9
    assert compare.value(pooled["only1"], "converted", "cer") == 0.9
    rows = {r["metric"]: r for r in compare.paired(compare.read_results(f"{base}+{base}"), pooled)}
    cer = rows["CER converted, capped (points)"]
    assert cer["n"] == 3 and abs(cer["diff"]) < 1e-9     # (0.2 + 0.4) / 2 against 0.3


def test_similarity_to_another_target_clip_is_its_own_row(compare, tmp_path):
    """Both verifiers' similarity to another clip of the target is compared beside the similarity
    to the target clip: a candidate that nears the clip it copied from, not the speaker, shows."""
    def folder(name, clip_shift):
        return scored(compare, tmp_path / name, [
            {"sim_target": 0.7 + i / 200 + clip_shift, "sim_other": 0.65 + i / 200,
             "ecapa_sim_target": 0.3 + i / 200 + clip_shift, "ecapa_sim_other": 0.25 + i / 200}
            for i in range(30)])
    rows = {r["metric"]: r for r in compare.paired(folder("a", 0.0), folder("b", 0.02))}
    for verifier in ("Resemblyzer", "ECAPA"):
        assert rows[f"{verifier} sim to target"]["diff"] == pytest.approx(0.02)
        assert rows[f"{verifier} sim to target"]["significant"]
        assert rows[f"{verifier} sim to another target clip"]["diff"] == pytest.approx(0.0)
        assert not rows[f"{verifier} sim to another target clip"]["significant"]


def test_recognisers_side_by_side_per_system(compare, tmp_path, capsys):
    """--recognisers: within one folder, each system's Whisper and Moonshine CER of the same clips
    and their paired difference; capped per pair; a pair one recogniser did not read is left out."""
    folder = tmp_path / "run"
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        w = rng.uniform(0.1, 0.6)
        lines.append({"key": str(i), "systems": {
            "converted": {"cer": w, "moonshine_cer": w + 0.05},       # Moonshine 5 points harsher
            "source": {"cer": 0.1 + rng.normal(0, 0.02), "moonshine_cer": 0.1 + rng.normal(0, 0.02)}}})
    lines[0]["systems"]["converted"]["moonshine_cer"] = 4.0              # capped at 1.0
    lines[1]["systems"]["converted"]["moonshine_cer"] = None             # not read: left out
    (folder / "results.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    rows = {r["metric"]: r for r in compare.recognisers(compare.read_results(folder))}
    conv, src = rows["CER converted: Whisper -> Moonshine"], rows["CER source: Whisper -> Moonshine"]
    w0 = lines[0]["systems"]["converted"]["cer"]
    assert conv["n"] == 39 and conv["diff"] == pytest.approx((100 * (1.0 - w0) + 38 * 5) / 39)
    assert conv["significant"] and src["n"] == 40 and not src["significant"]
    assert compare.main([str(folder), "--recognisers"]) == 0
    assert "CER source: Whisper -> Moonshine" in capsys.readouterr().out
    # between two folders: a candidate whose Whisper CER falls 6 points and Moonshine's 2 pleases
    # Whisper by 4 points
    other = tmp_path / "other"
    other.mkdir()
    for line in lines:
        c = line["systems"]["converted"]
        c["cer"] -= 0.06
        if c["moonshine_cer"] is not None:
            c["moonshine_cer"] -= 0.02
    (other / "results.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    rows = {r["metric"]: r for r in compare.paired(compare.read_results(folder), compare.read_results(other))}
    gap = rows["Moonshine - Whisper CER converted (points)"]
    assert gap["n"] == 39 and gap["significant"]
    assert gap["diff"] == pytest.approx((38 * 4 + 100 * (1.0 - w0 + 0.06) - 100 * (1.0 - w0)) / 39)
