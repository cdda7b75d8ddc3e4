"""`show(fn)`: display the source of a library function or kernel in a notebook, highlighted.

A target can be the object itself or a "module:name" string; the string form reads the source file
without importing it, so a Triton kernel can be shown on a machine where Triton is not installed, and
"package:file.cu" shows a CUDA or C++ file that lives beside a package's modules.
"""
import ast
import importlib.util
import inspect
from pathlib import Path


SOURCE_FILES = {".cu": "cuda", ".cpp": "cpp", ".h": "cpp"}
FOLDER_OF = {"course.kernels": "kernels", "course.widgets": "widgets", "course": "course"}


def source_path(module: str) -> str:
    """The file of a module in the checkout: 'course.kernels.moe.cuda_moe' -> 'kernels/moe/cuda_moe.py'."""
    for prefix, folder in FOLDER_OF.items():
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix) + 1:].replace(".", "/")
            return f"{folder}/{rest}.py" if rest else f"{folder}/__init__.py"
    raise ValueError(f"source_path: {module!r} is not a module of the course")


class Source:
    """Source code that renders highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, text: str, origin: str, language: str = "python"):
        self.text, self.origin, self.language = text, origin, language

    def __repr__(self) -> str:
        comment = "#" if self.language == "python" else "//"
        return f"{comment} {self.origin}\n{self.text}"

    def _repr_markdown_(self) -> str:
        return f"`{self.origin}`\n```{self.language}\n{self.text}```"


def _source_from_file(target: str) -> Source:
    module, _, name = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"show: no module {module!r} (from target {target!r})")
    if Path(name).suffix in SOURCE_FILES:  # a CUDA/C++ file beside the package's modules
        path = Path(spec.origin).parent / name
        folder = source_path(module).removesuffix("/__init__.py").removesuffix(".py")  # the package's folder
        return Source(path.read_text(), f"{folder}/{name}", SOURCE_FILES[path.suffix])
    text = Path(spec.origin).read_text()
    if not name:
        return Source(text, module)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines = text.splitlines(keepends=True)[first - 1:node.end_lineno]
            return Source("".join(lines), f"{module}.{name}")
    raise ValueError(f"show: {module} defines no function or class {name!r}")


def show(target) -> Source:
    """The source of a function, class, kernel or module: an object or a "module:name" string."""
    if isinstance(target, str):
        return _source_from_file(target)
    target = getattr(target, "fn", target)  # a Triton kernel wraps the Python function as .fn
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isclass(target)
            or inspect.ismodule(target)):
        raise TypeError(f"show: `target` must be a function, class, kernel or module, or a "
                        f"'module:name' string; got {type(target).__name__} {target!r:.60}.")
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as error:  # built in, or defined where no file holds the source
        raise TypeError(f"show: no Python source for {target!r:.60} ({error}).") from None
    module = inspect.getmodule(target)
    name = getattr(target, "__qualname__", getattr(target, "__name__", ""))
    origin = f"{module.__name__}.{name}" if module and module is not target else name
    return Source(source, origin)
