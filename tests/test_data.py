"""vc.data: which utterances training holds out for its validation loss."""
from vc.data import Utterance, split_validation


def utts(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(path=f"/d/{spk}/{i:02d}.flac", speaker=spk) for spk, n in counts.items() for i in range(n)]


def test_holds_out_per_speaker_with_enough_utterances():
    data = utts({"a": 10, "b": 3, "c": 2, "d": 1})
    train, val = split_validation(data, per_speaker=1, seed=0)
    assert sorted(u.speaker for u in val) == ["a", "b"]            # speakers with under 3 keep all
    assert set(train) | set(val) == set(data) and not set(train) & set(val)
    train2, val2 = split_validation(list(reversed(data)), per_speaker=2, seed=0)
    assert sorted(u.speaker for u in val2) == ["a", "a", "b", "b"]


def test_the_same_for_a_seed_whatever_the_order():
    data = utts({"a": 20, "b": 20})
    _, val = split_validation(data, 1, seed=3)
    assert split_validation(list(reversed(data)), 1, seed=3)[1] == val
    assert any(split_validation(data, 1, seed=s)[1] != val for s in range(4, 10))
    assert split_validation(data, 0, seed=3)[1] == []
