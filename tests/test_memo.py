"""Bounded memos (pipeline/domain/memo.py): every per-worker memo of the hot path is one of these."""
import pickle

from cargoscreen.domain.memo import BoundedMemo, Memo
from cargoscreen.domain.conditions import TermMatcher


def test_a_bounded_memo_never_holds_more_than_its_limit_and_keeps_the_newest():
    memo = BoundedMemo(3)
    for i in range(10):
        assert memo.remember(i, i * i) == i * i
        assert len(memo) <= 3
    assert memo[9] == 81 and 0 not in memo


def test_a_memo_computes_each_key_once_while_remembered():
    calls = []
    memo = Memo(lambda k: calls.append(k) or k.upper(), 2)
    assert [memo["a"], memo["a"], memo["b"], memo["a"]] == ["A", "A", "B", "A"]
    assert calls == ["a", "b"]
    memo["c"]  # full: starts afresh
    assert calls == ["a", "b", "c"] and len(memo) == 1
    assert memo.get("z") is None and "z" not in memo  # get does not compute


def test_memos_travel_empty_with_their_limit_and_function():
    memo = BoundedMemo(5)
    memo.remember("x", 1)
    copy = pickle.loads(pickle.dumps(memo))
    assert type(copy) is BoundedMemo and copy == {} and copy.limit == 5
    matcher = TermMatcher(["gun powder"])
    assert matcher.found["black gun powder"] == "gun powder"
    again = pickle.loads(pickle.dumps(matcher))
    assert again.found == {} and again.found["no powder here"] is None and again.found["gun powder"] == "gun powder"


def test_a_term_list_remembers_a_bounded_number_of_texts():
    matcher = TermMatcher(["battery"])
    for i in range(matcher.found.limit + 5):
        matcher.found[f"text {i}"]
    assert len(matcher.found) <= matcher.found.limit and len(matcher._cache) <= matcher._cache.limit
