"""Sampling through the Brenier map (issue 8): interpolant, samplers, metrics, `pma sample`."""
import itertools
import math

import h5py
import numpy as np
import pytest
from scipy import special
from scipy.interpolate import RegularGridInterpolator

from conftest import CASES
from pma_solver import load_map
from pma_solver.case import load_case
from pma_solver.densities import ExpressionDensity, GaussianDensity, ProductDensity
from pma_solver.expression import Expression
from pma_solver.runner import Runner
from pma_solver.sampling import (draw, energy_distance, interpolate, mixture_components,
                                 mode_masses, sliced_wasserstein2)


def multilinear_twin(field, lower, spacing, points):
    """Slow, obvious NumPy twin: clamp into the box, sum the 2^d corners, extend affinely."""
    shape = np.array(field.shape[1:])
    d = len(shape)
    s = (points - lower) / spacing
    clamped = np.clip(s, 0, shape - 1)
    base = np.minimum(np.floor(clamped).astype(int), shape - 2)
    t = clamped - base
    value = np.zeros((len(points), field.shape[0]))
    slope = np.zeros((len(points), field.shape[0], d))
    def weight(corner, axes):
        w = np.ones(len(points))
        for k in axes:
            w = w * (t[:, k] if corner[k] else 1 - t[:, k])
        return w

    for corner in itertools.product((0, 1), repeat=d):
        v = field[(slice(None),) + tuple(base[:, k] + corner[k] for k in range(d))].T
        value += weight(corner, range(d))[:, None] * v
        for k in range(d):
            sign = 1 if corner[k] else -1
            slope[:, :, k] += (sign * weight(corner, [j for j in range(d) if j != k]))[:, None] * v
    value += np.einsum("nck,nk->nc", slope, s - clamped)
    return value, slope / spacing


@pytest.mark.parametrize("shape", [(7,), (5, 6), (4, 5, 3)])
def test_interpolant_matches_numpy_twin_and_scipy(shape):
    rng = np.random.default_rng(1)
    d = len(shape)
    lower, spacing = rng.uniform(-1, 0, d), rng.uniform(0.2, 0.5, d)
    upper = lower + spacing * (np.array(shape) - 1)
    field = rng.standard_normal((2,) + shape)
    points = rng.uniform(lower - 0.7, upper + 0.7, (500, d))      # inside and outside the box
    value, jac, outside = interpolate(field, lower, spacing, points)
    twin_value, twin_jac = multilinear_twin(field, lower, spacing, points)
    assert np.allclose(value, twin_value, atol=1e-12) and np.allclose(jac, twin_jac, atol=1e-12)
    assert np.array_equal(outside, np.any((points < lower) | (points > upper), axis=1))
    axes = [lower[k] + spacing[k] * np.arange(shape[k]) for k in range(d)]
    inside = ~outside
    for c in range(2):
        ref = RegularGridInterpolator(axes, field[c])(points[inside])
        assert np.allclose(value[inside, c], ref, atol=1e-12)


def test_interpolant_is_exact_on_affine_maps_inside_and_outside():
    rng = np.random.default_rng(2)
    A, b = rng.standard_normal((2, 2)), rng.standard_normal(2)
    axes = [np.linspace(-1, 1, 5), np.linspace(0, 2, 9)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    field = np.moveaxis(nodes @ A.T + b, -1, 0)
    points = rng.uniform(-4, 4, (200, 2))
    value, jac, _ = interpolate(field, [-1, 0], [0.5, 0.25], points)
    assert np.allclose(value, points @ A.T + b, atol=1e-12)
    assert np.allclose(jac, A, atol=1e-12)


def test_periodic_interpolant_wraps():
    rng = np.random.default_rng(3)
    field = rng.standard_normal((1, 6, 4))
    lower, spacing = np.array([0.0, 0.0]), np.array([1 / 6, 1 / 4])
    points = rng.uniform(0, 1, (100, 2))
    value = interpolate(field, lower, spacing, points, periodic=True)[0]
    shifted = interpolate(field, lower, spacing, points + [3.0, -2.0], periodic=True)[0]
    assert np.allclose(value, shifted, atol=1e-12)
    # The same as the plain interpolant on the grid closed by its wrapped first node.
    closed = np.concatenate([field, field[:, :1]], axis=1)
    closed = np.concatenate([closed, closed[:, :, :1]], axis=2)
    assert np.allclose(value, interpolate(closed, lower, spacing, points)[0], atol=1e-12)


# -- metrics ------------------------------------------------------------------------
def _mean_abs_normal(mu, s):
    """E|Z| for Z ~ N(mu, s^2)."""
    return s * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * s * s)) + mu * (1 - 2 * special.ndtr(-mu / s))


