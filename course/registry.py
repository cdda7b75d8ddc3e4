"""The op registry: every computation that has more than one implementation.

An op is `<family>.<op>` (e.g. `moe.dispatch`). It names its implementations by "module:function"
strings and imports them only when asked, so importing `course` never imports Triton or compiles
CUDA. All backends of an op share one signature; the first one is the reference, the spec the others
are checked against. An op also carries what its one test harness and its one benchmark runner need:
an input maker, test cases (awkward shapes included), benchmark cases, a tolerance, and which inputs'
gradients are compared.

Backend kinds: "torch" runs anywhere; "triton" runs compiled on a GPU, or on the CPU under the
Triton interpreter (TRITON_INTERPRET=1, set before the kernel module is imported); "cuda" needs a GPU
and nvcc. Each backend declares the floating dtypes it supports; the harness runs every one of them
and checks that the others are refused. `auto` picks, among the backends that run on the inputs'
device and support their dtype, the fastest by this device's benchmark records where they exist,
else the first of cuda, compiled Triton, the reference; `Op.choose` says why.
"""
import contextvars
import functools
import importlib
import importlib.util
import inspect
import math
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

AUTO_ORDER = ("cuda", "triton", "torch")
_AUTO_RUNS_REFERENCE = contextvars.ContextVar("auto_runs_reference", default=False)
FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # the harness's dtype axis


@dataclass(frozen=True)
class Impl:
    """One implementation of an op: a backend name, where its function lives, and its kind."""

    backend: str
    target: str  # "module:function"
    kind: str = "torch"  # "torch" | "triton" | "cuda"
    devices: tuple[str, ...] = ("cpu", "cuda")  # where benchmarking it makes sense
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)  # floating dtypes it computes correctly
    interpreted_dtypes: tuple[torch.dtype, ...] | None = None  # under the Triton interpreter, if fewer
    requires: str | None = None  # a module it needs beyond the course's dependencies (a peer library)

    def load(self) -> Callable:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        """Whether this implementation can run on `device` here, and if not, why."""
        if self.requires is not None and not module_installed(self.requires):
            return False, f"{self.requires} is not installed (pip install 'course[bench]')"
        return backend_availability(self.kind, device)

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """The dtypes this backend runs here (the Triton interpreter may run fewer)."""
        if self.kind == "triton" and self.interpreted_dtypes is not None \
                and triton_mode() == "interpreter":
            return self.interpreted_dtypes
        return self.dtypes


def module_installed(name: str) -> bool:
    """Whether a top-level module can be imported here, found without importing it (a module found
    once is remembered: availability is asked at every op call; one installed later is found then)."""
    if name in _FOUND:
        return True
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # hidden, or a module object without a spec
        return False
    if found:
        _FOUND.add(name)
    return found


_FOUND: set[str] = set()


def triton_installed() -> bool:
    """Whether Triton is installed here, found without importing it (Triton decides at import whether
    its own kernels are interpreted, so the first import must come after `prepare_triton`)."""
    return module_installed("triton")


def mode_settled() -> bool:
    """Whether importing Triton now fixes the right mode: compiled on a GPU, or interpreted."""
    return os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()


@functools.cache
def triton_import_error() -> str | None:
    """None if `import triton` works, else the error; imports Triton, so call it once `mode_settled`."""
    try:
        import triton  # noqa: F401
    except Exception as error:  # a broken install fails in many ways
        return f"{type(error).__name__}: {error}"
    return None


def triton_imported_for_compilation() -> bool:
    """Whether triton.language was imported while the interpreter was off (its kernels, the standard
    library's included, then never run on the CPU in this process)."""
    language = sys.modules.get("triton.language")
    if language is None:
        return False
    from triton.runtime.jit import JITFunction

    return isinstance(getattr(language, "sum", None), JITFunction)


def triton_mode() -> str | None:
    """'compiled' on a CUDA GPU, 'interpreter' under TRITON_INTERPRET=1, None without Triton (or with a
    Triton that was imported for compilation on a machine without a GPU)."""
    if not triton_installed() or not mode_settled() or triton_import_error() is not None:
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return None if triton_imported_for_compilation() else "interpreter"
    return "compiled"


def prepare_triton() -> str:
    """Turn on the Triton interpreter where there is no GPU; call before anything imports Triton.

    Returns how Triton kernels will run here: 'compiled', 'interpreter', or 'unavailable' and why.
    """
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    mode = triton_mode()
    return mode or f"unavailable ({backend_availability('triton', 'cpu')[1]})"


