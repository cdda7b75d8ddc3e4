"""The routing widget's logic, without a browser: routing, summary, panels, regions and controls."""
import base64

import pytest
import torch

from course import data, moe
from course.widgets import routing
from course.widgets.routing import (DROPPED, PALETTE, RoutingWidget, gallery, panel_updates,
                                    region_weights, route, summary)

CENTERS = data.ring_centers(4)
TOKENS, BLOB = data.gaussian_mixture(256, CENTERS, weights=[5, 2, 1, 1], seed=0)
W_GATE = 0.5 * moe.prototype_gate(CENTERS)


def test_prototype_router_picks_the_blob_of_each_token():
    r = route(TOKENS, W_GATE, None, k=1, capacity_factor=None)
    assert (r.expert_index[:, 0] == BLOB).float().mean() > 0.97
    assert r.dropped == 0 and r.capacity is None


def test_capacity_drops_the_overflow_of_the_big_blob():
    r = route(TOKENS, W_GATE, None, k=1, capacity_factor=1.0)
    assert r.capacity == 64
    assert torch.equal(r.counts, r.routed.clamp(max=64))
    assert r.dropped == int((r.routed - 64).clamp(min=0).sum()) > 0
    assert "capacity 64 per expert" in summary(r) and f"{r.dropped} of 256 assignments dropped" in summary(r)


def test_load_cv_measures_the_router_not_the_capacity():
    tight = route(TOKENS, W_GATE, None, k=1, capacity_factor=1.0)
    loose = route(TOKENS, W_GATE, None, k=1, capacity_factor=2.0)
    share = torch.tensor([5, 2, 1, 1]) / 9  # the blob weights the prototype router follows
    assert tight.load_cv == loose.load_cv
    assert abs(tight.load_cv - (share.var(unbiased=False).sqrt() / share.mean()).item()) < 0.1
    assert f"router load CV {tight.load_cv:.2f}" in summary(tight)


def test_second_choices_rescue_tokens():
    one = route(TOKENS, W_GATE, None, k=1, capacity_factor=1.0)
    two = route(TOKENS, W_GATE, None, k=2, capacity_factor=1.0)
    assert two.lost_tokens.sum() < one.lost_tokens.sum() / 5


def test_noise_changes_some_choices_and_is_reproducible():
    w_noise = torch.zeros(3, 4)
    calm = route(TOKENS, W_GATE, w_noise, k=1, capacity_factor=None, noise_scale=0.0)
    noisy = route(TOKENS, W_GATE, w_noise, k=1, capacity_factor=None, noise_scale=2.0, seed=1)
    again = route(TOKENS, W_GATE, w_noise, k=1, capacity_factor=None, noise_scale=2.0, seed=1)
    changed = (calm.expert_index != noisy.expert_index).float().mean()
    assert 0.005 < changed < 0.5
    assert torch.equal(noisy.expert_index, again.expert_index)


def test_decision_regions_are_nearest_prototype_regions():
    axis, grid = routing.grid_points(3.0, 41)
    regions = region_weights("top-k", W_GATE, 3.0, n=41).argmax(-1)
    nearest = torch.cdist(grid, CENTERS).argmin(1).reshape(41, 41)
    assert (regions == nearest).float().mean() > 0.99


def test_each_router_draws_its_own_regions():
    top_k = region_weights("top-k", W_GATE, 3.0)
    smear = region_weights("SMEAR", W_GATE, 3.0)
    assert torch.equal(top_k.sum(-1), torch.ones(80, 80)) and set(top_k.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(smear.sum(-1), torch.ones(80, 80)) and (smear < 0.99).any()  # soft borders
    ot = route(TOKENS, W_GATE, None, k=1, capacity_factor=1.0, router="OT")
    shifted = region_weights("OT", W_GATE, 3.0, ot.potentials).argmax(-1)
    # the balancing shift takes ground from the big blob's expert and gives it to the small ones
    assert (shifted == 0).sum() < (top_k.argmax(-1) == 0).sum()


def test_experts_and_dropped_marks_do_not_share_a_colour():
    assert DROPPED not in PALETTE and len(set(PALETTE)) == len(PALETTE)


def test_panels_mark_every_dropped_assignment():
    r = route(TOKENS, W_GATE, None, k=2, capacity_factor=0.75)
    traces, shapes = panel_updates(r, W_GATE, 3.0)
    assert len(traces[3]["x"]) == r.dropped  # one cross per dropped assignment
    assert traces[4]["y"] == r.counts.tolist() and sum(traces[5]["y"]) == r.dropped
    assert shapes[0]["y0"] == r.capacity
    lost = r.lost_tokens.tolist()
    assert sum(s == "x" for s in traces[1]["marker"]["symbol"]) == sum(lost)


def test_moving_a_control_redraws_the_figure():
    view = RoutingWidget(TOKENS, W_GATE, torch.zeros(3, 4), k=1, capacity_factor=1.0)
    before_summary, before_bars = view.summary.value, view.figure.data[5].y
    view.capacity_factor.value = 2.0
    assert view.summary.value != before_summary and "capacity 128" in view.summary.value
    assert view.figure.data[5].y != before_bars
    view.k.value = 2
    assert len(view.figure.data[3].x) == view.routing().dropped


def test_smear_disables_the_controls_it_ignores_and_the_load_axis_shows_the_capacity():
    view = RoutingWidget(TOKENS, W_GATE, torch.zeros(3, 4), k=1, capacity_factor=3.0)
    assert not view.k.disabled and view.figure.layout.yaxis3.range[1] > view.routing().capacity
    view.router.value = "SMEAR"
    assert view.k.disabled and view.capacity_factor.disabled and "nothing is dropped" in view.summary.value
    view.router.value = "OT"
    assert not view.k.disabled and not view.capacity_factor.disabled


def test_the_committed_notebook_shows_a_snapshot_of_the_widget():
    bundle = gallery()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"]
    assert "VBox(" not in bundle["text/plain"]


def test_widget_refuses_a_k_it_would_have_to_change():
    with pytest.raises(ValueError, match=r"RoutingWidget: `k` must be an int in \[1, E\] = \[1, 4\].*got 5"):
        RoutingWidget(TOKENS, W_GATE, None, k=5)
    with pytest.raises(ValueError, match="`capacity_factor` must be > 0 or None"):
        RoutingWidget(TOKENS, W_GATE, None, k=1, capacity_factor=0)


def test_no_capacity_is_shown_as_no_capacity_and_a_large_factor_is_kept():
    view = RoutingWidget(TOKENS, W_GATE, None, k=1, capacity_factor=None)
    assert view.routing().capacity is None and "no capacity" in view.summary.value
    assert view.capacity_factor.disabled and not view.limit.value
    view.limit.value = True
    assert view.routing().capacity is not None and not view.capacity_factor.disabled
    wide = RoutingWidget(TOKENS, W_GATE, None, k=1, capacity_factor=4.0, noise_scale=5.0)
    assert wide.capacity_factor.value == 4.0 and wide.noise.value == 5.0
