"""The registry: which backend `auto` picks and why, dtype declarations, and Triton's mode."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course import registry
from course.moe.layer import MoELayer

ROOT = Path(__file__).resolve().parents[1]


def record(backend, case, ms, op="moe.expert_mlp", dtype="float32"):
    return dict(op=op, backend=backend, case=case, ms=ms, dtype=dtype, device="x")


def test_auto_without_records_takes_the_first_kind_that_runs_the_dtype():
    op = registry.get("moe.expert_mlp")
    choice = op.choose("auto", "cpu", torch.float32, records=[])
    assert choice.impl.backend == "reference" and "no benchmark records" in choice.reason


def test_auto_picks_the_fastest_backend_on_this_devices_records():
    op = registry.get("moe.expert_mlp")
    records = [record("reference", "a", 10.0), record("padded_bmm", "a", 5.0),
               record("reference", "b", 8.0), record("padded_bmm", "b", 6.0),
               record("padded_bmm", "a", 1.0, dtype="bfloat16"),
               record("reference", "a", 9.0, dtype="bfloat16")]
    choice = op.choose("auto", "cpu", torch.float32, records=records)
    assert choice.impl.backend == "padded_bmm"
    assert "fastest on this device's benchmark records" in choice.reason and "reference 1.6x" in choice.reason
    slower = [record("reference", "a", 1.0), record("padded_bmm", "a", 5.0)]
    assert op.choose("auto", "cpu", torch.float32, records=slower).impl.backend == "reference"
    assert op.choose("auto", "cpu", torch.bfloat16, records=records).impl.backend == "padded_bmm"


def test_auto_never_picks_a_backend_without_the_inputs_dtype(monkeypatch):
    """On a GPU, CUDA's expert_mlp (float32 only) must not be picked for bfloat16."""
    monkeypatch.setattr(registry, "backend_availability", lambda kind, device="cpu": (True, ""))
    monkeypatch.setattr(registry, "triton_mode", lambda: "compiled")
    op = registry.get("moe.expert_mlp")
    assert op.choose("auto", "cuda", torch.float32, records=[]).impl.backend == "cuda"
    bf16 = op.choose("auto", "cuda", torch.bfloat16, records=[])
    assert bf16.impl.backend == "triton" and "bfloat16" in bf16.reason
    with pytest.raises(TypeError, match="backend 'cuda' does not support torch.bfloat16"):
        op.choose("cuda", "cuda", torch.bfloat16)


def test_a_layer_resolves_its_backends_once_and_says_why(monkeypatch):
    layer = MoELayer(4, 8, num_experts=3, k=1)
    calls = []
    real = registry.Op.choose
    monkeypatch.setattr(registry.Op, "choose",
                        lambda self, *a, **k: calls.append(self.name) or real(self, *a, **k))
    for _ in range(3):
        layer(torch.randn(10, 4))
    assert sorted(calls) == ["moe.combine", "moe.dispatch", "moe.expert_mlp"]
    assert {str(c.impl.backend) for c in layer.backends_used.values()} == {"reference"}
    assert all(c.reason for c in layer.backends_used.values())


def test_every_backend_declares_float_dtypes_the_harness_knows():
    for op in registry.all_ops():
        assert set(op.reference.dtypes) == set(registry.FLOATS), op.name  # the gold runs in float64
        for impl in op.impls:
            assert impl.dtypes and set(impl.dtypes) <= set(registry.FLOATS), (op.name, impl.backend)
            assert torch.float32 in impl.dtypes, (op.name, impl.backend)
            for dtype in impl.dtypes:
                assert 0 < op.tolerance(dtype) < 0.05


def fresh_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**environment, **env}, timeout=300)


