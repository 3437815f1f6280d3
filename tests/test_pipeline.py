"""The real Snakemake workflow on the tiny sweep, end to end, in a temporary folder."""

import subprocess

import numpy as np
import pytest
import xarray as xr
from conftest import SNAKEMAKE, copy_run

from dln_kernels.model.schedule import n_steps_for, output_steps
from dln_kernels.sim.simulate import simulate_grid


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory):
    """A copy of the session's finished `tiny` run (conftest.tiny_run: this module's former
    `snakemake -d <tmp> --cores 2 --config sweep=tiny`, made once and shared with test_reruns)."""
    return copy_run(tiny_run, tmp_path_factory.mktemp("pipeline"))


def test_simulations_dataset(workdir):
    with xr.open_dataset(workdir / "results/tiny/simulations.nc", engine="h5netcdf") as ds:
        ds = ds.load()
    assert ds["e_test"].dims == ("alpha", "delta", "rho", "sigma", "weight_decay", "depth", "batch_fraction", "dt_scale", "seed", "time")
    assert list(ds["depth"].values) == [2] and ds["depth"].dtype.kind == "i"
    assert list(ds["batch_fraction"].values) == [1.0]  # the default: full-batch gradient descent
    assert list(ds["alpha"].values) == [0.01, 1.0] and list(ds["delta"].values) == [0.5, 2.0]
    assert list(ds["seed"].values) == [0, 1]
    n_steps = n_steps_for(10.0, 0.05)
    steps = output_steps(n_steps, 12)
    np.testing.assert_array_equal(ds["step"].values, steps)
    np.testing.assert_allclose(ds["time"].values, steps * 0.05)
    for key in ("config", "git_commit", "package_versions", "backend", "dtype", "created", "chunks"):
        assert key in ds.attrs
    # The pipeline's numbers are the kernel's numbers: recompute one δ directly, bit for bit
    # (same stacking of seeds, same backend).
    direct = simulate_grid(model="dln", d=60, delta=2.0, rho=[0.3], sigma=[0.0], alpha=[0.01, 1.0],
                           weight_decay=[0.0], seeds=[0, 1], dt=0.05, n_steps=n_steps, record_steps=steps)
    got = ds["e_train"].sel(delta=2.0, depth=2, batch_fraction=1.0, dt_scale=1.0).transpose("seed", "rho", "sigma", "alpha", "weight_decay", "time").values
    assert np.array_equal(got, direct["e_train"])
    assert np.all(np.isfinite(ds["e_test"].values))
    # β₀ = 0, so E_test(0) = ‖β*‖²/(2d) > 0, and large α has learned by the end
    assert np.all(ds["e_test"].isel(time=0) > 0)
    assert float(ds["e_train"].sel(alpha=1.0).isel(time=-1).max()) < 1e-2 * float(ds["e_train"].isel(time=0).min())


def test_dmft_dataset(workdir):
    with xr.open_dataset(workdir / "results/tiny/dmft.nc", engine="h5netcdf") as th, \
            xr.open_dataset(workdir / "results/tiny/simulations.nc", engine="h5netcdf") as sims:
        th, sims = th.load(), sims.load()
    for var in ("e_train", "e_test", "e_train_se", "e_test_se"):
        assert th[var].dims == ("alpha", "delta", "rho", "sigma", "weight_decay", "depth", "batch_fraction", "dt_scale", "time")
    np.testing.assert_array_equal(th["time"].values, sims["time"].values)
    np.testing.assert_array_equal(th["step"].values, sims["step"].values)
    assert np.all(np.isfinite(th["e_test"].values)) and np.all(th["e_test_se"].values >= 0)
    # Both start from β₀ = 0: E_test(0) = E[β*²]/2 = ρ/2 in theory, a seed average in simulation.
    np.testing.assert_allclose(th["e_test"].isel(time=0).values, 0.3 / 2, rtol=0.05)
    assert "config" in th.attrs and "git_commit" in th.attrs


def test_static_dataset(workdir):
    path = workdir / "results/tiny/static.nc"
    with xr.open_dataset(path, engine="h5netcdf") as st:
        assert st["e_test_final"].dims == ("alpha", "delta", "rho", "sigma", "weight_decay", "depth", "batch_fraction", "dt_scale")
        assert list(st["alpha"].values) == [0.01, 1.0] and bool(st["converged"].all())
        # δ = 2, σ = 0: least squares recovers β* exactly in the long-time limit
        assert float(abs(st["e_test_final"].sel(delta=2.0)).max()) == 0.0
        # δ = 0.5: the larger α ends closer to the minimum-ℓ₂ interpolator, with larger error
        e = st["e_test_final"].sel(delta=0.5)
        assert float(e.sel(alpha=1.0).max()) > float(e.sel(alpha=0.01).max()) > 0
    for group in ("alpha_delta", "delta_rho"):
        with xr.open_dataset(path, engine="h5netcdf", group=group) as dense:
            # the dense δ axis (6 values) also holds the sweep's own δ, for exact comparisons
            assert dense.sizes["delta_dense"] >= 6 and "e_test_final" in dense
            assert {0.5, 2.0} <= set(dense["delta_dense"].values.tolist())


def test_logs_benchmarks_and_figures(workdir):
    res = workdir / "results/tiny"
    assert (res / "figures/learning_curves.png").stat().st_size > 10_000
    assert (res / "figures/phase_diagram.png").stat().st_size > 10_000
    assert (res / "figures/dmft_vs_simulation.png").stat().st_size > 10_000
    assert (res / "figures/dmft_deviation.png").stat().st_size > 10_000
    for fig in ("static_phase_diagram", "recovery_diagram", "final_error_vs_alpha"):
        assert (res / f"figures/{fig}.png").stat().st_size > 10_000
    assert any((res / "logs/simulate").iterdir()) and any((res / "benchmarks/simulate").iterdir())
    assert "wrote" in (res / "logs/aggregate.log").read_text()


def test_rerun_is_a_no_op_and_report_builds(workdir):
    proc = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "-n", "--config", "sweep=tiny"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    report = workdir / "report.html"
    proc = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "--config", "sweep=tiny", "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "learning_curves.png" in html and "phase_diagram.png" in html
