"""Reruns change only what changed: a job's identity depends only on what it computes.

One finished run of the `tiny` sweep (made once per session, conftest.tiny_run) in a copy of the
checkout; then dry runs (`snakemake -n`) after edits that change nothing a job computes (restated
defaults, reordered keys or grid values, a moved checkout) must schedule nothing, and edits that
do (a new δ, a removed δ, a static-theory setting) must schedule exactly the jobs whose inputs
changed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, copy_checkout, copy_run

TINY = yaml.safe_load((REPO / "config.yaml").read_text())["sweeps"]["tiny"]


def snakemake(project, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "-d", str(project), "-s", str(project / "Snakefile"), *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    """A copy of the checkout with a finished `tiny` run (simulations, DMFT, static, figures):
    the session's run (conftest.tiny_run, made by the checkout's Snakefile into a temporary
    working directory) copied in with its metadata (`.snakemake/`) and file times."""
    proj = copy_run(tiny_run, copy_checkout(tmp_path_factory.mktemp("proj") / "proj"))
    # Nothing of the run may hide a file of the checkout (the dry runs below read this Snakefile).
    assert not any((tiny_run / f).exists() for f in ("Snakefile", "config.yaml", "workflow", "kernels"))
    return proj


def planned(project, *configfiles, cwd_project=None):
    """{rule: sorted outputs} of the jobs a dry run of the tiny sweep schedules."""
    extra = [a for f in configfiles for a in ("--configfile", str(f))]
    base = ["--configfile", str(project / "config.yaml")] if configfiles else []
    proc = snakemake(project, "-n", *base, *extra, "--config", "sweep=tiny")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    jobs = {}
    for rule, output in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    output: (.+?)\n", out, flags=re.M):
        jobs.setdefault(rule, []).append(output.split(", ")[0])
    if not jobs:
        assert "Nothing to be done" in out, out[-3000:]
    return {r: sorted(v) for r, v in jobs.items()}


def with_tiny(tmp_path, name, **changes):
    """A config file restating the tiny sweep with ``changes`` (key order as given)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"sweeps": {"tiny": changes}}, sort_keys=False))
    return path


def sim_chunks(project, delta_values):
    from conftest import resolved

    from dln_kernels.pipeline.chunks import make_chunks

    cfg = yaml.safe_load((project / "config.yaml").read_text())
    cfg["sweeps"]["tiny"]["grid"]["delta"] = delta_values
    sweep = resolved(cfg)["sweeps"]["tiny"]
    return {c["delta"]: f"results/tiny/sim/{c['name']}.h5" for c in make_chunks(sweep)}


def test_nothing_reruns_after_a_finished_run(project):
    assert planned(project) == {}


def test_restated_default_and_reordered_keys_rerun_nothing(project, tmp_path):
    assert planned(project, with_tiny(tmp_path, "restated", threads=1, effective_scale=False)) == {}
    # the whole sweep restated with its keys (and grid axes, and grid values) in another order
    reordered = {k: TINY[k] for k in reversed(list(TINY))}
    reordered["grid"] = {a: list(reversed(v)) for a, v in reversed(list(TINY["grid"].items()))}
    assert planned(project, with_tiny(tmp_path, "reordered", **reordered)) == {}


