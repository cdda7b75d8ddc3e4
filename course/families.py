"""A family is registered by its folder: `course/<package>/`, whose `__init__.py` names its id.

    course/<package>/__init__.py    FAMILY = "<id in FAMILIES.md>", WIDGET = "module:function"
    course/<package>/ops.py         the family's ops, registered at import
    course/<package>/exercises.py   EXERCISES: the notebook's exercises and their solutions
    course/<package>/papers/*.py    one module per paper, each with its CLAIM
    kernels/<package>/              the Triton and CUDA kernels (course.kernels.<package>)
    notebooks/NN_<id>.ipynb         NN is the family's number in FAMILIES.md
    tests/<package>/                the family's tests

Nothing else lists the families: the registry, the catalog, `course claims`, the wheel (setup.py)
and the tests all start from `discovered()`. The constants are read from the source (not imported),
so discovering the families imports none of them.
"""
import ast
import functools
from dataclasses import dataclass
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent
KERNELS_DIR = COURSE_DIR.parent / "kernels"  # in a source checkout; in a wheel, course/kernels
if not KERNELS_DIR.is_dir():
    KERNELS_DIR = COURSE_DIR / "kernels"


@dataclass(frozen=True)
class FamilyPackage:
    """What a family folder declares and holds."""

    package: str  # import name under course, e.g. "moe"
    id: str  # the family id of FAMILIES.md, e.g. "moe-routing"
    widget: str | None  # "module:function" building the family's widget for the gallery
    folder: Path

    @property
    def family(self) -> str:
        """The short name that ops and claims use for their family ('moe' in 'moe.dispatch')."""
        return self.package

    @property
    def has_ops(self) -> bool:
        return (self.folder / "ops.py").exists()

    @property
    def kernels(self) -> Path | None:
        folder = KERNELS_DIR / self.package
        return folder if (folder / "__init__.py").exists() else None


def constants(init: Path) -> dict:
    """The string constants assigned at the top level of a module, read without importing it."""
    found = {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


@functools.cache
def discovered() -> tuple[FamilyPackage, ...]:
    """Every family folder under course/, sorted by package name.

    A package directly under course/ is a family: one without FAMILY is an error, not skipped.
    """
    out = []
    for init in sorted(COURSE_DIR.glob("*/__init__.py")):
        declared = constants(init)
        if "FAMILY" not in declared:
            raise ValueError(f"{init.relative_to(COURSE_DIR.parent)}: a package under course/ is a "
                             "family folder and must set FAMILY = '<family id in FAMILIES.md>'.")
        out.append(FamilyPackage(init.parent.name, declared["FAMILY"], declared.get("WIDGET"),
                                 init.parent))
    return tuple(out)


def by_id(family_id: str) -> FamilyPackage | None:
    """The folder of a family id ('moe-routing'), or None while the family has none."""
    return next((f for f in discovered() if f.id == family_id), None)
