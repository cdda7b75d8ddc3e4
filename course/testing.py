"""Compare an implementation with an op's reference: the one harness, and `check` for learners.

Every backend in the tests and every learner's function in a notebook goes through `compare`: same
inputs, same seed, same upstream gradient; outputs poisoned (NaN) where a backend allocates them;
floating tensors compared by RMS-relative error (as flash-linear-attention's tests do), integer
tensors exactly. A case runs in one dtype: the floating inputs are cast to it, and the expected
values come from the reference in float64 on those same inputs (in float32 for float32), rounded to
the dtype, against the op's tolerance for that dtype. The returned dtypes and shapes are compared and
named; a NaN input must give NaN exactly where the reference gives it; a None result, an output
detached from autograd and an input changed by the call are each reported as what they are.
"""
import traceback
from dataclasses import dataclass, field

import torch

from course import outputs, registry


CHUNK = 1 << 24  # elements per step of a float64 reduction: bounded memory for GPU-sized cases


def sum_of_squares(t: torch.Tensor, minus: torch.Tensor | None = None) -> float:
    """sum((t - minus)^2) in float64, a chunk at a time (a 2^31-element case needs no 17 GB copy)."""
    t = t.reshape(-1)
    minus = None if minus is None else minus.reshape(-1)
    total = 0.0
    for start in range(0, t.numel(), CHUNK):
        part = t[start:start + CHUNK].double()
        if minus is not None:
            part = part - minus[start:start + CHUNK].double()
        total += part.pow(2).sum().item()
    return total


def rms(t: torch.Tensor) -> float:
    return (sum_of_squares(t) / t.numel()) ** 0.5 if t.numel() else 0.0


