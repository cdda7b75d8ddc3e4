"""MemN2N: section 4.1's encodings, the hops of section 2 against a loop over sentences, bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield.papers import babi_toy, memn2n

DATA = babi_toy.generate(8, 0)


def network(hops, position=True, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = memn2n.MemN2N(len(babi_toy.VOCAB), 6, hops, 6, babi_toy.SENTENCE_WORDS, position=position)
        net.temporal.data.normal_()  # large enough to matter in the comparisons
    return net


def test_position_encoding_is_the_papers_formula():
    lengths = torch.tensor([[1, 3], [4, 0]])
    l = memn2n.position_encoding(lengths, 4, 5)
    assert l.shape == (2, 2, 4, 5)
    for idx in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        J = max(int(lengths[idx]), 1)
        for j in range(1, 5):
            for k in range(1, 6):
                expected = (1 - j / J) - (k / 5) * (1 - 2 * j / J) if j <= lengths[idx] else 0.0
                assert l[idx][j - 1, k - 1].item() == pytest.approx(expected, abs=1e-6)


def reference_answer(net, story, question):
    """Section 2 written as loops over sentences and words (one story), adjacent weight tying."""
    E, T, K = net.embeddings.detach(), net.temporal.detach(), net.hops

    def sentence(words, k):
        J, d = int((words != 0).sum()), E.shape[-1]
        out = torch.zeros(d)
        for j, w in enumerate(words.tolist(), start=1):
            if w:
                l = torch.tensor([(1 - j / J) - (kk / d) * (1 - 2 * j / J) for kk in range(1, d + 1)])
                out += l * E[k, w]
        return out

    u, attention = sentence(question, 0), []
    for hop in range(K):  # A^{hop+1} = E[hop], C^{hop+1} = E[hop + 1]
        m = torch.stack([sentence(s, hop) + T[hop, i] for i, s in enumerate(story)])
        c = torch.stack([sentence(s, hop + 1) + T[hop + 1, i] for i, s in enumerate(story)])
        p = torch.softmax(m @ u, 0)
        u = u + p @ c
        attention.append(p)
    return u @ E[K].T, torch.stack(attention)  # W^T = C^K


@pytest.mark.parametrize("hops", [1, 3])
def test_the_hops_match_a_loop_over_sentences(hops):
    net = network(hops)
    with torch.no_grad():
        logits, attention = net(DATA.stories, DATA.questions)
    assert logits.shape == (8, len(babi_toy.VOCAB)) and attention.shape == (8, hops, 6)
    for b in (0, 5):
        want_logits, want_attention = reference_answer(net, DATA.stories[b], DATA.questions[b])
        assert torch.allclose(logits[b], want_logits, rtol=1e-5, atol=1e-5)
        assert torch.allclose(attention[b], want_attention, rtol=1e-5, atol=1e-6)
        assert torch.allclose(memn2n.hop_attention(net, DATA.stories[b], DATA.questions[b]),
                              want_attention, rtol=1e-5, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 4), st.integers(0, 1000))
def test_hop_attention_sums_to_one_over_the_slots(hops, seed):
    net = network(hops, seed=seed)
    attention = memn2n.hop_attention(net, DATA.stories[seed % 8], DATA.questions[seed % 8])
    assert attention.shape == (hops, 6) and (attention >= 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(hops))


def test_a_bag_of_words_ignores_word_order_and_position_encoding_does_not():
    shuffled = DATA.stories.clone()
    shuffled[..., :5] = shuffled[..., [4, 2, 0, 3, 1]]  # every sentence has 5 words
    for position, same in ((False, True), (True, False)):
        net = network(2, position=position)
        with torch.no_grad():
            a, _ = net(DATA.stories, DATA.questions)
            b, _ = net(shuffled, DATA.questions)
        assert torch.allclose(a, b, atol=1e-5) == same


def test_weight_tying_gives_k_plus_one_embeddings():
    assert network(1).embeddings.shape[0] == 2 and network(3).embeddings.shape[0] == 4
    assert memn2n.model(3, 0).embeddings.shape == (4, len(babi_toy.VOCAB), memn2n.DIM)


def test_bad_input_names_the_argument():
    net = network(1)
    with pytest.raises(ValueError, match="`hops`"):
        memn2n.MemN2N(10, 4, 0, 6, 5)
    with pytest.raises(ValueError, match="`stories`"):
        net(DATA.stories[:, :4], DATA.questions)
    with pytest.raises(ValueError, match="`questions`"):
        net(DATA.stories, DATA.questions[:2])
    with pytest.raises(TypeError, match="`stories`"):
        net(DATA.stories.float(), DATA.questions)
    with pytest.raises(ValueError, match="`stories`"):
        net(torch.where(DATA.stories == 1, -1, DATA.stories), DATA.questions)
    with pytest.raises(ValueError, match="`dim`"):
        memn2n.position_encoding(torch.tensor([2]), 3, 0)
