"""The course's tables, generated from the registry, the claim records and FAMILIES.md.

The index notebook shows them, and `course readme --write` writes them into README.md between
`<!-- generated: NAME -->` and `<!-- end: NAME -->`; a test fails when the README is stale. Nothing
here is typed by hand: a count, a list of ops or a file path comes from what is in the checkout.
"""
import importlib
import re
from pathlib import Path

from course import catalog, claims, registry
from course.show import source_path

PRIORITY_WORDS = {"A": "essential", "B": "good to know", "C": "reading list"}


def impl_files(impl: registry.Impl) -> str:
    """The file of an implementation, and for a CUDA backend the .cu sources it compiles."""
    module = impl.target.partition(":")[0]
    path = f"`{source_path(module)}`"
    if impl.kind == "cuda":
        backend = importlib.import_module(module)
        sources = list(getattr(backend, "SOURCES", ()))
        for shared in getattr(backend, "CUDA_MODULES", ()):  # the shared extensions it calls
            sources += getattr(importlib.import_module(shared), "SOURCES", ())
        cu = [s for s in sources if s.endswith(".cu")]
        if cu:
            path += " (" + ", ".join(f"`{s}`" for s in cu) + ")"
    return path


def ops_table(family: str | None = None) -> str:
    """op | reference | variants | triton | cuda, with the files on disk."""
    rows = ["| op | what it computes | reference | variants | triton | cuda |", "|---|---|---|---|---|---|"]
    for op in registry.all_ops(family):
        by_kind = {kind: [i for i in op.impls[1:] if i.kind == kind] for kind in ("torch", "triton", "cuda")}
        variants = ", ".join(f"`{i.backend}` ({impl_files(i)})" for i in by_kind["torch"]) or "-"
        cells = [f"`{op.name}`", op.doc, impl_files(op.reference), variants,
                 ", ".join(impl_files(i) for i in by_kind["triton"]) or "-",
                 ", ".join(impl_files(i) for i in by_kind["cuda"]) or "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def claim_counts(package: str | None) -> str:
    """The family's claims counted by kind and verdict (`claims.counts`), or '-' while it has none."""
    records = claims.of_family(package) if package else []
    return claims.counts(records) if records else "-"


def families_table(notebooks_dir: Path | None, link_prefix: str = "") -> str:
    """Every family: what it teaches, its papers by priority, its claims, its status."""
    rows = ["| # | family | what it teaches | papers (A/B/C) | claims | status |",
            "|---|---|---|---|---|---|"]
    for f in catalog.families():
        by_priority = "/".join(str(sum(p.priority == x for p in f.papers)) for x in "ABC")
        state = catalog.status(f, notebooks_dir)
        if state == "notebook":
            state = f"[{f.notebook_name}]({link_prefix}{f.notebook_name})"
        teaches = f.teaches.replace("|", "\\|")
        rows.append(f"| {f.number} | **{f.name}** (`{f.id}`) | {teaches} | {len(f.papers)} "
                    f"({by_priority}) | {claim_counts(catalog.package_of(f.id))} | {state} |")
    return "\n".join(rows)


def priorities_line() -> str:
    return "; ".join(f"**{p}** {PRIORITY_WORDS[p]}: {text}" for p, text in catalog.PRIORITIES.items())


def readme_sections(root: Path) -> dict[str, str]:
    """The generated sections of README.md, by name."""
    return {"families": families_table(root / "notebooks", link_prefix="notebooks/") + "\n\n"
                        + priorities_line() + ".",
            "ops": ops_table()}


SECTION = re.compile(r"(<!-- generated: (?P<name>\w+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)


def render_readme(text: str, sections: dict[str, str]) -> str:
    """README text with every generated section replaced by its current content."""
    missing = set(sections) - {m["name"] for m in SECTION.finditer(text)}
    if missing:
        raise ValueError(f"README.md lacks the generated sections {sorted(missing)}: add "
                         "'<!-- generated: NAME -->' and '<!-- end: NAME -->' lines")
    return SECTION.sub(lambda m: m.group(1) + sections[m["name"]] + "\n" + m.group(4), text)
