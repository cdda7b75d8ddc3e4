"""Mamba's selectivity toy: the selective block's parts depend on the input, the LTI block's do not."""
import torch

from course.metrics import parameter_count
from course.ssm.papers import selectivity as sel
from course.ssm.selective import selective_scan_step_loop


def test_the_lti_model_is_at_least_as_large():
    assert parameter_count(sel.build(False, 0)) >= parameter_count(sel.build(True, 0))


def test_lti_parts_are_the_same_at_every_step_and_for_every_input():
    block = sel.SSMBlock(6, 3, selective=False)
    u = torch.randn(2, 5, 6)
    delta, B, C = block.parts(u)
    assert (delta == delta[:1, :1]).all() and (B == B[:1, :1]).all() and (C == C[:1, :1]).all()
    delta, B, C = sel.SSMBlock(6, 3, selective=True).parts(u)
    assert not (B == B[:1, :1]).all()


def test_the_block_runs_the_selective_scan():
    torch.manual_seed(0)
    block = sel.SSMBlock(4, 3, selective=True)
    x = torch.randn(2, 7, 4)
    T = x.shape[1]
    u = torch.nn.functional.silu(block.conv(block.norm(x).transpose(1, 2))[..., :T].transpose(1, 2))
    delta, B, C = block.parts(u)
    expected = x + selective_scan_step_loop(u, delta, -block.log_A.exp(), B, C, block.D)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_model_maps_tokens_to_logits_and_is_causal():
    model = sel.build(True, 0)
    data = sel.task(3, 0)
    logits = model(data.inputs)
    assert logits.shape == (3, sel.T_TASK, sel.TOKENS + 2)
    changed = data.inputs.clone()
    changed[:, -1] = 0
    torch.testing.assert_close(model(changed)[:, :-1], logits[:, :-1])