def backend_availability(kind: str, device: str = "cpu") -> tuple[bool, str]:
    """Whether a backend kind runs on `device` ('cpu' or 'cuda') on this machine, and why not."""
    on_gpu = torch.device(device).type == "cuda"
    if kind == "torch":
        return True, ""
    if kind == "triton":
        mode = triton_mode()
        if mode is None:
            if not triton_installed():
                return False, "Triton is not installed (pip install 'course[triton]')"
            if mode_settled() and triton_import_error():
                return False, ("Triton is not installed properly: import triton fails "
                               f"({triton_import_error()})")
            if os.environ.get("TRITON_INTERPRET") == "1" and triton_imported_for_compilation():
                return False, ("Triton was imported before its CPU interpreter was switched on, so its "
                               "kernels cannot run in this process: restart the kernel and call "
                               "course.setup() before anything imports triton")
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
    devices: tuple[str, ...] = ("cpu", "cuda")  # where the case runs (a GPU-sized case: ("cuda",))
    dtypes: tuple[torch.dtype, ...] | None = None  # the dtypes it runs in; None: every supported one
    # backends left out of this case: a loop too slow to time at a benchmark's size, or a peer that a
    # test case does not hold to the tolerance (a known limit of the peer, said where the case is)
    skip_backends: tuple[str, ...] = ()

    def runs_in(self, dtype: torch.dtype) -> bool:
        return self.dtypes is None or dtype in self.dtypes

    def runs_on(self, device) -> bool:
        return torch.device(device).type in self.devices


@dataclass(frozen=True)
class Op:
    """An op: its implementations (reference first) and what the harness and the benchmark need."""

    name: str
    doc: str
    impls: tuple[Impl, ...]
    make_inputs: Callable[[dict, torch.Generator], dict]  # params, generator -> keyword arguments
    test_cases: tuple[Case, ...]
    bench_cases: tuple[Case, ...] = ()
    tol: float = 1e-5  # RMS-relative error allowed against the reference, in float32
    tols: dict = field(default_factory=dict)  # dtype -> tolerance, where DEFAULT_TOLS does not fit
    grad_inputs: tuple[str, ...] = ()  # inputs whose gradients are compared
    bytes_moved: Callable[[dict, object], int] | None = None  # kwargs, output -> bytes read+written
    flops: Callable[[dict], int] | None = None  # kwargs -> floating-point operations of a forward
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

    def tolerance(self, dtype: torch.dtype) -> float:
        """The RMS-relative error allowed in `dtype`: `tols`, else `tol` for float32, else DEFAULT_TOLS."""
        if dtype in self.tols:
            return self.tols[dtype]
        return self.tol if dtype == torch.float32 else DEFAULT_TOLS[dtype]

    def resolve(self, backend: str = "auto", device="cpu", dtype: torch.dtype | None = None) -> Impl:
        """The implementation `backend` names; `auto` picks one as `choose` says."""
        return self.choose(backend, device, dtype).impl

    def choose(self, backend: str = "auto", device="cpu", dtype: torch.dtype | None = None,
               records: list[dict] | None = None) -> "Choice":
        """The implementation `backend` names, or the one `auto` picks, with the reason.

        `auto` considers the backends that run on `device` and support `dtype` (the Triton interpreter
        checks kernels and is never the fast choice); among them it takes the fastest by this device's
        benchmark records (`records`, else benchmarks/results/<device>.json of the checkout), and
        without records the first of cuda, compiled Triton, the reference.
        """
        device = str(device)
        if backend != "auto":
            impl = self.impl(backend)
            ok, why = impl.availability(device)
            if not ok:
                raise RuntimeError(f"{self.name}: backend {backend!r} cannot run here: {why}.")
            if dtype is not None and dtype not in impl.supported_dtypes():
                raise TypeError(f"{self.name}: backend {backend!r} does not support {dtype}; it runs "
                                f"{', '.join(map(str, impl.supported_dtypes()))} here.")
            return Choice(impl, "asked for by name")
        if _AUTO_RUNS_REFERENCE.get() and self.impls[0].availability(device)[0]:
            return Choice(self.impls[0], "the reference, inside `reference_for_auto()`")
        candidates = [impl for impl in self.impls if impl.availability(device)[0]
                      and (dtype is None or dtype in impl.supported_dtypes())
                      and not (impl.kind == "triton" and triton_mode() != "compiled")]
        if not candidates:
            raise TypeError(f"{self.name}: no backend runs {dtype} on {device}; the backends support "
                            + "; ".join(f"{i.backend}: {', '.join(map(str, i.supported_dtypes()))}"
                                        for i in self.impls))
        if records is None:
            records = device_records(device)
        speed = relative_times(self.name, [i.backend for i in candidates], records, dtype)
        if speed:
            best = min(speed, key=speed.get)
            others = ", ".join(f"{b} {t / speed[best]:.2g}x its time" for b, t in sorted(speed.items())
                               if b != best)
            untimed = [i.backend for i in candidates if i.backend not in speed]
            reason = (f"fastest on this device's benchmark records ({others or 'no other backend timed'}"
                      + (f"; not timed: {', '.join(untimed)}" if untimed else "") + ")")
            return Choice(self.impl(best), reason)
        for kind in AUTO_ORDER:
            for impl in candidates:
                if impl.kind == kind:
                    return Choice(impl, f"no benchmark records for this device; the first of "
                                        f"{', '.join(AUTO_ORDER)} that runs {dtype or 'it'} on {device}")
        raise AssertionError(f"{self.name}: a backend of unknown kind")  # kinds are checked at load

    def __call__(self, *args, backend: str = "auto", **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device = tensors[0].device if tensors else "cpu"
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), None)
        return self.resolve(backend, device, dtype).load()(*args, **kwargs)


