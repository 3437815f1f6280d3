"""The pipeline's HDF5 I/O works where file locks fail (NFS without lock support, ENOLCK).

An LD_PRELOAD shim (tests/data/enolck_flock.c) makes every ``flock`` fail with errno 37, as such
a file system does; the project's writers and readers must not ask HDF5 for locks at all.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).parent / "data" / "enolck_flock.c"

CONTROL = """
import h5py
try:
    h5py.File("plain.h5", "w")
except OSError as exc:
    assert exc.errno == 37, exc
    print("locked out:", exc)
else:
    raise SystemExit("plain h5py.File opened: the shim does not hit the lock call HDF5 makes")
"""

PROJECT_IO = """
import numpy as np
import xarray as xr
from dln_kernels.pipeline.io import aggregate_chunks, open_netcdf, read_chunk, write_chunk, write_netcdf

sweep = {"grid": {"alpha": [1.0], "delta": [0.5], "rho": [0.3], "sigma": [0.0], "weight_decay": [0.0]},
         "seeds": 2}
time = np.linspace(0.0, 1.0, 3)
paths = []
for seed in (0, 1):
    params = {a: np.array(v) for a, v in sweep["grid"].items()}
    params["seed"] = np.array([seed])
    result = {"params": params, "time": time, "step": np.arange(3),
              "e_train": np.full((1, 3), 0.1 * (seed + 1)), "e_test": np.full((1, 3), 0.2)}
    paths.append(f"chunk_{seed}.h5")
    write_chunk(paths[-1], result, {"git_commit": "test"})
assert read_chunk(paths[1])["observables"]["e_train"][0, 0] == 0.2
ds = aggregate_chunks(paths, sweep, {"title": "no locks"})
write_netcdf(ds, "agg.nc", groups={"child": ds.isel(time=[0])})
with open_netcdf("agg.nc") as back:
    xr.testing.assert_identical(back.load(), ds)
with open_netcdf("agg.nc", group="child") as child:
    assert child.sizes["time"] == 1
print("ok")
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) to build the ENOLCK LD_PRELOAD shim")
    out = tmp_path_factory.mktemp("shim") / "enolck_flock.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE)], check=True)
    return out


def run_under_shim(shim, code, cwd):
    env = {**os.environ, "LD_PRELOAD": str(shim)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_project_io_needs_no_file_locks(shim, tmp_path):
    control = run_under_shim(shim, CONTROL, tmp_path)
    assert control.returncode == 0, control.stdout + control.stderr
    assert "errno = 37" in control.stdout
    res = run_under_shim(shim, PROJECT_IO, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")
