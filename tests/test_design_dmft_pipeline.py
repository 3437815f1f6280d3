"""The pipeline's DMFT per design (docs/dmft.md "Diagonal designs", docs/file_formats.md): chunks
per design spectrum, names of sweeps without designs unchanged, a sweep over two designs
aggregated into a dmft.nc with a ``design`` dim, the universality measurement of the three
predictions, and the parse-time refusal of a design spectrum whose DMFT is unstable at the step."""

import json
import math
import sys

import numpy as np
import pytest
from conftest import REPO
from conftest import resolved as validated

from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.measure import phenomena as pm
from dln_kernels.model import designs as D
from dln_kernels.pipeline.chunks import (ISOTROPIC, dmft_chunk_labels, dmft_design_labels, dmft_designs, dmft_layout,
                                         make_dmft_chunks)
from dln_kernels.pipeline.config import ConfigError, check_sweep
from dln_kernels.pipeline.io import DMFT_SCHEMA, aggregate_chunks, aggregate_to_netcdf, open_netcdf, write_chunk
from dln_kernels.pipeline.run import run_dmft_chunk

G40 = {"kind": "gaussian", "name": "g40", "d": 40}
TL = {"kind": "two_level", "name": "tl", "d": 40, "fraction": 0.25, "ratio": 4.0}
PL = {"kind": "gaussian_powerlaw", "name": "pl", "d": 40, "exponent": 1.0}  # rotated: the spectrum-only theory


def _tiny(base_config, design=None, **over):
    """The shipped tiny sweep (validated), with ``design`` and the keys ``over`` replaced."""
    sweep = base_config["sweeps"]["tiny"]
    if design is not None:
        sweep["design"] = design
    sweep.update(over)
    return validated(base_config)["sweeps"]["tiny"]


# ---- chunks --------------------------------------------------------------------------------------
def test_chunks_per_design_spectrum(base_config):
    plain = make_dmft_chunks(_tiny(base_config))
    sweep = _tiny(base_config, [G40, TL, PL, {"kind": "digits", "whiten": "zca"}])
    chunks = make_dmft_chunks(sweep)
    # the isotropic chunks are those of the sweep without designs; one more set per non-flat spectrum
    iso = [c for c in chunks if "design" not in c]
    assert [c["name"] for c in iso] == [c["name"] for c in plain] and iso == plain
    assert [c["design"]["name"] for c in chunks if "design" in c] == ["tl"] * len(plain) + ["pl"] * len(plain)
    assert all(c["name"].startswith(f"{c['design']['name']}_points") for c in chunks if "design" in c)
    assert [None if d is None else d["name"] for d in dmft_designs(sweep)] == [None, "tl", "pl"]
    lay = dmft_layout(sweep)
    assert (lay["jobs"], lay["points"]) == (len(chunks), sum(len(c["points"]) for c in chunks))
    assert dmft_design_labels(sweep) == ["g40", "tl", "pl", "digits_zca", ISOTROPIC]
    assert dmft_chunk_labels(sweep, None) == ["g40", "digits_zca", ISOTROPIC] and dmft_chunk_labels(sweep, "tl") == ["tl"]


def test_names_of_sweeps_without_designs_are_unchanged(base_config):
    # the names the code wrote before the DMFT per design (the shipped tiny and validation sweeps)
    assert [c["name"] for c in make_dmft_chunks(_tiny(base_config))] == ["points4_0cd0e0e0"]
    assert [c["name"] for c in make_dmft_chunks(_tiny(base_config, {"kind": "gaussian"}))] == ["points4_0cd0e0e0"]
    val = validated(base_config)["sweeps"]["validation"]
    assert sorted(c["name"] for c in make_dmft_chunks(val)) == [
        "points4_2c4b6441", "points4_343bb4a2", "points4_445ecc4d", "points4_6e393e71", "points4_868e1693",
        "points4_c57adf78"]


def test_flat_spectra_by_construction():
    for spec in (G40, {**TL, "ratio": 1.0}, {**PL, "exponent": 0.0}):
        des = D.resolve_design(spec, 40)
        assert D.flat_spectrum(des) and np.array_equal(D.design_spectrum(des), np.ones(40))
    zca = D.resolve_design({"kind": "digits", "whiten": "zca"}, 61)
    assert D.flat_spectrum(zca) and np.max(np.abs(D.design_spectrum(zca) - 1)) < 1e-8
    assert [D.dmft_theory(D.resolve_design(s, 40)) for s in (G40, TL, PL)] == ["isotropic", "exact", "spectrum-only"]
    prov = D.spectrum_provenance(D.resolve_design(TL, 40))
    assert prov["theory"] == "exact" and prov["lambda_max"] == pytest.approx(4 / 1.75) and len(prov["sha256"]) == 64