@contextmanager
def reference_for_auto():
    """Inside the block, `auto` runs each op's reference: a claim's experiment then computes the same
    numbers on every machine, whichever backend that machine's benchmark records would pick."""
    token = _AUTO_RUNS_REFERENCE.set(True)
    try:
        yield
    finally:
        _AUTO_RUNS_REFERENCE.reset(token)


DEFAULT_TOLS = {torch.float64: 1e-12, torch.float16: 1e-3, torch.bfloat16: 8e-3}


class Choice(NamedTuple):
    """The implementation an op will run, and why it was chosen."""

    impl: Impl
    reason: str

    def __str__(self) -> str:
        return f"{self.impl.backend} ({self.reason})"


def device_records(device: str) -> list[dict]:
    """The benchmark records of this machine's `device` in the checkout ([] outside a checkout)."""
    from course import records

    try:
        from course.notebooks import course_root
        root = course_root()
    except FileNotFoundError:
        return []
    return records.load_device(root, records.device_name(device))


def relative_times(op: str, backends: list[str], records: list[dict], dtype) -> dict[str, float]:
    """Each timed backend's geometric-mean time relative to the fastest backend of each case.

    Uses the records of `op` in `dtype` (float32 when `dtype` is None), cases timed for two or more of
    `backends`; {} when there are none.
    """
    wanted = str(dtype or torch.float32).removeprefix("torch.")
    by_case: dict[str, dict[str, float]] = {}
    for r in records:
        if r["op"] == op and r["backend"] in backends and r.get("dtype", "float32") == wanted:
            by_case.setdefault(r["case"], {})[r["backend"]] = r["ms"]
    logs: dict[str, list[float]] = {}
    for times in by_case.values():
        if len(times) < 2:
            continue
        fastest = min(times.values())
        for backend, ms in times.items():
            logs.setdefault(backend, []).append(math.log(ms / fastest))
    return {b: math.exp(sum(v) / len(v)) for b, v in logs.items()}


_REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Add an op to the registry (each family's `ops.py` calls this at import)."""
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise ValueError(f"op {op.name!r} is registered twice")
    _REGISTRY[op.name] = op
    return op


_LOADED = set()  # family packages whose ops module has been imported


def _load_families():
    """Import every family's ops module once: `course/<family>/ops.py` registers its ops (a training
    loop calls ops thousands of times; each call looks its op up here)."""
    from course import families

    for family in families.discovered():
        if family.package not in _LOADED:
            if family.has_ops:
                importlib.import_module(f"course.{family.package}.ops")
            _LOADED.add(family.package)


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


def check_backend(op: str, backend: str, name: str, t: torch.Tensor):
    """Refuse, by name, input that this backend cannot run: a Triton that cannot run here, tensors on
    the wrong device, or a floating dtype that the registry does not declare for the backend."""
    impl = get(op).impl(backend)
    if impl.kind == "triton":
        ok, why = impl.availability(str(t.device))
        if not ok:
            raise RuntimeError(f"{op} ({backend} backend) cannot run on {t.device} here: {why}.")
    dtypes = impl.supported_dtypes()
    if t.dtype not in dtypes:
        raise TypeError(f"{op} ({backend} backend): `{name}` must be one of "
                        f"{', '.join(map(str, dtypes))} here; got {t.dtype}. Use another backend "
                        "(e.g. backend='reference') or cast.")


def signature_of(impl: Impl) -> inspect.Signature:
    """The call signature of an implementation (loads it)."""
    return inspect.signature(impl.load())


def default_device() -> str:
    """Where tensors go by default: "cuda" where there is a GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"
