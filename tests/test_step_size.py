"""Step size vs solution (docs/phenomena.md i): the opt-in effective-scale observables
(sweep key ``effective_scale``) and the ``step_size`` measurement and figure."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
from conftest import REPO, resolved

from dln_kernels import registry
from dln_kernels.sim import simulate
from dln_kernels.measure.phenomena import effective_scale_summary, step_size_measure
from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks
from dln_kernels.pipeline.config import ConfigError, check_sweep
from dln_kernels.pipeline.run import run_chunk, run_dmft_chunk

EFFECTIVE = ("alpha_eff", "gain_mean")


def _small(base_config, **changes):
    sweep = copy.deepcopy(resolved(base_config)["sweeps"]["tiny"])
    sweep.update(d=40, t_max=1.0, output={"n_times": 6, "spacing": "linear"})
    sweep["dmft"].update(n_paths=200, n_batches=4)
    sweep.update(changes)
    return sweep


def test_effective_scale_is_opt_in(base_config):
    # the default recorders and chunk contents do not know the opt-in observables
    assert not set(EFFECTIVE) & set(simulate.OBSERVABLES["dln"])
    assert "alpha_eff" not in registry.observables("dmft")
    assert set(registry.observables("sim:dln", opt_in=("effective_scale",))) >= set(EFFECTIVE)
    sweep = _small(base_config)
    assert sweep["effective_scale"] is False  # the schema's default
    sim = run_chunk(sweep, make_chunks(sweep)[0], progress_every=None)
    th = run_dmft_chunk(sweep, make_dmft_chunks(sweep)[0], progress=False)
    assert not set(EFFECTIVE) & set(sim) and not set(EFFECTIVE) & set(th)
    on = {**sweep, "effective_scale": True}
    assert [c["name"] for c in make_chunks(on)] == [c["name"] for c in make_chunks(sweep)]  # same jobs
    sim_on = run_chunk(on, make_chunks(on)[0], progress_every=None)
    th_on = run_dmft_chunk(on, make_dmft_chunks(on)[0], progress=False)
    for name in sim:  # switching it on adds observables and changes nothing else
        if name not in ("params", "backend"):
            np.testing.assert_array_equal(sim_on[name], sim[name])
    assert sim_on["alpha_eff"].shape == sim_on["gain_mean"].shape == sim_on["e_test"].shape[:1]
    assert th_on["alpha_eff"].shape == th_on["e_test"].shape[:1]
    assert np.all((th_on["alpha_eff"] > 0) & (th_on["alpha_eff"] <= th_on["params"]["alpha"]))


def test_effective_scale_needs_network_uv(base_config):
    sweep = _small(base_config, effective_scale=True)
    check_sweep("t", sweep)
    with pytest.raises(ConfigError, match=r"^sweep t: effective_scale = true: needs model dln with network uv"):
        check_sweep("t", {**sweep, "network": "pm"})
    with pytest.raises(ConfigError, match=r"^sweep t: effective_scale = true: .*not model linear"):
        check_sweep("t", {**sweep, "model": "linear"})


def test_sweep_alpha_eff_is_the_summary_of_the_final_scale(base_config):
    # the pipeline's per-run alpha_eff and gain_mean are effective_scale_summary of the final
    # u^2 - v^2 of that run (the same run integrated by simulate_grid with save_scale)
    sweep = _small(base_config, effective_scale=True, t_max=4.0, dt=0.2)
    chunk = make_chunks(sweep)[0]
    got = run_chunk(sweep, chunk, progress_every=None)
    alphas = sorted(sweep["grid"]["alpha"])
    ref = simulate.simulate_grid(model="dln", d=sweep["d"], delta=chunk["delta"], rho=sweep["grid"]["rho"], sigma=[0.0],
                                 alpha=alphas, weight_decay=[0.0], seeds=chunk["seeds"], dt=0.2,
                                 n_steps=20, record_steps=[0, 20], base_seed=sweep["base_seed"], save_scale=True)
    for r, (seed, alpha) in enumerate(zip(got["params"]["seed"], got["params"]["alpha"])):
        s = effective_scale_summary(ref["scale_final"][chunk["seeds"].index(seed), 0, 0, alphas.index(alpha), 0], alpha)
        assert got["alpha_eff"][r] == pytest.approx(s["alpha_eff"], rel=1e-12)
        assert got["gain_mean"][r] == pytest.approx(s["gain_mean"], rel=1e-10, abs=1e-14)
        assert got["e_test"][r, -1] == pytest.approx(ref["e_test"][chunk["seeds"].index(seed), 0, 0, alphas.index(alpha), 0, -1],
                                                     rel=1e-12)
    assert np.all(got["alpha_eff"] < got["params"]["alpha"])  # every step shrinks the scale (lambda = 0)
    # a coordinate with c_i <= 0 makes the run's value NaN (not an error: may_be_nan)
    bad = simulate.effective_scale_runs(np.array([[1.0, -1e-3], [0.25, 0.25]]), np.array([1.0, 1.0]))
    assert np.isnan(bad["alpha_eff"][0]) and bad["alpha_eff"][1] == pytest.approx(0.5)
    assert bad["gain_mean"][1] == pytest.approx(2 * np.log(2))


# A synthetic sweep laid out like simulations.nc / dmft.nc of a dt_scale sweep (dim ``step``,
# ``time`` per point): E_test = level(α) + K·s·α + M·t + seed offset (shared along s, so the
# paired change is exact; linear in t, so interpolation in t is exact), α_eff = α(1 − 0.1 s),
# dt = s·bound (the larger steps run longer: t_end = 40·dt).
K, M = 0.01, 1e-4
SCALES = (0.5, 1.0)


def _synthetic(prior):
    import xarray as xr

    from dln_kernels.model.schedule import stability_bound

    alphas, bs, seeds, steps = (0.1, 1.0), (0.3, 1.0), np.arange(3), np.array([0, 10, 20, 40])
    axes = {"alpha": alphas, "delta": (0.5,), "rho": (0.2,), "sigma": (0.0,), "weight_decay": (0.0,), "depth": (2,),
            "batch_fraction": bs, "dt_scale": SCALES}
    shape = tuple(len(v) for v in axes.values())
    t = np.zeros(shape + (len(steps),))
    e = np.zeros(shape + (len(seeds), len(steps)))
    ae = np.zeros(shape + (len(seeds),))
    for idx in np.ndindex(*shape):
        p = {n: axes[n][i] for n, i in zip(axes, idx)}
        dt = p["dt_scale"] * stability_bound("dln", p["alpha"], 0.5, 0.0, prior, "uv", 2, p["batch_fraction"])
        t[idx] = steps * dt
        e[idx] = (0.02 + K * p["dt_scale"] * p["alpha"] + 0.003 * seeds)[:, None] + M * t[idx][None, :]
        ae[idx] = p["alpha"] * (1 - 0.1 * p["dt_scale"]) * np.ones(len(seeds))
    dims = tuple(axes)
    coords = {n: np.asarray(v) for n, v in axes.items()}
    sims = xr.Dataset({"e_test": (dims + ("seed", "step"), e), "alpha_eff": (dims + ("seed",), ae),
                       "gain_mean": (dims + ("seed",), -2 * np.log(ae / np.asarray(alphas)[:, None, None, None, None, None, None, None, None]))},
                      coords={**coords, "seed": seeds, "step": steps, "time": (dims + ("step",), t)})
    dm = e.mean(axis=-2)
    dmft = xr.Dataset({"e_test": (dims + ("step",), dm), "e_test_se": (dims + ("step",), 0 * dm + 1e-4),
                       "e_test_below_floor": (dims + ("step",), dm > np.quantile(dm, 0.9)), "alpha_eff": (dims, ae[..., 0])},
                      coords={**coords, "step": steps, "time": (dims + ("step",), t)})
    return sims, dmft


def test_step_size_measure_on_a_synthetic_sweep():
    prior = {"kind": "gauss_bernoulli"}
    sims, dmft = _synthetic(prior)
    m = step_size_measure(sims, dmft, prior, static=lambda alpha, *rest: 10 * alpha)  # a known "theory"
    tab = m["table"]
    assert len(tab) == 2 * 2 * 2 and m["delta"] == 0.5
    assert tab.dmft_below_floor.any() and not tab.dmft_below_floor.all()  # the final value's mask
    np.testing.assert_allclose(tab.dt_over_bound, np.tile(SCALES, 4), rtol=1e-12)
    np.testing.assert_allclose(tab.e_test_sim, 0.02 + K * tab.dt_scale * tab.alpha + 0.003 + M * tab.t_end, rtol=1e-12)
    np.testing.assert_allclose(tab.t_same, np.repeat(tab.t_end.values[::2], 2), rtol=1e-12)  # the smallest step's end
    step_effect = K * (tab.dt_scale - 0.5) * tab.alpha
    np.testing.assert_allclose(tab.change_sim, step_effect + M * (tab.t_end - tab.t_same), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tab.change_same_t_sim, step_effect, rtol=1e-10, atol=1e-15)  # the longer run removed
    np.testing.assert_allclose(tab.change_same_t_dmft, step_effect, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tab.change_same_t_sim_se, 0.0, atol=1e-15)
    np.testing.assert_allclose(tab.change_sim_se, 0.0, atol=1e-14)  # the seed offsets cancel in the pairs
    assert np.all(tab.e_test_sim_se > 1e-3)  # ... but not in the levels
    np.testing.assert_allclose(tab.change_dmft, tab.change_sim, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tab.alpha_eff_ratio_sim, 1 - 0.1 * tab.dt_scale, rtol=1e-12)
    np.testing.assert_allclose(tab.alpha_eff_ratio_dmft, 1 - 0.1 * tab.dt_scale, rtol=1e-12)
    np.testing.assert_allclose(tab.gain_mean_sim, -2 * np.log(1 - 0.1 * tab.dt_scale), rtol=1e-12)
    np.testing.assert_allclose(tab.e_test_static_alpha, 10 * tab.alpha, rtol=1e-12)
    np.testing.assert_allclose(tab.static_change, -tab.dt_scale * tab.alpha, rtol=1e-12)
    np.testing.assert_allclose(tab.static_change_from_min, -(tab.dt_scale - 0.5) * tab.alpha, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tab.settle_sim, M * tab.t_end / 2 / tab.e_test_sim, rtol=1e-10)  # t_mid = t_end/2 here
    with pytest.raises(KeyError, match="effective_scale: true"):
        step_size_measure(sims.drop_vars("alpha_eff"), dmft, prior)


def test_step_size_figure_draws():
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    import matplotlib.pyplot as plt
    from phenomena_plots import step_size

    prior = {"kind": "gauss_bernoulli"}
    sims, dmft = _synthetic(prior)
    m = step_size_measure(sims, dmft, prior)  # with the static theory itself
    fig, tab = step_size(m, sims, dmft, prior), m["table"]
    assert len(fig.axes) == 6 and len(tab) == 8
    assert np.all(np.isfinite(tab.e_test_static_alpha)) and np.all(tab.static_change < 0)  # smaller α_eff: sparser
    plt.close(fig)


def test_aggregated_effective_scale_has_no_time_axis(base_config, tmp_path):
    from dln_kernels.pipeline.io import DMFT_SCHEMA, aggregate_chunks, write_chunk

    sweep = _small(base_config, effective_scale=True)
    paths = []
    for i, c in enumerate(make_chunks(sweep)):
        paths.append(tmp_path / f"s{i}.h5")
        write_chunk(paths[-1], run_chunk(sweep, c, progress_every=None), {})
    ds = aggregate_chunks(paths, sweep, {})
    assert ds["alpha_eff"].dims == ds["e_test"].dims[:-1] and ds["gain_mean"].dims == ds["alpha_eff"].dims
    assert np.all(np.isfinite(ds["alpha_eff"].values)) and ds["alpha_eff"].attrs["units"] == "1"
    write_chunk(tmp_path / "d.h5", run_dmft_chunk(sweep, make_dmft_chunks(sweep)[0], progress=False), {}, schema=DMFT_SCHEMA)
    th = aggregate_chunks([tmp_path / "d.h5"], sweep, {}, schema=DMFT_SCHEMA, with_seed=False)
    assert th["alpha_eff"].dims == th["e_test"].dims[:-1] and "gain_mean" not in th