def test_energy_distance_known_cases():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10000, 1))
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    y = rng.standard_normal((10000, 1))
    same = energy_distance(x, y)
    floor = 2 * _mean_abs_normal(0, math.sqrt(2)) / 10000         # E[V-statistic] under the null
    assert 0 < same < 3 * floor
    delta = 1.0
    shifted = energy_distance(x, y + delta)
    exact = 2 * _mean_abs_normal(delta, math.sqrt(2)) - 2 * _mean_abs_normal(0, math.sqrt(2))
    assert shifted == pytest.approx(exact + floor, abs=0.04)
    # NumPy twin of the compiled pair sums, in 2D.
    a, b = rng.standard_normal((300, 2)), rng.standard_normal((200, 2)) + 0.3

    def mean_dist(u, v):
        return np.mean(np.linalg.norm(u[:, None] - v[None], axis=-1))
    twin = 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)
    assert energy_distance(a, b) == pytest.approx(twin, rel=1e-10)


def test_sliced_w2_of_a_shift_and_mode_masses():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5000, 1))
    assert sliced_wasserstein2(x, x + 0.25) == pytest.approx(0.25, rel=1e-12)
    target = load_case(CASES / "mixture3d.toml").target
    weights, means, covs = mixture_components(target)
    assert len(weights) == 4 and weights.sum() == pytest.approx(1.0)
    assert sorted(np.round(weights, 12)) == [0.15, 0.15, 0.35, 0.35]
    y = target.sample(rng, 40000)
    assert np.max(np.abs(mode_masses(y, weights, means, covs) - weights)) < 0.02


def test_rejection_sampler_for_expression_factors():
    """Expressions have no sampler: rejection on the box gives the truncated density."""
    rng = np.random.default_rng(6)
    expr = ExpressionDensity(Expression("exp(-0.5*x0**2)", 1))
    density = ProductDensity([expr, GaussianDensity([1.0], [[0.25]])])
    z = draw(density, rng, 40000, (np.array([-1.0, -5.0]), np.array([2.0, 5.0])))
    assert z[:, 0].min() >= -1.0 and z[:, 0].max() <= 2.0
    a, b = -1.0, 2.0                                           # truncated N(0, 1) on [a, b]
    mass = special.ndtr(b) - special.ndtr(a)
    mean = (math.exp(-a * a / 2) - math.exp(-b * b / 2)) / math.sqrt(2 * math.pi) / mass
    assert z[:, 0].mean() == pytest.approx(mean, abs=4 * 0.9 / math.sqrt(40000))
    assert z[:, 1].mean() == pytest.approx(1.0, abs=4 * 0.5 / math.sqrt(40000))


# -- sampling runs ------------------------------------------------------------------------
def _run(tmp_path_factory, case, sets):
    out = tmp_path_factory.mktemp(case)
    result = Runner(load_case(CASES / f"{case}.toml", sets), out, quiet=True).run(force=True)
    assert result.exit_code == 0, result.stop_reason
    return out


@pytest.fixture(scope="module")
def gauss_run(tmp_path_factory):
    """The transient Gaussian flow from phi0 = |x|^2/2, run to its steady state."""
    return _run(tmp_path_factory, "gauss2d_aniso",
                ["grid.shape=[17,17]", "time.t_end=300.0", "output.every_time=100.0", "time.steady_tol=1e-8"])


def test_gaussian_samples_match_target_moments(gauss_run):
    bmap = load_map(gauss_run)
    n = 200_000
    x, y = bmap.sample(np.random.default_rng(7), n)
    target = bmap.case.target
    sd = np.sqrt(np.diag(target.cov))
    assert np.all(np.abs(y.mean(axis=0) - target.mean) < 4 * sd / math.sqrt(n))
    cov_sd = np.sqrt((np.outer(np.diag(target.cov), np.diag(target.cov)) + target.cov ** 2) / n)
    assert np.all(np.abs(np.cov(y.T) - target.cov) < 4 * cov_sd)
    # The map is affine: DT = A*, and the pushforward density is q at the mapped points.
    A = np.asarray(bmap.case.exact.A_star)
    assert np.allclose(bmap.jacobian(x[:100]), A, atol=1e-5)
    assert np.allclose(bmap.jacobian_det(x[:100]), np.linalg.det(A), rtol=1e-5)
    assert np.allclose(bmap.pushforward_density(x[:100]), target.density(y[:100]), rtol=1e-4)


