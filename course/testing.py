"""Compare an implementation with an op's reference: the one harness, and `check` for learners.

Every backend in the tests and every learner's function in a notebook goes through `compare`: same
inputs, same seed, same upstream gradient; outputs poisoned (NaN) where a backend allocates them;
floating tensors compared by RMS-relative error (as flash-linear-attention's tests do), integer
tensors exactly.
"""
import traceback
from dataclasses import dataclass, field

import torch

from course import outputs, registry


def rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item() if t.numel() else 0.0


def error_ratio(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """RMS(actual - expected) / RMS(expected); the absolute RMS error where expected is all zero."""
    diff = rms(actual.double() - expected.double())
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
    raise TypeError(f"expected a tensor or a tuple of tensors; got {type(value).__name__}")


def describe_mismatch(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float):
    """None if `actual` matches `expected`; else a short, readable account of the difference."""
    if tuple(actual.shape) != tuple(expected.shape):
        return f"{name}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    if actual.dtype.is_floating_point != expected.dtype.is_floating_point:
        return f"{name}: dtype {actual.dtype}, expected {expected.dtype}"
    if actual.numel() == 0:
        return None
    actual, expected = actual.detach().cpu(), expected.detach().cpu()
    if not expected.dtype.is_floating_point:
        wrong = actual != expected
        if not wrong.any():
            return None
        first = tuple(i.item() for i in wrong.nonzero()[0])
        return (f"{name}: {wrong.sum().item()} of {wrong.numel()} entries differ; first at "
                f"{list(first)}: got {actual[first].item()}, expected {expected[first].item()}")
    if torch.isnan(actual).any():
        where = tuple(i.item() for i in torch.isnan(actual).nonzero()[0])
        return (f"{name}: {torch.isnan(actual).sum().item()} NaN entries (first at {list(where)}): "
                "an element was never written, or a NaN was computed")
    ratio = error_ratio(actual, expected)
    if ratio <= tol:
        return None
    flat = (actual - expected).abs().flatten().argmax()
    worst = tuple(i.item() for i in torch.unravel_index(flat, actual.shape))
    return (f"{name}: RMS-relative error {ratio:.2e} > {tol:.0e}; worst at {list(worst)}: "
            f"got {actual[worst].item():.6g}, expected {expected[worst].item():.6g}")


def run(fn, kwargs: dict, grad_inputs, seed: int = 0):
    """Call `fn(**kwargs)` on fresh copies, backpropagate a seeded upstream gradient.

    Returns (outputs as (name, tensor) pairs, {input name: gradient}).
    """
    inputs = {n: (v.detach().clone().requires_grad_(n in grad_inputs) if isinstance(v, torch.Tensor)
                  else v) for n, v in kwargs.items()}
    with outputs.poisoned():
        result = named_tensors(fn(**inputs))
    generator = torch.Generator().manual_seed(seed)
    loss = 0.0
    for _, t in result:
        if t.requires_grad:
            upstream = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
            loss = loss + (t * upstream).sum()
    grads = {}
    if isinstance(loss, torch.Tensor):
        with outputs.poisoned():
            loss.backward()
    for n in grad_inputs:
        g = inputs[n].grad
        grads[n] = torch.zeros_like(inputs[n]) if g is None and not isinstance(loss, torch.Tensor) else g
    return [(n, t.detach()) for n, t in result], grads


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


def compare(op: registry.Op, fn, case: registry.Case, device="cpu", seed: int = 0) -> CaseResult:
    """Run `fn` and the op's reference on one case; collect every mismatch, output and gradient."""
    result = CaseResult(case.name)
    kwargs = {n: v.to(device) if isinstance(v, torch.Tensor) else v
              for n, v in op.make_inputs(case.params, torch.Generator().manual_seed(seed)).items()}
    expected, expected_grads = run(op.reference.load(), kwargs, op.grad_inputs, seed)
    try:
        actual, actual_grads = run(fn, kwargs, op.grad_inputs, seed)
    except Exception as error:  # a learner's function may fail in any way; report it, keep going
        result.problems.append(f"raised {type(error).__name__}: {error} ({where_raised(fn, error)})")
        return result
    if len(actual) != len(expected):
        result.problems.append(f"returned {len(actual)} tensors, expected {len(expected)} "
                               f"({', '.join(n for n, _ in expected)})")
        return result
    pairs = [(en, a, e) for (_, a), (en, e) in zip(actual, expected)]
    for n in op.grad_inputs:
        if actual_grads[n] is None and expected_grads[n] is not None:
            result.problems.append(f"grad of {n}: None (the output does not depend on `{n}` "
                                   "through autograd)")
            continue
        pairs.append((f"grad of {n}", actual_grads[n], expected_grads[n]))
    for name, a, e in pairs:
        if a is None or e is None:
            continue
        problem = describe_mismatch(name, a, e, op.tol)
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
                lines.append(f"ok   {r.case:<24} max error ratio {r.max_ratio:.1e}")
            elif not same_error:
                lines += [f"FAIL {r.case}", *(f"       {p}" for p in r.problems)]
        passed = sum(r.ok for r in self)
        lines.append(f"{passed}/{len(self)} cases passed" + ("" if passed < len(self) else " - well done!"))
        return "\n".join(lines)


def check(fn, op_name: str, seed: int = 0, cases=None) -> Report:
    """Grade `fn` against the reference of `op_name` on its random and edge-case inputs.

    `cases` names the test cases to run (all by default). Returns a Report that prints one line per
    case, with a readable diff where a case fails; an error raised on every case is reported once.
    """
    op = registry.get(op_name)
    chosen = op.test_cases
    if cases is not None:
        names = {c.name for c in op.test_cases}
        unknown = [c for c in cases if c not in names]
        if unknown:
            raise ValueError(f"check: `cases` must name test cases of {op_name} ({', '.join(names)}); "
                             f"got {unknown}.")
        chosen = [c for c in op.test_cases if c.name in set(cases)]
    return Report(compare(op, fn, case, seed=seed) for case in chosen)