KERNEL_CALL = """
import torch
from course.moe.ops import dispatch_inputs
kw = dispatch_inputs(dict(T=20, D=8, E=4, k=2), torch.Generator().manual_seed(0))
print(torch.equal(triton_moe.dispatch(**kw).x, course.moe.dispatch(**kw).x))
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is for machines without a GPU")
def test_a_kernel_imported_before_setup_still_runs_on_the_cpu():
    """Importing course.kernels switches the interpreter on before Triton is imported."""
    pytest.importorskip("triton")
    done = fresh_python("from course.kernels.moe import triton_moe\nimport course, course.moe\n"
                        "print(course.setup())" + KERNEL_CALL)
    assert done.returncode == 0, done.stderr
    assert "Triton: interpreter" in done.stdout and done.stdout.strip().endswith("True")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is for machines without a GPU")
def test_a_triton_imported_too_early_is_reported_not_crashed_on():
    pytest.importorskip("triton")
    done = fresh_python("import triton\nimport course, course.moe\nprint(course.setup())\n"
                        "from course.kernels.moe import triton_moe" + KERNEL_CALL)
    assert "Triton: unavailable (Triton was imported before its CPU interpreter" in done.stdout
    assert done.returncode == 1 and "restart the kernel and call course.setup()" in done.stderr
    assert "active drivers" not in done.stderr


def test_a_peer_backend_is_unavailable_without_its_library_and_says_how_to_install_it():
    peer = registry.Impl("peer", "course.gnn.spmm:spmm_pyg", requires="no_such_peer_library")
    ok, why = peer.availability("cpu")
    assert not ok and "no_such_peer_library is not installed" in why and "course[bench]" in why
    op = registry.get("gnn.spmm")
    installed = registry.module_installed("torch_geometric")
    assert op.impl("pyg").availability("cpu")[0] == installed


def test_a_benchmark_case_can_leave_out_a_backend_too_slow_for_it(monkeypatch):
    from course import bench

    op = registry.get("gnn.spmm")
    small = registry.Case("tiny", dict(N=30, E=90, D=4), devices=("cpu",), skip_backends=("node_loop",))
    patched = registry.Op(**{**op.__dict__, "bench_cases": (small,)})
    monkeypatch.setitem(registry._REGISTRY, "gnn.spmm", patched)
    timed = {r.backend for r in bench.run(["gnn.spmm"], progress=False, min_seconds=0.0)}
    assert "node_loop" not in timed and {"reference", "index_add"} <= timed


def test_a_benchmark_can_time_only_the_cases_it_names(monkeypatch):
    from course import bench

    op = registry.get("gnn.spmm")
    cases = (registry.Case("tiny", dict(N=30, E=90, D=4), devices=("cpu",)),
             registry.Case("small", dict(N=60, E=200, D=4), devices=("cpu",)))
    monkeypatch.setitem(registry._REGISTRY, "gnn.spmm", registry.Op(**{**op.__dict__, "bench_cases": cases}))
    timed = bench.run(["gnn.spmm"], progress=False, min_seconds=0.0, cases=["small"])
    assert {r.case for r in timed} == {"small"}
    with pytest.raises(ValueError, match="`cases` must name benchmark cases.*got huge"):
        bench.run(["gnn.spmm"], progress=False, cases=["huge"])


def test_a_benchmark_can_time_only_the_backends_it_names(monkeypatch):
    from course import bench

    op = registry.get("gnn.spmm")
    tiny = registry.Case("tiny", dict(N=30, E=90, D=4), devices=("cpu",))
    monkeypatch.setitem(registry._REGISTRY, "gnn.spmm", registry.Op(**{**op.__dict__, "bench_cases": (tiny,)}))
    timed = bench.run(["gnn.spmm"], progress=False, min_seconds=0.0, backends=["reference", "index_add"])
    assert {r.backend for r in timed} == {"reference", "index_add"}
    with pytest.raises(ValueError, match="`backends` must name backends.*got no_such_loop"):
        bench.run(["gnn.spmm"], progress=False, backends=["reference", "no_such_loop"])


def test_a_backend_that_raises_is_named_and_the_others_still_timed(monkeypatch):
    """`course bench` on a GPU goes on past a backend that fails (errors=), and names it; a notebook's
    bench.run raises."""
    from course import bench

    op = registry.get("gnn.spmm")
    tiny = registry.Case("tiny", dict(N=30, E=90, D=4), devices=("cpu",))
    broken = registry.Impl("broken", "builtins:divmod", dtypes=registry.FLOATS)  # takes no keywords
    monkeypatch.setitem(registry._REGISTRY, "gnn.spmm", registry.Op(
        **{**op.__dict__, "bench_cases": (tiny,), "impls": (*op.impls, broken)}))
    errors = []
    timed = {r.backend for r in bench.run(["gnn.spmm"], progress=False, min_seconds=0.0, errors=errors)}
    assert {"reference", "index_add"} <= timed and "broken" not in timed
    assert errors == ["gnn.spmm / tiny / float32 / broken: TypeError: divmod() takes no keyword arguments"]
    with pytest.raises(TypeError, match="divmod"):
        bench.run(["gnn.spmm"], progress=False, min_seconds=0.0)


def test_inside_reference_for_auto_auto_runs_the_reference_whatever_the_records_say():
    op = registry.get("moe.expert_mlp")
    faster = [record("reference", "a", 10.0), record("padded_bmm", "a", 1.0)]
    assert op.choose("auto", "cpu", torch.float32, records=faster).impl.backend == "padded_bmm"
    with registry.reference_for_auto():
        choice = op.choose("auto", "cpu", torch.float32, records=faster)
        assert choice.impl.backend == "reference" and "reference_for_auto" in choice.reason
        assert op.choose("padded_bmm", "cpu", torch.float32).impl.backend == "padded_bmm"  # by name
    assert op.choose("auto", "cpu", torch.float32, records=faster).impl.backend == "padded_bmm"
