"""Russwurm et al. 2024: the real spherical harmonics are orthonormal on the sphere and match their closed
forms; the wrap features and the SIREN have their documented shapes; bad input is named."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.neurons.papers import spherical_harmonics as S


def gauss_legendre_grid(n_lat: int = 24, n_lon: int = 48):
    """Gauss-Legendre nodes in sin(latitude) times uniform longitudes: exact for degree < 2 n_lat products.
    -> lonlat [n_lat n_lon, 2], area weights [n_lat n_lon] summing to 4 pi"""
    nodes, weights = np.polynomial.legendre.leggauss(n_lat)
    lat = torch.rad2deg(torch.asin(torch.tensor(nodes)))
    lon = torch.arange(n_lon, dtype=torch.float64) * 360 / n_lon - 180
    grid = torch.stack(torch.meshgrid(lon, lat, indexing="xy"), -1).reshape(-1, 2)
    step = torch.full((1, n_lon), 2 * math.pi / n_lon, dtype=torch.float64)
    area = (torch.tensor(weights)[:, None] * step).reshape(-1)
    return grid, area


def test_the_harmonics_are_orthonormal_on_the_sphere():
    grid, area = gauss_legendre_grid()
    Y = S.spherical_harmonics(grid, 10)  # [M, 121]
    assert Y.shape == (grid.shape[0], 121) and Y.dtype == torch.float64
    gram = Y.T @ (Y * area[:, None])
    torch.testing.assert_close(gram, torch.eye(121, dtype=torch.float64), atol=1e-10, rtol=0)


@settings(max_examples=20, deadline=None)
@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90))
def test_low_degrees_match_their_closed_forms(lon, lat):
    Y = S.spherical_harmonics(torch.tensor([[lon, lat]], dtype=torch.float64), 2)[0]
    x, y, z = S.unit_vectors(torch.tensor([[lon, lat]], dtype=torch.float64))[0]
    c1, c2 = math.sqrt(3 / (4 * math.pi)), math.sqrt(15 / (4 * math.pi))
    expected = {(0, 0): 0.5 / math.sqrt(math.pi), (1, -1): c1 * y, (1, 0): c1 * z, (1, 1): c1 * x,
                (2, -2): c2 * x * y, (2, -1): c2 * y * z,
                (2, 0): math.sqrt(5 / (16 * math.pi)) * (3 * z * z - 1),
                (2, 1): c2 * x * z, (2, 2): c2 / 2 * (x * x - y * y)}
    for (l, m), value in expected.items():
        assert abs(Y[S.harmonic_index(l, m)].item() - float(value)) < 1e-12, (l, m)


def test_the_encodings_agree_across_the_dateline_and_at_the_poles():
    east, west = torch.tensor([[180.0, 20.0]]), torch.tensor([[-180.0, 20.0]])
    for encode in S.ENCODINGS.values():
        torch.testing.assert_close(encode(east, 4), encode(west, 4))
    # at a pole every longitude is one point: SH agree, the lon/lat sinusoids do not
    poles = torch.tensor([[-120.0, 90.0], [45.0, 90.0]], dtype=torch.float64)
    sh, wrap = S.spherical_harmonics(poles, 6), S.wrap_features(poles, 6)
    torch.testing.assert_close(sh[0], sh[1])
    assert (wrap[0] - wrap[1]).abs().max() > 0.5 and wrap.shape == (2, 24)


def test_siren_initialisation_and_the_field():
    torch.manual_seed(0)
    net = S.siren(121, hidden=16, layers=2)
    first, second = net[0], net[1]
    assert first.w0 == 30 and second.w0 == 1
    assert first.linear.weight.abs().max() <= 1 / 121
    assert second.linear.weight.abs().max() <= math.sqrt(6 / 16)
    points = S.uniform_sphere(500, 0)
    assert net(S.spherical_harmonics(points)).shape == (500, 1)
    assert ((points[:, 1].abs() > 60).float().mean() - (1 - math.sin(math.radians(60)))).abs() < 0.06
    values = S.bumpy_field(torch.tensor([[0.0, 82.0], [179.0, 10.0], [-179.0, 10.0]]))
    assert values[0] > 0.9 and values[1] > 0.9 and values[2] > 0.6  # on two bumps, one across the dateline


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`lonlat`"):
        S.spherical_harmonics(torch.tensor([[0.0, 95.0]]))
    with pytest.raises(ValueError, match="`lonlat`"):
        S.wrap_features(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="`lonlat`"):
        S.spherical_harmonics(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="`degree`"):
        S.spherical_harmonics(torch.zeros(3, 2), 21)
    with pytest.raises(ValueError, match="`lonlat` must be finite"):
        S.bumpy_field(torch.tensor([[float("nan"), 0.0]]))
