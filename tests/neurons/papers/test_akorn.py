"""Miyato et al. 2024 (AKOrN): the Kuramoto update keeps every oscillator on the sphere, its tangent
projection, the coupling as the sum it stands for, the energy it lowers, the scenes' separated glyphs,
and bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.neurons.papers import akorn


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), scale=st.floats(0, 10), drive_scale=st.floats(0, 100),
       gamma=st.floats(1e-3, 2), seed=st.integers(0, 999))
def test_the_update_keeps_every_oscillator_on_the_unit_sphere(n, scale, drive_scale, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    x = akorn.random_oscillators((3, 5), n, g).double()
    omega = akorn.random_omega(n, scale, g).double()
    drive = drive_scale * torch.randn(3, 5, n, generator=g, dtype=torch.float64)
    y = akorn.kuramoto_update(x, omega, drive, gamma)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(3, 5, dtype=torch.float64))


def test_the_projection_is_tangent_and_omega_rotates_along_the_sphere():
    g = torch.Generator().manual_seed(0)
    x = akorn.random_oscillators((10,), 4, g)
    y = torch.randn(10, 4, generator=g)
    assert (akorn.tangent_projection(x, y) * x).sum(-1).abs().max() < 1e-5
    omega = akorn.random_omega(4, 1.0, g)
    assert ((x @ omega.T) * x).sum(-1).abs().max() < 1e-5
    # a drive along x itself has no tangent part: without Omega the state does not move
    torch.testing.assert_close(akorn.kuramoto_update(x, torch.zeros(4, 4), 3 * x), x)


def test_the_coupling_is_the_gated_sum_over_neighbours():
    g = torch.Generator().manual_seed(1)
    x = akorn.random_oscillators((2, 5, 6), 3, g)
    gates = torch.rand(2, 5, 6, generator=g)
    kernel = akorn.neighbour_kernel()
    out = akorn.local_coupling(x, gates, kernel)
    expected = torch.zeros_like(x)
    for i in range(5):
        for j in range(6):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if (di or dj) and 0 <= a < 5 and 0 <= b < 6:
                        expected[:, i, j] += gates[:, i, j, None] * gates[:, a, b, None] * x[:, a, b]
    torch.testing.assert_close(out, expected)


def test_without_omega_the_dynamics_lowers_the_energy():
    images, _ = akorn.glyph_scenes(2, 0)
    g = torch.Generator().manual_seed(2)
    x = akorn.random_oscillators(images.shape, 4, g)
    c = 0.3 * torch.randn(x.shape, generator=g)
    kernel, omega = akorn.neighbour_kernel(), torch.zeros(4, 4)
    energies = [akorn.energy(x, c, images, kernel)]
    for _ in range(20):
        x = akorn.kuramoto(x, omega, c, images, kernel, steps=1, gamma=0.05)
        energies.append(akorn.energy(x, c, images, kernel))
    steps = torch.stack(energies).diff(dim=0)
    assert (steps <= 1e-5).all() and energies[-1].sum() < energies[0].sum() - 1


def test_the_glyphs_of_a_scene_never_touch():
    images, masks = akorn.glyph_scenes(6, 3)
    assert images.shape == masks.shape == (6, akorn.SIZE, akorn.SIZE)
    for m in masks:
        assert set(m.unique().tolist()) == set(range(akorn.OBJECTS + 1))
        # no two different glyphs are 8-neighbours: dilate each glyph by one pixel, they stay disjoint
        dilated = [torch.nn.functional.max_pool2d((m == k).float()[None], 3, 1, 1)[0] > 0
                   for k in range(1, akorn.OBJECTS + 1)]
        assert all(not (dilated[a] & (m == b + 1)).any() for a in range(len(dilated))
                   for b in range(len(dilated)) if a != b)


def test_bad_input_is_refused_with_its_name():
    x = akorn.random_oscillators((1, 4, 4), 3, torch.Generator().manual_seed(0))
    c, gates, kernel = torch.zeros_like(x), torch.ones(1, 4, 4), akorn.neighbour_kernel()
    omega = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="unit vectors"):
        akorn.kuramoto(2 * x, omega, c, gates, kernel)
    with pytest.raises(ValueError, match="`gates`"):
        akorn.kuramoto(x, omega, c, torch.ones(1, 4, 5), kernel)
    with pytest.raises(ValueError, match="`kernel`"):
        akorn.kuramoto(x, omega, c, gates, torch.ones(2, 2))
    with pytest.raises(ValueError, match="antisymmetric"):
        akorn.kuramoto_update(x, torch.eye(3), c)
    with pytest.raises(ValueError, match="`gamma`"):
        akorn.kuramoto_update(x, omega, c, gamma=0.0)
    with pytest.raises(TypeError, match="`steps`"):
        akorn.kuramoto(x, omega, c, gates, kernel, steps=1.5)
    with pytest.raises(ValueError, match="`x`"):
        akorn.kuramoto(torch.full_like(x, float("nan")), omega, c, gates, kernel)
