"""Packaging: the README's two commands, .ci/run, Binder and pyproject.toml agree."""
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def binder_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-") and line != ".":
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_binder_pins_every_dependency_within_pyproject_ranges():
    required = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in ("triton", "bench"):  # Binder runs the kernels' cells and the peer benchmarks too
        required += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    pins = binder_pins()
    assert set(pins) == {canonicalize_name(r.name) for r in required}
    for r in required:
        pinned = Version(pins[canonicalize_name(r.name)])
        assert r.specifier.contains(pinned, prereleases=True), f"binder pins {r.name}=={pinned}, pyproject wants {r.specifier}"


def test_binder_installs_the_package_and_cpu_torch():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "." in lines  # the package itself (repo2docker ignores pyproject.toml here)
    assert binder_pins()["torch"].endswith("+cpu")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert "TRITON_INTERPRET=1" in (ROOT / "binder" / "start").read_text()


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    open_course, run_tests = readme_commands()
    assert "pip install torch==2.13.0" in open_course and "course lab" in open_course
    assert "pip install torch==2.13.0" in run_tests and "pytest" in run_tests
    ci = (ROOT / ".ci" / "run").read_text()
    for step in run_tests.split("&&"):  # CI times the install apart from the tests
        assert step.strip() in ci, step


def test_no_command_installs_unpinned_torch():
    for text in [*readme_commands(), (ROOT / ".ci" / "run").read_text()]:
        for match in re.finditer(r"pip install ([^\n&|;]+)", text):
            words = match.group(1).split()
            assert "torch" not in words, f"unpinned torch in: {match.group(0)}"


def test_binder_badges_point_at_the_repository():
    repo = PYPROJECT["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    files = [ROOT / "README.md", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in files:
        for found in re.findall(r"mybinder\.org/v2/gh/([^/]+/[^/]+)/", path.read_text()):
            assert found == repo, f"{path.name} links Binder to {found}, the repository is {repo}"


SHIPPED = {".py", ".cu", ".cuh", ".cpp", ".h", ".md"}


def test_wheel_ships_every_family_folder_and_its_data(tmp_path):
    """No family is listed in pyproject: setup.py finds every package, so a new family ships as is."""
    import subprocess
    import sys
    import zipfile

    from course import families

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("course-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"course/registry.py", "course/catalog/FAMILIES.md", "course/widgets/routing.py"}
    for family in families.discovered():
        folders = [(family.folder, f"course/{family.package}")]
        if family.kernels:
            folders.append((family.kernels, f"course/kernels/{family.package}"))
        for folder, prefix in folders:
            files = [f for f in folder.rglob("*") if f.suffix in SHIPPED and "__pycache__" not in f.parts]
            assert files, folder
            expected |= {f"{prefix}/{f.relative_to(folder).as_posix()}" for f in files}
    # the kernels shared by families (kernels/streaming_softmax.cu and its loaders) sit at the top of kernels/
    expected |= {f"course/kernels/{f.name}" for f in (ROOT / "kernels").glob("*") if f.suffix in SHIPPED}
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}"


def test_readme_tables_are_current():
    """The README's families and ops tables are generated (`course readme --write`), never typed."""
    from course import overview

    text = (ROOT / "README.md").read_text()
    assert overview.render_readme(text, overview.readme_sections(ROOT)) == text, \
        "README.md is stale: run `course readme --write`"
