"""A paper's claim as a record, and its result at toy scale.

A claim is declared once, in its paper's module (`course/<family>/papers/<paper>.py`):

    CLAIM = Claim(
        paper="Shazeer et al. 2017",
        citation="Outrageously Large Neural Networks (arXiv:1701.06538), sec. 4 and Table 6",
        statement="the importance and load losses cut the coefficient of variation of the load",
        kind=REPRODUCTION,
        experiment=balancing_experiment,           # seed -> {name: number}
        thresholds=("cv_ratio >= 5", "idle_with == 0"),
        summary=lambda m: f"CV of the load {m['cv_without']:.2g} -> {m['cv_with']:.2g}",
    )

The verdict on a seed is that every threshold holds. A *reproduction* is a result that could have
come out otherwise; it is run on three seeds: the notebook runs the first, the tests the others, so
nothing is computed twice and a lucky seed cannot carry it. A *demonstration* holds by construction
(a count derived from sizes, an identity of the algorithm), is labelled as one, and runs on one seed,
in the notebook. `held_on` is what
the course reports after running every seed; the tests hold each seed's result to it, so a claim that
does not reproduce is reported as such, never tuned away.

Notebooks, `course claims`, the README's counts and the claim tests all read these records.
"""
import html
import importlib
import operator
import pkgutil
import re
import textwrap
import time
from dataclasses import dataclass, field
from typing import Callable

from course.registry import reference_for_auto
from course.train import one_thread

REPRODUCTION, DEMONSTRATION = "reproduction", "demonstration"
KINDS = (REPRODUCTION, DEMONSTRATION)
COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
               "==": operator.eq}
THRESHOLD = re.compile(r"^\s*(?P<name>\w+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<bound>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Threshold:
    """`name op bound` over one measured number, e.g. "cv_ratio >= 5"."""

    name: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> "Threshold":
        found = THRESHOLD.match(text)
        if found is None:
            raise ValueError(f"Threshold: expected 'name op number' with op one of "
                             f"{', '.join(COMPARISONS)}; got {text!r}.")
        return cls(found["name"], found["op"], float(found["bound"]))

    def holds(self, measured: dict) -> bool:
        if self.name not in measured:
            raise KeyError(f"threshold {self}: the experiment measured no {self.name!r}; it measured "
                           f"{', '.join(sorted(measured))}")
        return bool(COMPARISONS[self.op](measured[self.name], self.bound))

    def describe(self, measured: dict) -> str:
        return f"{self.name} = {measured[self.name]:.3g} (needs {self.op} {self.bound:g})"

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Claim:
    """A paper's claim: who says it, what it says, how it is measured and what decides it."""

    paper: str  # short citation, e.g. "Shazeer et al. 2017"
    citation: str  # title, arXiv id, and the section, equation or table the claim is from
    statement: str  # what the paper claims, paraphrased
    kind: str  # REPRODUCTION or DEMONSTRATION
    experiment: Callable[[int], dict]  # seed -> measured numbers
    thresholds: tuple  # Threshold or "name op bound" strings; all must hold for the verdict
    summary: Callable[[dict], str]  # measured -> one sentence with the numbers
    seeds: tuple | None = None  # None: (0, 1, 2) for a reproduction, (0,) for a demonstration
    held_on: tuple | None = None  # seeds on which the course reports the claim holding; None: all
    note: str = ""  # what the toy leaves out, or why a claim does not reproduce here

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.paper!r}: `kind` must be one of {KINDS}; got {self.kind!r}.")
        if self.seeds is None:
            object.__setattr__(self, "seeds", (0, 1, 2) if self.kind == REPRODUCTION else (0,))
        if self.kind == REPRODUCTION and len(self.seeds) < 3:
            raise ValueError(f"Claim {self.paper!r}: a reproduction runs on at least 3 seeds; "
                             f"got {self.seeds}.")
        object.__setattr__(self, "thresholds", tuple(
            t if isinstance(t, Threshold) else Threshold.parse(t) for t in self.thresholds))
        held = self.seeds if self.held_on is None else tuple(self.held_on)
        if not set(held) <= set(self.seeds):
            raise ValueError(f"Claim {self.paper!r}: `held_on` must be among the seeds {self.seeds}; "
                             f"got {held}.")
        object.__setattr__(self, "held_on", held)

    @property
    def id(self) -> str:
        """'<family>.<paper module>', e.g. 'moe.sparsely_gated'."""
        parts = self.experiment.__module__.split(".")
        return f"{parts[1]}.{parts[-1]}" if parts[0] == "course" else self.experiment.__module__

    @property
    def family(self) -> str:
        return self.id.split(".")[0]

    @property
    def reproduced(self) -> bool:
        """The course's verdict over every seed: the claim held on all of them."""
        return set(self.held_on) == set(self.seeds)

    @property
    def verdict(self) -> str:
        if self.kind == DEMONSTRATION:
            return "demonstrated" if self.reproduced else "NOT demonstrated"
        return "reproduced" if self.reproduced else "NOT reproduced"

    def seeds_held(self) -> str:
        return f"{len(self.held_on)} of {len(self.seeds)}"