def error_ratio(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """RMS(actual - expected) / RMS(expected) over the entries where `expected` is finite; the
    absolute RMS error where expected is all zero."""
    finite = torch.isfinite(expected)
    if not finite.all():
        actual, expected = actual[finite], expected[finite]
    if not expected.numel():
        return 0.0
    diff = (sum_of_squares(actual, expected) / expected.numel()) ** 0.5
    scale = rms(expected)
    return diff / scale if scale > 0 else diff


def named_tensors(value, name: str = "output") -> list[tuple[str, torch.Tensor]]:
    """Flatten a tensor, a NamedTuple or a tuple of tensors into (name, tensor) pairs."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if hasattr(value, "_fields"):
        return [(f"{name}.{f}", t) for f, t in zip(value._fields, value) if isinstance(t, torch.Tensor)]
    if isinstance(value, (tuple, list)):
        return [(f"{name}[{i}]", t) for i, t in enumerate(value) if isinstance(t, torch.Tensor)]
    if value is None:
        raise ReturnedNone("returned None: the function must return its result (a missing `return`?)")
    raise TypeError(f"expected a tensor or a tuple of tensors; got {type(value).__name__}")


class ReturnedNone(TypeError):
    """A function under test returned None."""


def _first(mask: torch.Tensor) -> list[int]:
    return [i.item() for i in mask.nonzero()[0]]


def describe_mismatch(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float):
    """None if `actual` matches `expected`; else a short, readable account of the difference."""
    if tuple(actual.shape) != tuple(expected.shape):
        return f"{name}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        if expected.dtype.is_floating_point:
            return f"{name}: returned {actual.dtype} for {expected.dtype} inputs"
        return f"{name}: dtype {actual.dtype}, expected {expected.dtype}"
    if actual.numel() == 0:
        return None
    actual, expected = actual.detach(), expected.detach().to(actual.device)
    if not expected.dtype.is_floating_point:
        wrong = actual != expected
        if not wrong.any():
            return None
        first = tuple(_first(wrong))
        return (f"{name}: {wrong.sum().item()} of {wrong.numel()} entries differ; first at "
                f"{list(first)}: got {actual[first].item()}, expected {expected[first].item()}")
    lost = torch.isnan(expected) & ~torch.isnan(actual)
    if lost.any():
        return (f"{name}: {lost.sum().item()} entries are not NaN where the reference gives NaN (first "
                f"at {_first(lost)}): a NaN input must give a NaN output")
    made = torch.isnan(actual) & ~torch.isnan(expected)
    if made.any():
        return (f"{name}: {made.sum().item()} NaN entries (first at {_first(made)}): an element was "
                "never written, or a NaN was computed")
    ratio = error_ratio(actual, expected)
    if ratio <= tol:
        return None
    gap = torch.where(torch.isnan(expected), 0, (actual.double() - expected.double()).abs())
    worst = tuple(i.item() for i in torch.unravel_index(gap.flatten().argmax(), actual.shape))
    return (f"{name}: RMS-relative error {ratio:.2e} > {tol:.1e}; worst at {list(worst)}: "
            f"got {actual[worst].item():.6g}, expected {expected[worst].item():.6g}")


def cast_floats(kwargs: dict, dtype: torch.dtype) -> dict:
    """The keyword arguments with every floating tensor cast to `dtype` (strides kept)."""
    return {n: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for n, v in kwargs.items()}


def fresh_copy(t: torch.Tensor) -> torch.Tensor:
    """A copy of `t` with its own memory and the same strides, views with gaps included."""
    if t.numel() == 0:
        return t.detach().clone()
    extent = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1
    out = t.new_empty(extent).as_strided(t.shape, t.stride(), t.storage_offset())
    return out.copy_(t.detach())


def changed_entries(after: torch.Tensor, before: torch.Tensor) -> int:
    """How many entries differ between two tensors of one shape (NaN equals NaN)."""
    if after.is_floating_point():
        return (~((after == before) | (torch.isnan(after) & torch.isnan(before)))).sum().item()
    return (after != before).sum().item()


@dataclass
class Ran:
    """What one call gave: outputs as (name, tensor) pairs, input gradients, and findings."""

    outputs: list
    grads: dict
    tracked: set  # names of the outputs that autograd tracks (requires_grad), and the empty ones
    changed: dict  # input name -> entries the call changed


def run(fn, kwargs: dict, grad_inputs, seed: int = 0, dtype: torch.dtype = torch.float32) -> Ran:
    """Call `fn(**kwargs)` on fresh copies and backpropagate a seeded upstream gradient.

    The upstream gradient is drawn in float32 and cast to `dtype`, then to each output's own dtype,
    so that an output in the wrong dtype gets the same gradient.
    """
    inputs = {n: (fresh_copy(v).requires_grad_(n in grad_inputs) if isinstance(v, torch.Tensor) else v)
              for n, v in kwargs.items()}
    before = {n: v.detach().clone() for n, v in inputs.items() if isinstance(v, torch.Tensor)}
    with outputs.poisoned():
        result = named_tensors(fn(**inputs))
    changed = {n: changed_entries(inputs[n].detach(), v) for n, v in before.items()}
    generator = torch.Generator().manual_seed(seed)
    loss = 0.0
    for _, t in result:
        if not t.is_floating_point():
            continue
        upstream = torch.randn(t.shape, generator=generator).to(dtype).to(t.dtype).to(t.device)
        if t.requires_grad:
            loss = loss + (t * upstream).sum()
    grads = {}
    if isinstance(loss, torch.Tensor):
        with outputs.poisoned():
            loss.backward()
    for n in grad_inputs:
        if not isinstance(inputs.get(n), torch.Tensor):  # an optional input left out (None)
            grads[n] = None
            continue
        g = inputs[n].grad
        grads[n] = torch.zeros_like(inputs[n]) if g is None and not isinstance(loss, torch.Tensor) else g
    return Ran([(n, t.detach()) for n, t in result], grads,
               {n for n, t in result if t.requires_grad or not t.numel()},  # an empty one carries nothing
               {n: c for n, c in changed.items() if c})


def where_raised(fn, error: Exception) -> str:
    """The line of `fn`'s own code where `error` was raised (or passed through), for a learner.

    In a notebook a function's file is its cell, so the line is counted from the top of the cell.
    """
    code = getattr(fn, "__code__", None)
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = (own or frames)[-1]
    if "ipykernel" in frame.filename or frame.filename.startswith("<"):
        return f"line {frame.lineno} of the cell that defines {getattr(fn, '__name__', 'it')}"
    return f"at {frame.filename.split('/')[-1]}:{frame.lineno}"


@dataclass
class CaseResult:
    """How one implementation did on one case."""

    case: str
    max_ratio: float = 0.0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def gold_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the reference computes the expected values in: float64, or float32 for float32."""
    return torch.float32 if dtype == torch.float32 else torch.float64


def case_inputs(op: registry.Op, case: registry.Case, device, seed: int, dtype: torch.dtype) -> dict:
    """The case's inputs on `device`, floating ones cast to `dtype`."""
    made = op.make_inputs(case.params, torch.Generator().manual_seed(seed))
    return cast_floats({n: v.to(device) if isinstance(v, torch.Tensor) else v for n, v in made.items()},
                       dtype)


def compare(op: registry.Op, fn, case: registry.Case, device="cpu", seed: int = 0,
            dtype: torch.dtype = torch.float32) -> CaseResult:
    """Run `fn` and the op's reference on one case in one dtype; collect every mismatch.

    Outputs and gradients are compared with the reference's, computed in `gold_dtype(dtype)` on the
    same `dtype`-rounded inputs and rounded back to `dtype`.
    """
    label = case.name if dtype == torch.float32 else f"{case.name} [{str(dtype).removeprefix('torch.')}]"
    result = CaseResult(label)
    kwargs = case_inputs(op, case, device, seed, dtype)
    gold = run(op.reference.load(), cast_floats(kwargs, gold_dtype(dtype)), op.grad_inputs, seed, dtype)
    try:
        ran = run(fn, kwargs, op.grad_inputs, seed, dtype)
    except ReturnedNone as error:
        result.problems.append(str(error))
        return result
    except Exception as error:  # a learner's function may fail in any way; report it, keep going
        result.problems.append(f"raised {type(error).__name__}: {error} ({where_raised(fn, error)})")
        return result
    result.problems += [f"changed its input `{n}` ({c} entries): a function must not write to its "
                        "arguments" for n, c in ran.changed.items()]
    if len(ran.outputs) != len(gold.outputs):
        result.problems.append(f"returned {len(ran.outputs)} tensors, expected {len(gold.outputs)} "
                               f"({', '.join(n for n, _ in gold.outputs)})")
        return result
    rounded = lambda t: t.to(dtype) if t is not None and t.is_floating_point() else t  # noqa: E731
    pairs = []
    for (_, a), (name, e) in zip(ran.outputs, gold.outputs):
        if name in gold.tracked and name not in ran.tracked:
            result.problems.append(f"{name} is detached from autograd (requires_grad is False; the "
                                   f"reference's depends on {', '.join(op.grad_inputs)})")
        pairs.append((name, a, rounded(e)))
    for n in op.grad_inputs:
        if ran.grads[n] is None and gold.grads[n] is not None:
            result.problems.append(f"grad of {n}: None (the output does not depend on `{n}` "
                                   "through autograd)")
            continue
        pairs.append((f"grad of {n}", ran.grads[n], rounded(gold.grads[n])))
    for name, a, e in pairs:
        if a is None or e is None:
            continue
        problem = describe_mismatch(name, a, e, op.tolerance(dtype))
        if problem:
            result.problems.append(problem)
        elif e.dtype.is_floating_point and e.numel():
            result.max_ratio = max(result.max_ratio, error_ratio(a, e))
    return result


class Report(list):
    """The case results of `check`; true when every case passed, printed as a table."""

    def __bool__(self) -> bool:
        return all(r.ok for r in self)

    def __repr__(self) -> str:
        failed = [r for r in self if not r.ok]
        same_error = (len(failed) > 1 and len({tuple(r.problems) for r in failed}) == 1
                      and failed[0].problems[0].startswith("raised "))
        lines = []
        if same_error:  # one error raised on every failing case: say it once
            lines += [f"FAIL {len(failed)} of {len(self)} cases: {', '.join(r.case for r in failed)}",
                      f"       {failed[0].problems[0]}"]
        for r in self:
            if r.ok:
                lines.append(f"ok   {r.case:<30} max error ratio {r.max_ratio:.1e}")
            elif not same_error:
                lines += [f"FAIL {r.case}", *(f"       {p}" for p in r.problems)]
        passed = sum(r.ok for r in self)
        lines.append(f"{passed}/{len(self)} cases passed" + ("" if passed < len(self) else " - well done!"))
        return "\n".join(lines)


def check(fn, op_name: str, seed: int = 0, cases=None, device="cpu",
          dtype: torch.dtype = torch.float32) -> Report:
    """Grade `fn` against the reference of `op_name` on its random and edge-case inputs.

    `cases` names the test cases to run (all that run on `device` by default); `device` is where the
    inputs live (`course.default_device()` is "cuda" where there is a GPU: Triton kernels then run
    compiled, not in the interpreter); `dtype` is the floating dtype of the inputs. Returns a Report
    that prints one line per case, with a readable diff where a case fails; an error raised on every
    case is reported once.
    """
    op = registry.get(op_name)
    device = str(device)
    chosen = [c for c in op.test_cases if c.runs_on(device) and c.runs_in(dtype)]
    if cases is not None:
        names = [c.name for c in chosen]
        unknown = [c for c in cases if c not in names]
        if unknown:
            raise ValueError(f"check: `cases` must name test cases of {op_name} that run on {device} "
                             f"({', '.join(names)}); got {unknown}.")
        chosen = [c for c in chosen if c.name in set(cases)]
    return Report(compare(op, fn, case, device=device, seed=seed, dtype=dtype) for case in chosen)
