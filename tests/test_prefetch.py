"""training/prefetch.py: the same items in the same order, errors raised where they are
consumed, and a closed prefetcher leaves no thread behind."""
import threading

import pytest
import torch

from openyolox.training.prefetch import Prefetcher


def test_same_items_in_order():
    assert list(Prefetcher(range(50), depth=2)) == list(range(50))
    assert list(Prefetcher([])) == []


def test_error_raised_in_consumer_after_good_items():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in Prefetcher(items()):
            got.append(x)
    assert got == [1, 2]


def test_close_early_stops_thread():
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    p = Prefetcher(endless(), depth=1)
    assert next(p) == 0
    p.close()
    assert not any(t.name == "openyolox-prefetch" and t.is_alive() for t in threading.enumerate())
    n = len(made)
    assert n <= 4  # at most one item ahead, plus one in progress
    with pytest.raises(StopIteration):
        next(p)


def test_iterator_created_in_caller_thread():
    """Creating a DataLoader iterator draws from torch's global RNG; that must happen in the
    caller's thread, at construction, so checkpointed RNG states do not depend on timing."""
    seen = []

    class Source:
        def __iter__(self):
            seen.append(threading.current_thread() is threading.main_thread())
            torch.empty(()).random_()
            return iter([1, 2, 3])

    torch.manual_seed(0)
    p = Prefetcher(Source())
    after = torch.get_rng_state()
    assert seen == [True]
    assert list(p) == [1, 2, 3]
    torch.manual_seed(0)
    torch.empty(()).random_()
    assert torch.equal(after, torch.get_rng_state())
