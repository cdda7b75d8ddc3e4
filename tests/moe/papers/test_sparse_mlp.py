"""The Sparse-MLP block of Lou et al. 2021: top-1 MoE along the patch and the channel axes."""
import pytest
import torch

from course.moe.papers import sparse_mlp


def test_top1_moe_is_the_gated_chosen_expert():
    torch.manual_seed(14)
    moe = sparse_mlp.Top1MoE(5, 7, num_experts=3)
    x = torch.randn(20, 5)
    y, probs = moe(x)
    gate, choice = probs.max(-1)
    expected = torch.stack([gate[t] * (torch.relu(x[t] @ moe.w1[choice[t]]) @ moe.w2[choice[t]])
                            for t in range(20)])
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("num_experts", [1, 3])
def test_mixer_block_mixes_patches_per_channel_then_channels_per_patch(num_experts):
    torch.manual_seed(15)
    block = sparse_mlp.MixerBlock(num_patches=4, d=6, token_hidden=5, channel_hidden=7,
                                  num_experts=num_experts)
    x = torch.randn(2, 4, 6)
    out = block(x)
    normed = block.norm_s(x)
    token = torch.stack([torch.stack([block.token_mix(normed[b, :, d].unsqueeze(0))[0][0]
                                      for d in range(6)], dim=1) for b in range(2)])  # [B, N, D]
    mid = x + token
    channel = torch.stack([block.channel_mix(block.norm_c(mid)[b])[0] for b in range(2)])
    torch.testing.assert_close(out, mid + channel, atol=1e-5, rtol=1e-5)
    logits = sparse_mlp.MixerClassifier(8, 4, num_experts=num_experts)(torch.randn(3, 8, 8))
    assert logits.shape == (3, 4)
