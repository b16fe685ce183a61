"""Progress of long loops: a tqdm bar on a terminal, plain log lines in batch jobs.

Every long loop (reconstruction epochs, DDIP epochs, the mixing estimate, and through them sweeps, ensembles and the
pipeline's stages) creates its progress display with :func:`progress_bar` (or :func:`progress_iter`). What it shows
depends on the loop's ``progress`` argument:

``True`` (the default of the API and the CLI)
    a tqdm bar when the stream (stderr) is a terminal or a Jupyter kernel; otherwise plain lines, as below.
``"lines"`` (the CLI's ``--no-progress``)
    plain lines always: one line ``desc: epoch 300/1000 (30%), loss=1.2e-03, 41.7 epochs/s, 17 s left`` about every
    10 % of the loop and at least every 60 s, and always at the last epoch, flushed at once and without carriage
    returns, so that a batch job's log file stays readable (tqdm's bar becomes one huge line there).
``"bar"``
    a tqdm bar always.
``False``
    nothing.

Only rank 0 shows progress: callers pass ``progress=False`` on the other ranks. The lines go to stderr, as tqdm's
bar does; silence a command with ``2>/dev/null`` or the API's ``progress=False`` (there is no ``--quiet`` flag: the
result lines on stdout are few and the error lines must stay visible).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO, Union

__all__ = ["progress_bar", "progress_iter", "resolve_mode", "cli_progress", "LineProgress", "NullProgress"]

Progress = Union[bool, str]
MODES = ("auto", "bar", "lines", "off")


def resolve_mode(progress: Progress, stream: Optional[TextIO] = None) -> str:
    """``progress`` (True/False/"auto"/"bar"/"lines"/"off") -> "bar", "lines" or "off" for ``stream``
    (default: ``sys.stderr`` now); "auto" (True) is "bar" on a terminal or a Jupyter kernel, else "lines"."""
    if progress is False or progress is None:
        return "off"
    mode = "auto" if progress is True else str(progress)
    if mode not in MODES:
        raise ValueError(f"progress must be True, False or one of {', '.join(MODES)}; got {progress!r}")
    if mode != "auto":
        return mode
    stream = sys.stderr if stream is None else stream
    return "bar" if _interactive(stream) else "lines"


def _interactive(stream: Any) -> bool:
    if type(stream).__module__.startswith("ipykernel"):  # a notebook: tqdm.auto draws a widget there
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or file-less streams
        return False


def cli_progress(no_progress: bool) -> str:
    """The ``progress`` of a command line: ``--no-progress`` -> plain lines, else automatic."""
    return "lines" if no_progress else "auto"


class NullProgress:
    """A progress display that shows nothing (same interface as tqdm's bar)."""

    def __init__(self, total: Optional[int] = None, initial: int = 0) -> None:
        self.total, self.n = total, initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LineProgress(NullProgress):
    """Plain progress lines for log files: ``desc: epoch n/total (p%), key=value, ..., rate unit/s, time left``.

    A line is printed when the count has advanced by ``fraction`` of ``total`` since the last line, or
    ``interval_s`` seconds have passed (checked at each update), and always when the count reaches ``total`` (or, if
    it never does, on ``close``). ``set_postfix`` values appear in the next line.
    """

    def __init__(self, total: Optional[int], desc: str = "", initial: int = 0, unit: str = "epoch",
                 stream: Optional[TextIO] = None, fraction: float = 0.1, interval_s: float = 60.0,
                 clock=time.monotonic) -> None:
        super().__init__(total, initial)
        self.desc, self.unit, self.stream = desc, unit, stream
        self.interval_s, self.clock = float(interval_s), clock
        self.step = max(1, int(round(fraction * total))) if total else None
        self.postfix: dict = {}
        self.start_n, self.printed_n = initial, initial
        self.t0 = self.t_last = clock()
        self.closed = False

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def update(self, n: int = 1) -> None:
        self.n += n
        if n <= 0:
            return
        now = self.clock()
        if ((self.total is not None and self.n >= self.total) or now - self.t_last >= self.interval_s
                or (self.step is not None and self.n - self.printed_n >= self.step)):
            self._line(now)

    def close(self) -> None:
        if not self.closed and self.n != self.printed_n:
            self._line(self.clock())
        self.closed = True

    def _line(self, now: float) -> None:
        done = self.n - self.start_n
        elapsed = max(now - self.t0, 1e-9)
        rate = done / elapsed
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            head += f"{self.unit} {self.n}/{self.total} ({100.0 * self.n / self.total:.0f}%)"
        else:
            head += f"{self.unit} {self.n}"
        parts = [head] + [f"{k}={v}" for k, v in self.postfix.items()]
        parts.append(f"{rate:.3g} {self.unit}s/s" if rate >= 1 else f"{elapsed / max(done, 1):.3g} s/{self.unit}")
        if self.total and self.n >= self.total:
            parts.append(f"{_duration(elapsed)} in all")
        elif self.total and rate > 0:
            parts.append(f"{_duration((self.total - self.n) / rate)} left")
        stream = sys.stderr if self.stream is None else self.stream
        print(", ".join(parts), file=stream, flush=True)
        self.printed_n, self.t_last = self.n, now


def _duration(seconds: float) -> str:
    """``seconds`` as ``12 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_bar(total: Optional[int], desc: str = "", enabled: Progress = True, *, initial: int = 0,
                 unit: str = "epoch", stream: Optional[TextIO] = None, fraction: float = 0.1,
                 interval_s: float = 60.0, **tqdm_kwargs: Any):
    """A progress display for a loop of ``total`` steps (``unit``, e.g. epochs), started at ``initial``.

    ``enabled`` is the loop's ``progress`` argument (see the module docstring). Returns a tqdm bar, a
    :class:`LineProgress` (one line every ``fraction`` of ``total`` or ``interval_s`` seconds, and at the end) or a
    :class:`NullProgress`; all have ``update(n)``, ``set_postfix(**values)``, ``close()`` and the count ``n``.
    ``tqdm_kwargs`` go to tqdm only (e.g. ``dynamic_ncols=True``).

    Examples
    --------
    >>> import io
    >>> log = io.StringIO()
    >>> bar = progress_bar(20, "fit", "lines", stream=log)
    >>> for _ in range(20):
    ...     bar.set_postfix(loss="0.1", refresh=False)
    ...     bar.update(1)
    >>> bar.close()
    >>> len(log.getvalue().splitlines())
    10
    """
    mode = resolve_mode(enabled, stream)
    if mode == "off":
        return NullProgress(total, initial)
    if mode == "lines":
        return LineProgress(total, desc, initial=initial, unit=unit, stream=stream, fraction=fraction,
                            interval_s=interval_s)
    from tqdm.auto import tqdm

    kwargs = {"leave": False, **tqdm_kwargs}
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, **kwargs)


def progress_iter(iterable: Iterable, total: Optional[int] = None, desc: str = "", enabled: Progress = True,
                  **kwargs: Any) -> Iterator:
    """Iterate over ``iterable`` with a :func:`progress_bar` (one update per item; ``total`` defaults to
    ``len(iterable)``)."""
    if total is None:
        total = len(iterable)  # type: ignore[arg-type]
    bar = progress_bar(total, desc, enabled, **kwargs)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