def test_moved_checkout_reruns_nothing(project, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(project, moved, symlinks=True)  # cp -a: results and .snakemake come along
    assert planned(moved) == {}


@pytest.mark.parametrize("deltas, new", [([0.3, 0.5, 2.0], [0.3]), ([0.5], []), ([2.0, 0.5], [])])
def test_grid_edits_rerun_only_new_chunks(project, tmp_path, deltas, new):
    """Prepend, remove, reverse a δ: only chunks of new δ values are simulated (the others keep
    their content-derived names); the aggregation re-runs only if the set of chunks changed."""
    jobs = planned(project, with_tiny(tmp_path, "grid", grid={**TINY["grid"], "delta": deltas}))
    names = sim_chunks(project, deltas)
    assert jobs.get("simulate", []) == sorted(names[d] for d in new), jobs
    if sorted(deltas) == sorted(TINY["grid"]["delta"]):
        assert jobs == {}, jobs
    else:
        assert jobs["aggregate"] == ["results/tiny/simulations.nc"]


def test_static_setting_edit_reruns_only_the_static_theory(project, tmp_path):
    static = {**TINY["static"], "n_alpha": TINY["static"]["n_alpha"] + 1}
    jobs = planned(project, with_tiny(tmp_path, "static", static=static))
    assert sorted(jobs) == ["static", "static_figures"], jobs


def test_phase_diagram_switch_schedules_only_its_figure(project, tmp_path):
    """`dmft.phase_diagram` chooses figures only: no DMFT (or other) job re-runs when it is set."""
    jobs = planned(project, with_tiny(tmp_path, "phase", dmft={**TINY["dmft"], "phase_diagram": True}))
    assert jobs == {"dmft_phase_diagram": ["results/tiny/figures/dmft_phase_diagram.png"]}, jobs


def test_thread_count_is_part_of_the_result(tmp_path):
    """A `threads: 2` sweep run with --cores 1 and with --cores 2 (Snakemake scales the job's
    threads down to 1 in the first) gives identical bits: the kernel always runs with the sweep's
    thread count, and each chunk records the count it actually ran with."""
    cfg = tmp_path / "threads.yaml"
    # tiny's simulations under their own name, without the DMFT and static settings (an overlay of
    # tiny cannot drop them, and a setting of a stage that does not run is refused)
    cfg.write_text(yaml.safe_dump({"sweeps": {"threads": {**{k: v for k, v in TINY.items() if k not in ("dmft", "static")},
                                                          "threads": 2}}}))
    results = {}
    for cores in ("1", "2"):
        wd = tmp_path / f"cores{cores}"
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(wd),
                               "--configfile", str(REPO / "config.yaml"), str(cfg), "--cores", cores,
                               "results/threads/simulations.nc", "--config", "sweep=threads"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[cores] = {}
        for path in sorted((wd / "results/threads/sim").glob("*.h5")):
            with h5py.File(path, "r") as f:
                assert int(f.attrs["threads"]) == 2, (cores, path.name)
                pools = json.loads(f.attrs["threadpools"])
                assert all(p["num_threads"] == 2 for p in pools if p["user_api"] == "blas"), pools
                results[cores][path.name] = f["observables/e_test"][()]
    assert results["1"].keys() == results["2"].keys()
    for name in results["1"]:
        assert np.array_equal(results["1"][name], results["2"][name]), name


def test_recompute_from_the_file_is_bit_identical(project):
    """The README's recipe: a chunk recomputed from its own provenance (thread count included)."""
    from dln_kernels.pipeline.io import read_chunk
    from dln_kernels.pipeline.recompute import recompute_chunk

    for path in sorted((project / "results/tiny/sim").glob("*.h5")) + sorted((project / "results/tiny/dmft").glob("*.h5")):
        again = recompute_chunk(path)
        stored = read_chunk(path, again["schema"])
        for name, values in stored["observables"].items():
            assert np.array_equal(again[name], values, equal_nan=True), (path.name, name)


def test_code_fingerprint_covers_every_subpackage(tmp_path, monkeypatch):
    """The cache key hashes the whole package (sim/, dmft/, static/, …), not only pipeline/: a
    kernel change must never restore a result computed by the old kernel."""
    import shutil
    from pathlib import Path

    from dln_kernels.pipeline import chunk_cache

    root = Path(chunk_cache.__file__).resolve().parents[1]
    names = {p.relative_to(root).as_posix() for p in chunk_cache.source_files()}
    assert {"sim/simulate.py", "dmft/solver.py", "static/solver.py", "model/priors.py", "registry.py"} <= names
    copy = tmp_path / "dln_kernels"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(chunk_cache, "__file__", str(copy / "pipeline" / "chunk_cache.py"))
    before = chunk_cache.code_fingerprint()
    (copy / "sim" / "simulate.py").write_text((copy / "sim" / "simulate.py").read_text() + "\n# changed\n")
    assert chunk_cache.code_fingerprint() != before