def test_mode_masses_of_a_1d_mixture_run(tmp_path_factory):
    out = _run(tmp_path_factory, "mixture1d_sep", ["grid.shape=[129]", "time.t_end=0.5"])
    bmap = load_map(out)
    _, y = bmap.sample(np.random.default_rng(8), 100_000)
    weights, means, covs = mixture_components(bmap.case.target)
    assert np.max(np.abs(mode_masses(y, weights, means, covs) - weights)) < 0.01


def test_unnormalized_periodic_target_gives_the_same_map(tmp_path_factory):
    sets = ["grid.shape=[16,16]", "time.t_end=0.05", "output.every_time=0.05"]
    maps = [load_map(_run(tmp_path_factory, name, sets))
            for name in ("torus_bimodal2d", "torus_bimodal2d_unnormalized")]
    assert not maps[1].case.target.normalized
    assert np.max(np.abs(maps[0].node_map - maps[1].node_map)) < 1e-12
    y = maps[1].sample(np.random.default_rng(9), 1000)[1]
    assert np.all((y >= 0) & (y < 1))                              # wrapped onto the torus


# -- command line ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return _run(tmp_path_factory, "gauss1d", ["grid.shape=[33]", "time.t_end=2.0", "output.every_time=1.0"])


def test_pma_sample_writes_documented_h5(small_run, tmp_path, pma):
    out = tmp_path / "s.h5"
    proc = pma("sample", small_run, "-n", "2000", "--seed", "3", "--snapshot", "1", "-o", out, check=0)
    assert "energy distance" in proc.stdout and proc.stderr == ""
    with h5py.File(out, "r") as f, h5py.File(small_run / "run.h5", "r", locking=False) as run:
        assert f["samples"].shape == (2000, 1) and f["source_samples"].shape == (2000, 1)
        assert f.attrs["case_toml"] == run["case"].attrs["toml"]
        assert f.attrs["seed"] == 3 and f.attrs["snapshot"] == 1
        assert f.attrs["snapshot_time"] == run["scales/time"][1]
        assert f.attrs["run_file"] == str((small_run / "run.h5").resolve())
        for key in ("energy_distance", "energy_distance_floor", "sliced_w2", "outside_fraction"):
            assert key in f["metrics"].attrs
        samples = f["samples"][()]
    npy = tmp_path / "s.npy"
    pma("sample", small_run / "run.h5", "-n", "2000", "--seed", "3", "--snapshot", "1", "-o", npy, check=0)
    assert np.array_equal(np.load(npy), samples)                  # same seed, same samples


@pytest.mark.parametrize("args,message", [
    (["missing_run", "-n", "10"], "no run file"),
    (["RUN", "-n", "0"], "-n must be a positive"),
    (["RUN", "-n", "10", "-o", "OUT.txt"], "unsupported suffix"),
    (["RUN", "-n", "10", "--snapshot", "99"], "out of range"),
])
def test_pma_sample_bad_input_one_line_exit_2(args, message, small_run, tmp_path, pma):
    args = [str(small_run) if a == "RUN" else str(tmp_path / a) if a == "OUT.txt" else a for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "s.h5")]
    proc = pma("sample", *args, check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("case,sets", [
    ("gauss1d", ["grid.shape=[33]", "time.t_end=2.0", "output.every_time=1.0"]),
    ("torus_bimodal2d", ["grid.shape=[16,16]", "time.t_end=0.05", "output.every_time=0.05"]),
])
def test_map_from_potential_only_matches_stored_map(case, sets, tmp_path_factory):
    """Without fields/map the map is the centred gradient of fields/u, as the solver's (which
    differs only on box faces, where it uses ghost values and np.gradient one-sided ones)."""
    with_map = load_map(_run(tmp_path_factory, case, sets))
    without = load_map(_run(tmp_path_factory, case, sets + ['output.fields=["u"]']))
    assert without.field_source != with_map.field_source
    h = with_map.spacing
    x = np.random.default_rng(10).uniform(with_map.lower + h, with_map.upper - h, (1000, with_map.dim))
    assert np.max(np.abs(without(x) - with_map(x))) < 1e-8