@dataclass
class Result:
    """One run of a claim's experiment on one seed."""

    claim: Claim
    seed: int
    measured: dict
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return all(t.holds(self.measured) for t in self.claim.thresholds)

    @property
    def failed(self) -> list[Threshold]:
        return [t for t in self.claim.thresholds if not t.holds(self.measured)]

    def verdict_here(self) -> str:
        return f"{'holds' if self.holds else 'does not hold'} (seed {self.seed})"

    def fields(self) -> dict:
        """The columns of a claims table: paper, statement, measured, verdict, kind, seeds."""
        c = self.claim
        needs = "; ".join(t.describe(self.measured) for t in c.thresholds)
        return {"paper": c.paper, "claim": c.statement, "measured here": self.claim.summary(self.measured),
                "thresholds": needs, "verdict": f"{self.verdict_here()}; {c.verdict}: held on "
                                                f"{c.seeds_held()} seeds", "kind": c.kind,
                "note": c.note}

    def __repr__(self) -> str:
        return text_table([self])

    def _repr_html_(self) -> str:
        return html_table([self])


class Results(list):
    """Claim results shown as one table (text in a terminal, HTML in a notebook)."""

    def __repr__(self) -> str:
        return text_table(self)

    def _repr_html_(self) -> str:
        return html_table(self)


