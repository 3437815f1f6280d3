"""Finished chunks survive an interrupted workflow: a content-addressed copy of every chunk.

When Snakemake itself is killed (``kill -9``, a lost login node) its running jobs may still
finish and write their chunk, but Snakemake marks their outputs incomplete, and
``--rerun-incomplete`` deletes and recomputes them. Each chunk job therefore also keeps a hard
link of its finished file under ``<output folder>/.cache/<key>.h5``, where the key hashes
everything the result depends on: the job's params (canonical JSON), the source of the kernels
and the package versions. A rerun of the same job finds the entry and links it back instead of
computing again; any change of params or code gives a new key (so a code change still re-runs).
The folder can be deleted at any time; it costs no space while the chunk files exist (hard links).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py

from dln_kernels.pipeline.io import open_h5
from dln_kernels.pipeline.provenance import package_versions


def code_fingerprint() -> str:
    """Hash of this package's source files and the package versions (what results depend on
    besides their parameters)."""
    h = hashlib.sha256(json.dumps(package_versions(), sort_keys=True).encode())
    root = Path(__file__).resolve().parents[1]
    for path in source_files():
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def source_files() -> list:
    """Every Python source file of the ``dln_kernels`` package, all subpackages included, sorted."""
    return sorted(Path(__file__).resolve().parents[1].rglob("*.py"))


def job_key(*params: str) -> str:
    """Key of a job from its canonical params (strings) and :func:`code_fingerprint`."""
    h = hashlib.sha256(code_fingerprint().encode())
    for p in params:
        h.update(b"\0" + p.encode())
    return h.hexdigest()[:24]


def cache_path(output, key: str) -> Path:
    return Path(output).parent / ".cache" / f"{key}.h5"


def _is_whole(path: Path) -> bool:
    """Complete and undamaged: the ``complete`` attribute, and every dataset reads back (HDF5
    verifies each one's Fletcher-32 checksum). A hard link shares its bytes with the chunk file,
    so damage to one is damage to both: a damaged entry is dropped, never restored."""
    datasets = []
    try:
        with open_h5(path) as f:
            if int(f.attrs.get("complete", 0)) != 1:
                return False
            f.visititems(lambda _, obj: datasets.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return True
    except (OSError, KeyError, ValueError, RuntimeError):
        return False


def _link(src: Path, dst: Path) -> None:
    """Hard link ``src`` to ``dst`` atomically (a copy where the file system has no hard links)."""
    tmp = dst.with_name(f".{dst.name}.link-{os.getpid()}")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def restore(output, key: str) -> bool:
    """Put a finished chunk of the same job back at ``output``; False if there is none."""
    src = cache_path(output, key)
    if not src.exists():
        return False
    if not _is_whole(src):
        src.unlink(missing_ok=True)
        return False
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    _link(src, Path(output))
    return True


def store(output, key: str) -> None:
    """Keep a link of the finished chunk at ``output`` under its key."""
    dst = cache_path(output, key)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _link(Path(output), dst)