# ---- jobs and aggregation ------------------------------------------------------------------------
def _run_and_write(sweep, chunks, folder):
    paths = []
    for c in chunks:
        path = folder / f"{c['name']}.h5"
        write_chunk(path, run_dmft_chunk(sweep, c, progress=False), {"config": json.dumps({"chunk": c})},
                    schema=DMFT_SCHEMA)
        paths.append(path)
    return paths


def test_two_designs_aggregate_with_a_design_dim(base_config, tmp_path):
    sweep = _tiny(base_config, [G40, TL], t_max=1.0, dmft={"enabled": True, "n_paths": 400, "n_batches": 2,
                                                             "points_per_job": 2})
    chunks = make_dmft_chunks(sweep)
    paths = _run_and_write(sweep, chunks, tmp_path)
    ds = aggregate_chunks(paths, sweep, {}, schema=DMFT_SCHEMA, with_seed=False)
    assert list(ds["design"].values) == ["g40", "tl", ISOTROPIC] and ds["e_test"].dims[:-1] == (
        "alpha", "delta", "rho", "sigma", "weight_decay", "depth", "batch_fraction", "dt_scale", "design")
    iso, g40, tl = (ds.sel(design=n) for n in (ISOTROPIC, "g40", "tl"))
    assert all(np.array_equal(iso[v].values, g40[v].values) for v in ("e_train", "e_test", "e_train_se"))
    assert not np.allclose(iso["e_train"].values[..., -1], tl["e_train"].values[..., -1])
    # the job solved the DMFT of tl's spectrum: the same numbers as solve_dmft(design=...) directly
    p = {"alpha": 1.0, "delta": 2.0, "rho": float(tl["rho"][0]), "sigma": 0.0}
    steps = ds["step"].values
    direct = solve_dmft(p, n_steps=int(steps[-1]), dt=sweep["dt"], record_steps=steps, n_paths=400, n_batches=2,
                        design=D.design_spectrum(D.resolve_design(TL, 40)), seed=int(sweep["dmft"]["seed"]), progress=False)
    np.testing.assert_allclose(tl["e_test"].sel(alpha=1.0, delta=2.0).values.ravel(), direct["e_test"][0], rtol=1e-10)
    # chunk order does not matter; the file version (incremental on a rerun) holds the same
    again = aggregate_chunks(paths[::-1], sweep, {}, schema=DMFT_SCHEMA, with_seed=False)
    assert again.identical(ds)
    for _ in range(2):
        info = aggregate_to_netcdf(paths, tmp_path / "dmft.nc", sweep, {}, schema=DMFT_SCHEMA, with_seed=False)
    assert info["incremental"] and info["read"] == 0
    with open_netcdf(tmp_path / "dmft.nc") as f:
        assert np.array_equal(f["e_test"].values, ds["e_test"].values)


def test_spectra_false_is_the_isotropic_dmft_only(base_config, tmp_path):
    """``dmft.spectra: false`` (the shipped ``universality`` sweep): the chunks of the sweep without
    designs, no ``design`` dim in dmft.nc, and the step check ignores the spectra."""
    dm = {"enabled": True, "n_paths": 400, "n_batches": 2, "points_per_job": 2, "spectra": False}
    plain = make_dmft_chunks(_tiny(base_config, None, t_max=1.0, dmft={k: v for k, v in dm.items() if k != "spectra"}))
    sweep = _tiny(base_config, [G40, TL], t_max=1.0, dmft=dm)  # (_tiny edits base_config: after plain's chunks)
    assert make_dmft_chunks(sweep) == plain and dmft_designs(sweep) == [None]
    ds = aggregate_chunks(_run_and_write(sweep, make_dmft_chunks(sweep), tmp_path), sweep, {}, schema=DMFT_SCHEMA,
                          with_seed=False)
    assert "design" not in ds.dims
    check_sweep("tiny", _tiny(base_config, [G40, PL], dt=0.02, dmft=dm))  # refused with spectra (test below)


# ---- the figure's measurement --------------------------------------------------------------------
def test_spectrum_share():
    gap, sgap, share, se = pm.spectrum_share(math.e**2, 1.0, math.e, (0.0, 0.0, 0.0))
    assert (gap, sgap, share, se) == pytest.approx((2.0, 1.0, 0.5, 0.0))
    assert pm.spectrum_share(2.0, 1.0, 1.0)[2] == 0.0  # a flat spectrum explains nothing
    assert math.isnan(pm.spectrum_share(1.0, 1.0, 3.0)[2])  # no gap: no share
    assert all(math.isnan(x) for x in pm.spectrum_share(2.0, 1.0, math.nan))
    _, _, _, se = pm.spectrum_share(math.e**2, 1.0, math.e, (0.1 * math.e**2, 0.0, 0.0))
    assert se == pytest.approx(0.1 * 1.0 / 4.0)  # |d share / d ln sim| = spec_gap / gap² = 1/4


