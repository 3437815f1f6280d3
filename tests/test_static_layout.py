"""static.nc opens as one xarray DataTree (no child group redefines a root dimension), and each
group still opens alone with ``xr.open_dataset`` on coordinates named after the grid axes."""

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import REPO, resolved

from dln_kernels.pipeline.io import static_dataset, write_netcdf
from dln_kernels.registry import GRID_AXES
from dln_kernels.pipeline.run import static_grids, static_on_grid

AXES = GRID_AXES  # the registry's dims, by name


@pytest.fixture(scope="module")
def static_nc(tmp_path_factory):
    """static.nc of the tiny sweep, written as the `static` rule writes it, on small dense grids
    (module scope, so config.yaml is read here rather than through the ``base_config`` fixture)."""
    with open(REPO / "config.yaml") as f:
        sweep = resolved(yaml.safe_load(f))["sweeps"]["tiny"]
    sweep["static"].update(n_alpha=4, n_delta=4, n_rho=3)
    grids = static_grids(sweep)
    datasets = {name: static_dataset(name, coords, static_on_grid(coords, sweep["prior"]), {"title": name})
                for name, coords in grids.items()}
    path = tmp_path_factory.mktemp("static") / "static.nc"
    write_netcdf(datasets.pop("grid"), path, groups=datasets)
    return path, sweep, grids


def test_opens_as_datatree(static_nc):
    path, sweep, grids = static_nc
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        assert set(tree.children) == {"alpha_delta", "delta_rho"}
        assert tree["e_test_final"].dims == AXES
        assert tree["alpha_delta/e_test_final"].dims == ("alpha_dense", "delta_dense", *AXES[2:])
        assert tree["delta_rho/e_test_final"].dims == ("alpha", "delta_dense", "rho_dense", *AXES[3:])
        assert dict(tree.sizes) == {a: len(sweep["grid"][a]) for a in AXES}
        assert tree["alpha_delta"].sizes["alpha_dense"] == len(grids["alpha_delta"]["alpha"])
        assert tree["delta_rho"].sizes["rho_dense"] == len(grids["delta_rho"]["rho"])


def test_groups_open_alone_with_readable_coordinates(static_nc):
    path, sweep, grids = static_nc
    with xr.open_dataset(path, engine="h5netcdf") as root:
        np.testing.assert_array_equal(root["delta"].values, sorted(sweep["grid"]["delta"]))
        assert root["e_test_final"].sel(delta=2.0).dims == tuple(a for a in AXES if a != "delta")
        assert root["alpha"].attrs["long_name"].startswith("initialisation scale")
    with xr.open_dataset(path, engine="h5netcdf", group="alpha_delta") as dense:
        np.testing.assert_array_equal(dense["alpha_dense"].values, grids["alpha_delta"]["alpha"])
        np.testing.assert_array_equal(dense["delta_dense"].values, grids["alpha_delta"]["delta"])
        assert "dense axis" in dense["alpha_dense"].attrs["long_name"]
        # the dense axes hold the sweep's own values: simulations compare at exactly their parameters
        assert set(sweep["grid"]["delta"]) <= set(dense["delta_dense"].values.tolist())
        assert dense["e_test_final"].sel(delta_dense=0.5).notnull().all()
