"""`show(fn)`: display the source of a library function in a notebook, highlighted."""
import inspect


class Source:
    """A function's source code that renders highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, text: str, origin: str):
        self.text, self.origin = text, origin

    def __repr__(self) -> str:
        return f"# {self.origin}\n{self.text}"

    def _repr_markdown_(self) -> str:
        return f"`{self.origin}`\n```python\n{self.text}```"


def show(obj) -> Source:
    """The source of a function, class or module from the course library, with where it lives."""
    module = inspect.getmodule(obj)
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", ""))
    origin = f"{module.__name__}.{name}" if module and module is not obj else name
    return Source(inspect.getsource(obj), origin)
