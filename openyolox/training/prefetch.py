"""Make the next batch while the current step runs: a loader iterated one batch ahead in a
background thread.

On small machines data loading runs in the training process (no worker processes, see
recipe.default_workers), so without this the step waits for every batch's augmentation.
Decoding, warping and colour jitter run in OpenCV and NumPy, which release the GIL, so a thread
overlaps them with the step's PyTorch kernels.

Batches come out in the loader's order and are the same batches: every training sample draws
from its own RNG (data/dataset.sample_rng), and the loader iterator is created in the caller's
thread, because creating it draws from torch's global RNG (its base seed), which checkpoints
save for exact resume.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher:
    """``for batch in Prefetcher(loader): ...`` -- the same batches, made ``depth`` ahead.

    Exceptions raised while making a batch are raised by ``next()`` in the caller's thread.
    ``close()`` (also on leaving a ``with`` block, or after the last batch) stops the thread.
    """

    def __init__(self, iterable: Iterable, depth: int = 1):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._source: Iterator = iter(iterable)  # here, not in the thread (see the module doc)
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, name="openyolox-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        """Queue ``item``, waiting for room; False when the consumer closed us meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
            return
        self._put(_END)

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    def close(self) -> None:
        """Stop making batches and wait for the thread (a batch in progress is finished first)."""
        self._done = True
        self._stop.set()
        while True:  # unblock a producer waiting for room
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
