"""The op registry: every computation that has more than one implementation.

An op is `<family>.<op>` (e.g. `moe.dispatch`). It names its implementations by "module:function"
strings and imports them only when asked, so importing `course` never imports Triton or compiles
CUDA. All backends of an op share one signature; the first one is the reference, the spec the others
are checked against. An op also carries what its one test harness and its one benchmark runner need:
an input maker, test cases (awkward shapes included), benchmark cases, a tolerance, and which inputs'
gradients are compared.

Backend kinds: "torch" runs anywhere; "triton" runs compiled on a GPU, or on the CPU under the
Triton interpreter (TRITON_INTERPRET=1, set before the kernel module is imported); "cuda" needs a GPU
and nvcc. `auto` picks the fastest kind available for the inputs' device: cuda, then compiled
Triton, then the reference.
"""
import functools
import importlib
import inspect
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable

import torch

AUTO_ORDER = ("cuda", "triton", "torch")


@dataclass(frozen=True)
class Impl:
    """One implementation of an op: a backend name, where its function lives, and its kind."""

    backend: str
    target: str  # "module:function"
    kind: str = "torch"  # "torch" | "triton" | "cuda"
    devices: tuple[str, ...] = ("cpu", "cuda")  # where benchmarking it makes sense

    def load(self) -> Callable:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        """Whether this implementation can run on `device` here, and if not, why."""
        return backend_availability(self.kind, device)


@functools.cache
def triton_importable() -> bool:
    """Whether `import triton` works here (importing it does not fix the interpreter setting)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_mode() -> str | None:
    """'compiled' on a CUDA GPU, 'interpreter' under TRITON_INTERPRET=1, None without Triton."""
    if not triton_importable():
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "interpreter"
    return "compiled" if torch.cuda.is_available() else None


def prepare_triton() -> str:
    """Turn on the Triton interpreter where there is no GPU; call before any kernel is imported.

    Returns how Triton kernels will run here: 'compiled', 'interpreter' or 'unavailable'.
    """
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return triton_mode() or "unavailable"


def backend_availability(kind: str, device: str = "cpu") -> tuple[bool, str]:
    """Whether a backend kind runs on `device` ('cpu' or 'cuda') on this machine, and why not."""
    on_gpu = torch.device(device).type == "cuda"
    if kind == "torch":
        return True, ""
    if kind == "triton":
        mode = triton_mode()
        if mode is None:
            if not triton_importable():
                return False, "Triton is not installed (pip install 'course[triton]')"
            return False, "no CUDA GPU, and TRITON_INTERPRET=1 was not set for the CPU interpreter"
        if mode == "interpreter" and on_gpu:
            return False, "the Triton interpreter runs on CPU tensors only"
        if mode == "compiled" and not on_gpu:
            return False, "compiled Triton needs CUDA tensors"
        return True, ""
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA GPU (the .cu sources are still compiled by nvcc in the tests)"
        if shutil.which("nvcc") is None and not os.environ.get("CUDA_HOME"):
            return False, "nvcc not found: install the CUDA toolkit or set CUDA_HOME"
        if not on_gpu:
            return False, "CUDA kernels need CUDA tensors"
        return True, ""
    raise ValueError(f"unknown backend kind {kind!r}; expected one of {AUTO_ORDER}")


@dataclass(frozen=True)
class Case:
    """A named set of parameters for an op's input maker."""

    name: str
    params: dict
    devices: tuple[str, ...] = ("cpu", "cuda")  # where a benchmark case runs


@dataclass(frozen=True)
class Op:
    """An op: its implementations (reference first) and what the harness and the benchmark need."""

    name: str
    doc: str
    impls: tuple[Impl, ...]
    make_inputs: Callable[[dict, torch.Generator], dict]  # params, generator -> keyword arguments
    test_cases: tuple[Case, ...]
    bench_cases: tuple[Case, ...] = ()
    tol: float = 1e-5  # RMS-relative error allowed against the reference
    grad_inputs: tuple[str, ...] = ()  # inputs whose gradients are compared
    bytes_moved: Callable[[dict, object], int] | None = None  # kwargs, output -> bytes read+written
    notes: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def reference(self) -> Impl:
        return self.impls[0]

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(impl.backend for impl in self.impls)

    def impl(self, backend: str) -> Impl:
        for impl in self.impls:
            if impl.backend == backend:
                return impl
        raise ValueError(f"{self.name}: unknown backend {backend!r}; expected 'auto' or one of "
                         f"{self.backends}.")

    def resolve(self, backend: str = "auto", device="cpu") -> Impl:
        """The implementation `backend` names; `auto` picks the fastest one available on `device`."""
        if backend != "auto":
            impl = self.impl(backend)
            ok, why = impl.availability(str(device))
            if not ok:
                raise RuntimeError(f"{self.name}: backend {backend!r} cannot run here: {why}.")
            return impl
        for kind in AUTO_ORDER:
            for impl in self.impls:
                if impl.kind != kind or not impl.availability(str(device))[0]:
                    continue
                if kind == "triton" and triton_mode() != "compiled":
                    continue  # the interpreter checks kernels; it is never the fast choice
                return impl
        return self.reference

    def __call__(self, *args, backend: str = "auto", **kwargs):
        device = next((a.device for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)),
                      "cpu")
        return self.resolve(backend, device).load()(*args, **kwargs)


_REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Add an op to the registry (each family's `ops.py` calls this at import)."""
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise ValueError(f"op {op.name!r} is registered twice")
    _REGISTRY[op.name] = op
    return op


def _load_families():
    """Import every family's ops module: `course/<family>/ops.py` registers its ops."""
    from course import families

    for family in families.discovered():
        if family.has_ops:
            importlib.import_module(f"course.{family.package}.ops")


def get(name: str) -> Op:
    """The op called `name`, e.g. 'moe.dispatch'."""
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(f"no op named {name!r}; known ops: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def all_ops(family: str | None = None) -> list[Op]:
    """Every registered op, or those of one family ('moe'), sorted by name."""
    _load_families()
    return [op for name, op in sorted(_REGISTRY.items()) if family in (None, op.family)]


def signature_of(impl: Impl) -> inspect.Signature:
    """The call signature of an implementation (loads it)."""
    return inspect.signature(impl.load())
