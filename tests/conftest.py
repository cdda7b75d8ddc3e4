"""Test setup: a summary of the op harness (Triton's interpreter is switched on by ../conftest.py)."""
import pytest


@pytest.fixture(scope="session")
def harness_log(pytestconfig):
    """(op, backend, case, max error ratio) of every harness case that ran."""
    if not hasattr(pytestconfig, "harness_log"):
        pytestconfig.harness_log = []
    return pytestconfig.harness_log


def pytest_terminal_summary(terminalreporter, config):
    log = getattr(config, "harness_log", [])
    if not log:
        return
    worst = max(log, key=lambda r: r[3])
    backends = sorted({f"{op}/{backend}" for op, backend, _, _ in log})
    terminalreporter.write_sep("-", "op harness")
    terminalreporter.write_line(f"{len(log)} cases over {len(backends)} op backends: "
                                f"{', '.join(backends)}")
    terminalreporter.write_line(f"largest RMS-relative error: {worst[3]:.2e} "
                                f"({worst[0]} / {worst[1]} / {worst[2]})")
