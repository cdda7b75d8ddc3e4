"""Yang et al. 2024 (VQGraph): the nearest-code lookup, the straight-through VQ step, soft codes."""
import pytest
import torch

from course.gnn.datasets import csbm, split_nodes
from course.gnn.layers import gcn_norm
from course.gnn.papers import vqgraph as vq


def test_nearest_code_is_the_brute_force_argmin():
    g = torch.Generator().manual_seed(0)
    h, codebook = torch.randn(20, 4, generator=g), torch.randn(6, 4, generator=g)
    k, distance = vq.nearest_code(h, codebook)
    brute = torch.tensor([min(range(6), key=lambda j: float(((h[i] - codebook[j]) ** 2).sum()))
                          for i in range(20)])
    assert torch.equal(k, brute)
    torch.testing.assert_close(distance, ((h[:, None] - codebook[None]) ** 2).sum(-1), atol=1e-5, rtol=1e-5)


def test_quantize_looks_up_codes_forward_and_passes_gradients_straight_through():
    h = torch.randn(10, 3, requires_grad=True)
    codebook = torch.randn(4, 3, requires_grad=True)
    z, codebook_loss, commitment_loss, k = vq.quantize(h, codebook)
    torch.testing.assert_close(z, codebook[k])
    weights = torch.randn(10, 3)
    (z * weights).sum().backward()
    torch.testing.assert_close(h.grad, weights)  # the identity into h
    assert codebook.grad is None or (codebook.grad == 0).all()
    torch.testing.assert_close(codebook_loss, commitment_loss)  # same value, different gradients
    h.grad = None
    codebook_loss.backward()
    assert h.grad is None and codebook.grad is not None


def test_soft_code_assignments_are_distributions_peaked_at_the_nearest_code():
    g = torch.Generator().manual_seed(1)
    h, codebook = torch.randn(15, 4, generator=g), torch.randn(5, 4, generator=g)
    r = vq.soft_code_assignment(h, codebook, 0.5)
    torch.testing.assert_close(r.sum(1), torch.ones(15))
    assert torch.equal(r.argmax(1), vq.nearest_code(h, codebook)[0])
    sharp = vq.soft_code_assignment(h, codebook, 1e-4)
    torch.testing.assert_close(sharp, torch.nn.functional.one_hot(r.argmax(1), 5).float(), atol=1e-4, rtol=0)


def test_the_tokenizer_reconstructs_from_codes_and_its_losses_are_finite():
    graph = csbm(40, 2, 0.9, 4.0, 6, 0.5, seed=0)
    torch.manual_seed(0)
    model = vq.Tokenizer(6, 2)
    negatives = torch.randint(40, (2, graph.num_edges))
    out = model(graph, graph.x, gcn_norm(graph), negatives)
    assert out["h"].shape == (40, vq.DIM) and out["logits"].shape == (40, 2)
    torch.testing.assert_close(out["z"], model.codebook[out["k"]])
    assert torch.isfinite(out["reconstruction"]) and torch.isfinite(out["vq"])


def test_kl_of_a_distribution_with_itself_is_zero_and_the_student_maps_into_code_space():
    p = torch.softmax(torch.randn(5, 4), 1)
    assert vq.kl(p, p.log()).abs() < 1e-6
    student = vq.Student(6, 3)
    h, logits = student(torch.randn(7, 6))
    assert h.shape == (7, vq.DIM) and logits.shape == (7, 3)


def test_distillation_with_no_teacher_terms_is_the_plain_mlp(monkeypatch):
    monkeypatch.setattr(vq, "STUDENT_STEPS", 10)
    graph = csbm(40, 2, 0.9, 4.0, 6, 0.5, seed=0)
    train, _ = split_nodes(graph.y, 3, seed=0)
    teacher = {"h": torch.randn(40, vq.DIM), "logits": torch.randn(40, 2)}
    codebook = torch.randn(vq.CODES, vq.DIM)
    a = vq.distill(graph, train, teacher, codebook, 1.0, 0.0, 0.0, seed=0)
    b = vq.distill(graph, train, {"h": -teacher["h"], "logits": -teacher["logits"]}, codebook, 1.0, 0.0, 0.0,
                   seed=0)
    for p, q in zip(a.parameters(), b.parameters()):  # the teacher is ignored
        torch.testing.assert_close(p, q)


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="share D"):
        vq.nearest_code(torch.randn(3, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="`h`"):
        vq.nearest_code(torch.randn(3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="`temperature`"):
        vq.soft_code_assignment(torch.randn(3, 4), torch.randn(2, 4), 0.0)