def text_table(results, width: int = 100) -> str:
    """Each result as a block of labelled lines, wrapped at word boundaries."""
    blocks = []
    for r in results:
        f = r.fields()
        lines = [f"{f['paper']}  [{f['kind']}]"]
        for label in ("claim", "measured here", "thresholds", "verdict", "note"):
            lines += textwrap.wrap(f[label], width=width, initial_indent=f"  {label:<14}",
                                   subsequent_indent=" " * 16, break_on_hyphens=False)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def html_table(results) -> str:
    """The results as an HTML table of three columns (paper and kind; claim and measurement;
    verdict), which stays readable in a narrow notebook."""
    head = "".join(f"<th style='text-align:left'>{h}</th>"
                   for h in ("paper", "the claim, and what was measured here", "verdict"))
    rows = []
    for r in results:
        f = r.fields()
        color = "#1a7f37" if r.holds and r.seed in r.claim.held_on else "#b35900"
        note = f"<br><i>{html.escape(f['note'])}</i>" if f["note"] else ""
        cells = [f"<b>{html.escape(f['paper'])}</b><br><small>{html.escape(r.claim.citation)}</small>"
                 f"<br><small>[{html.escape(f['kind'])}]</small>",
                 f"{html.escape(f['claim'])}<br><b>Measured:</b> {html.escape(f['measured here'])}{note}",
                 f"<b style='color:{color}'>{html.escape(r.verdict_here())}</b><br>"
                 f"{html.escape(r.claim.verdict)}: held on {r.claim.seeds_held()} seeds<br>"
                 f"<small>{html.escape(f['thresholds'])}</small>"]
        rows.append("<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>{c}</td>"
                                     for c in cells) + "</tr>")
    columns = "".join(f"<col style='width:{w}'>" for w in ("21%", "52%", "27%"))
    return (f"<table style='width:100%;table-layout:fixed'><colgroup>{columns}</colgroup>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def of_family(package: str) -> list[Claim]:
    """Every claim declared in `course/<package>/papers/*.py` (module CLAIM), by module name."""
    try:
        papers = importlib.import_module(f"course.{package}.papers")
    except ModuleNotFoundError:
        return []
    found = []
    for info in sorted(pkgutil.iter_modules(papers.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{papers.__name__}.{info.name}")
        if isinstance(getattr(module, "CLAIM", None), Claim):
            found.append(module.CLAIM)
    return found


def all_claims() -> list[Claim]:
    """The claims of every family, family by family."""
    from course import families

    return [c for f in families.discovered() for c in of_family(f.package)]


def get(claim_id: str) -> Claim:
    """The claim 'family.paper', e.g. 'moe.smear'."""
    family = claim_id.split(".")[0]
    for claim in of_family(family):
        if claim.id == claim_id:
            return claim
    known = ", ".join(c.id for c in all_claims())
    raise KeyError(f"no claim {claim_id!r}; known claims: {known}")


_RESULTS: dict = {}  # (claim id, seed) -> Result, so a claim is never computed twice in a process


def run(claim, seed: int | None = None) -> Result:
    """The claim's result on `seed` (its first seed by default), computed once per process.

    The experiment runs on one intra-op thread (toy tensors gain nothing from a second one), with
    `auto` running each op's reference: the numbers do not depend on the machine's benchmark records.
    """
    claim = get(claim) if isinstance(claim, str) else claim
    seed = claim.seeds[0] if seed is None else seed
    key = (claim.id, seed)
    if key not in _RESULTS:
        start = time.perf_counter()
        with one_thread(), reference_for_auto():
            measured = claim.experiment(seed)
        _RESULTS[key] = Result(claim, seed, measured, time.perf_counter() - start)
    return _RESULTS[key]


def counts(records) -> str:
    """'13 claims: 11 reproductions (8 reproduced on every seed), 2 demonstrations'."""
    reproductions = [c for c in records if c.kind == REPRODUCTION]
    demonstrations = len(records) - len(reproductions)

    def plural(n: int, word: str) -> str:
        return f"{n} {word}" + ("" if n == 1 else "s")

    return (f"{plural(len(records), 'claim')}: {plural(len(reproductions), 'reproduction')} "
            f"({sum(c.reproduced for c in reproductions)} reproduced on every seed), "
            f"{plural(demonstrations, 'demonstration')}")


@dataclass
class Summary:
    """A family's claims with the results computed in this process (first seed), as one table."""

    results: Results
    not_run: list = field(default_factory=list)

    def __repr__(self) -> str:
        return repr(self.results) + self._footer()

    def _repr_html_(self) -> str:
        return self.results._repr_html_() + f"<p>{html.escape(self._footer().strip())}</p>"

    def _footer(self) -> str:
        line = f"\n\n{counts([r.claim for r in self.results])}."
        if self.not_run:
            line += f" Not run here: {', '.join(self.not_run)}."
        return line


def summary(package: str) -> Summary:
    """The table of a family's claims, from the results this process computed on their first seed,
    in the order they were computed (a notebook's order)."""
    family = of_family(package)
    first_seed = {(c.id, c.seeds[0]) for c in family}
    results = Results(r for key, r in _RESULTS.items() if key in first_seed)
    done = {r.claim.id for r in results}
    return Summary(results, [c.id for c in family if c.id not in done])
