"""A paper's claim, reproduced at toy scale: the statement, the numbers measured here, the verdict.

Each family's experiments return `Claim`s; the notebook prints them next to the paper's statement, and
the tests assert `holds` (and the numbers, with a margin), so a wrong implementation cannot pass.
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class Claim:
    paper: str  # short citation, e.g. "Shazeer et al. 2017"
    statement: str  # what the paper claims, paraphrased
    summary: str  # one sentence with the numbers measured here
    holds: bool  # whether the toy result agrees with the statement, by the margin the tests use
    measured: dict = field(default_factory=dict)  # name -> number
    seconds: float = 0.0  # wall time of the experiment

    def __repr__(self) -> str:
        verdict = "reproduced" if self.holds else "NOT reproduced"
        return (f"{self.paper}\n  claim:    {self.statement}\n  measured: {self.summary}\n"
                f"  verdict:  {verdict}")


class timed:
    """Context manager measuring the seconds an experiment takes: `with timed() as t: ...; t.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


@contextmanager
def one_thread():
    """Run a toy experiment on one intra-op thread, then restore the setting (also a decorator).

    On tensors this small a second thread only adds fork/join waits, and `time.process_time()` then
    counts the work itself.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
