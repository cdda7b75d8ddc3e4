"""The course map: the paper families of `catalog/FAMILIES.md` and what exists for each of them.

`FAMILIES.md` (vendored from the course's paper list) groups every paper into one of twenty families.
This module parses it, and derives each family's status from the repository itself: whether its
notebook exists, whether its folder exists (`course.families`), which ops it registers and which
backends those ops have.
"""
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from course import families as folders
from course import registry

FAMILIES_MD = Path(__file__).parent / "catalog" / "FAMILIES.md"
PRIORITIES = {"A": "implemented, with its claim checked at toy scale",
              "B": "implemented where it fits the notebook's budget, else a paragraph and a pointer",
              "C": "a paragraph and a pointer"}


@dataclass(frozen=True)
class Paper:
    title: str
    idea: str
    implement: str
    kernel: str
    priority: str  # A essential, B good, C reading list


@dataclass(frozen=True)
class Family:
    number: int
    id: str  # e.g. "moe-routing"
    name: str
    widget: str
    teaches: str
    papers: tuple[Paper, ...]

    @property
    def notebook_name(self) -> str:
        return f"{self.number:02d}_{self.id.replace('-', '_')}.ipynb"


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row; an escaped bar (\\|) stays inside its cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _papers(section: str) -> tuple[Paper, ...]:
    rows = [_cells(line) for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| title")]
    return tuple(Paper(title=r[0], idea=r[2], implement=r[3], kernel=r[4], priority=r[5])
                 for r in rows if len(r) == 6)


@functools.cache
def families() -> tuple[Family, ...]:
    """The twenty families, in course order, with their papers."""
    text = FAMILIES_MD.read_text(encoding="utf-8")
    summary = text.split("## 2. Summary table")[1].split("## 3.")[0]
    sections = re.split(r"^### 3\.\d+ ", text.split("## 3. Families")[1].split("## 4.")[0],
                        flags=re.M)[1:]
    papers_of = {s.split("`")[1]: _papers(s) for s in sections}
    out = []
    for line in summary.splitlines():
        cells = _cells(line)
        if len(cells) == 6 and cells[0].isdigit():
            family_id = cells[1].strip("`")
            out.append(Family(int(cells[0]), family_id, cells[2], cells[4], cells[5],
                              papers_of[family_id]))
    return tuple(out)


def family(key: str) -> Family:
    """A family by id ('moe-routing'), by number ('1') or by its library package's name ('moe')."""
    for f in families():
        if key in (f.id, str(f.number), package_of(f.id)):
            return f
    raise KeyError(f"no family {key!r}; known: {', '.join(f.id for f in families())}")


def package_of(family_id: str) -> str | None:
    """The family's folder under course/ ('moe-routing' -> 'moe'), None while it has none."""
    folder = folders.by_id(family_id)
    return folder.package if folder else None


def ops_of(family_id: str) -> list[registry.Op]:
    package = package_of(family_id)
    return registry.all_ops(package) if package else []


def status(f: Family, notebooks_dir: Path | None) -> str:
    """'notebook' when its notebook exists, 'library' when only code does, else 'planned'."""
    if notebooks_dir is not None and (notebooks_dir / f.notebook_name).exists():
        return "notebook"
    return "library" if package_of(f.id) else "planned"
