"""The course map parsed from FAMILIES.md, and the statuses derived from what exists."""
from pathlib import Path

import pytest

from course import catalog, claims, exercises, families, registry

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "papers" / "FAMILIES.md"


def test_twenty_families_and_every_placed_paper():
    families = catalog.families()
    assert [f.number for f in families] == list(range(1, 21))
    assert sum(len(f.papers) for f in families) == 314  # section 5 of FAMILIES.md


def test_paper_counts_match_the_count_table():
    text = catalog.FAMILIES_MD.read_text()
    table = text.split("## 5. Count verification")[1]
    for f in catalog.families():
        assert f"| `{f.id}` | {len(f.papers)} |" in table, f.id


def test_every_paper_row_is_parsed_whole():
    for f in catalog.families():
        for p in f.papers:
            assert p.priority in ("A", "B", "C"), (f.id, p.title)
            assert p.title and p.idea and p.implement, (f.id, p.title)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/papers/FAMILIES.md is not beside this checkout")
def test_vendored_list_is_the_course_list():
    assert catalog.FAMILIES_MD.read_bytes() == SHARED.read_bytes()


def test_status_is_derived_from_the_checkout(tmp_path):
    moe = catalog.family("moe")
    assert moe.id == "moe-routing" and catalog.family("1") is moe
    assert catalog.status(moe, ROOT / "notebooks") == "notebook"
    assert catalog.status(moe, tmp_path) == "library"  # code, but no notebook in that folder
    assert catalog.status(catalog.family("learning-dynamics"), ROOT / "notebooks") == "planned"
    assert {op.name for op in catalog.ops_of("moe-routing")} == {
        op.name for op in registry.all_ops("moe")}


def test_every_notebook_belongs_to_a_family():
    names = {f.notebook_name for f in catalog.families()}
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert path.name == "00_index.ipynb" or path.name in names, f"{path.name} is not named after a family of FAMILIES.md"
    with pytest.raises(KeyError, match="no family 'nope'"):
        catalog.family("nope")


def test_every_family_folder_is_found_and_named_in_the_course_list():
    """A family is its folder: every package under course/, kernels/ and tests/ must be one."""
    found = {f.package for f in families.discovered()}
    packages = {p.parent.name for p in (ROOT / "course").glob("*/__init__.py")}
    assert packages == found
    ids = {f.id for f in catalog.families()}
    for f in families.discovered():
        assert f.id in ids, f"course/{f.package}: FAMILY = {f.id!r} is not a family of FAMILIES.md"
        assert catalog.package_of(f.id) == f.package
        assert (ROOT / "notebooks" / catalog.family(f.id).notebook_name).exists(), f.package
        assert (ROOT / "tests" / f.package).is_dir(), f"tests/{f.package}/ holds the family's tests"
    for folder in (ROOT / "kernels", ROOT / "tests"):
        for sub in folder.iterdir():
            if sub.is_dir() and any(sub.glob("*.py")) and sub.name not in ("cuda_emulator", "__pycache__"):
                assert sub.name in found, f"{sub.relative_to(ROOT)} matches no family folder"


def test_a_package_without_family_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "__init__.py").write_text("X = 1\n")
    monkeypatch.setattr(families, "COURSE_DIR", tmp_path)
    families.discovered.cache_clear()
    try:
        with pytest.raises(ValueError, match="must set FAMILY"):
            families.discovered()
    finally:
        families.discovered.cache_clear()


def test_each_family_registers_ops_claims_exercises_and_a_widget():
    for f in families.discovered():
        assert f.has_ops and registry.all_ops(f.package), f.package
        assert claims.of_family(f.package), f.package
        assert len(exercises.of_family(f.package)) >= 3, f"{f.package}: at least 3 exercises"
        assert f.widget and ":" in f.widget, f"{f.package}: WIDGET = 'module:function'"