def test_universality_measure_of_three_predictions():
    """Synthetic files: simulations = isotropic DMFT × k, spectrum DMFT = isotropic × k^f, so the
    gap is ln k and the share f at every point, and relative to t = 0 there is no gap; the flat
    design's spectrum DMFT is the isotropic one."""
    import xarray as xr

    sys.path.insert(0, str(REPO / "tests"))
    from test_phenomena import _dataset

    steps, dt, ax = np.arange(0, 50, 5), 0.1, {"alpha": [0.1, 0.5], "delta": [0.5, 2.0]}
    curve = lambda p, t: 0.1 * np.exp(-p["alpha"] * t / p["delta"]) + 0.01  # noqa: E731
    k, f = {"gauss": 1.1, "patches": 2.0}, {"gauss": 0.0, "patches": 0.6}

    def field(scale):
        return {"e_train": lambda p, t: scale(p) * curve(p, t), "e_test": lambda p, t: 2 * scale(p) * curve(p, t),
                "e_train_se": lambda p, t: 0 * t, "e_test_se": lambda p, t: 0 * t}

    theory = {n: _dataset(steps, dt, field(lambda p, n=n: k[n] ** f[n]), **ax) for n in k}
    theory[ISOTROPIC] = _dataset(steps, dt, field(lambda p: 1.0), **ax)
    dmft = xr.concat(list(theory.values()), dim=xr.DataArray(list(theory), dims="design", name="design"))
    sims = xr.concat([_dataset(steps, dt, field(lambda p, n=n: k[n] * (1.1 if p["seed"] == 0 else 0.9)), **ax, seeds=[0, 1])
                      for n in k], dim=xr.DataArray(list(k), dims="design", name="design"))
    tab = pm.universality_measure(sims, dmft)["table"]
    assert len(tab) == 2 * 2 * 2 * 2
    for r in tab.itertuples():
        assert r.gap == pytest.approx(math.log(k[r.design])) and r.share == pytest.approx(f[r.design], abs=1e-12)
        assert r.final_dmft_spectrum == pytest.approx(r.final_dmft * k[r.design] ** f[r.design])
        assert r.gap_se == pytest.approx(r.final_sim_se / r.final_sim)
        assert r.gap_from_start == pytest.approx(0.0, abs=1e-12)  # a constant factor (the draw at t = 0) drops out
        assert r.flat_spectrum == (r.design == "gauss")
        assert (r.share_se > 0) if r.design == "patches" else (r.share_se == 0)  # flat: no DMFT error enters
    curves = pm.universality_measure(sims, dmft.sel(design=ISOTROPIC, drop=True))  # an older dmft.nc: isotropic only
    assert curves["table"].share.isna().all() and curves["curves"][("gauss", 0.1, 0.5, "e_test")][3] is None


# ---- parse-time refusals -------------------------------------------------------------------------
def test_unstable_spectrum_dmft_step_is_refused(base_config):
    # the rotated power law's simulation keeps the isotropic bound; its spectrum's DMFT does not
    lam = D.spectrum_max(D.resolve_design(PL, 40))
    sweep = _tiny(base_config, [G40, PL], dt=0.02)
    with pytest.raises(ConfigError) as exc:
        check_sweep("tiny", sweep)
    line = str(exc.value).splitlines()[0]
    assert line.startswith("sweep tiny: dt = 0.02: the step 0.02 exceeds the DMFT stability bound"), line
    assert f"lambda_max/mean = {lam:.4g} of design pl's spectrum" in line
    check_sweep("tiny", sweep, spectra=False)  # unselected sweeps skip the spectra (no pools built)
    bound = float(line.split("use dt <= ")[1].split(",")[0])
    check_sweep("tiny", {**sweep, "dt": bound})  # the step it proposes passes
    no_dmft = _tiny(base_config, [G40, PL], dt=0.02, dmft={"enabled": False})
    check_sweep("tiny", no_dmft)


def test_design_named_isotropic_is_refused(base_config):
    sweep = _tiny(base_config, [G40, {**TL, "name": ISOTROPIC}])
    with pytest.raises(ConfigError, match=r"^sweep tiny: design\[1\]\.name = isotropic: is reserved"):
        check_sweep("tiny", sweep)
