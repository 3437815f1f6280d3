"""Numerical core of the DLN sweep pipeline (installed as ``dln_kernels``).

Layers, lowest first; a module imports only from its own layer or lower ones
(docs/architecture.md, enforced by tests/test_architecture.py):

0. ``registry`` (grid axes, observables, phenomenon kinds), ``backend`` (NumPy/CuPy namespace).
1. ``model``    : the problem — priors, designs, instances, network state, step schedules.
2. ``sim``      : batched gradient descent (simulations) and its recorders;
   ``dmft``     : the dynamical mean-field theory (d → ∞) of the same discrete algorithm;
   ``static``   : the long-time (gradient-flow) limit. The three do not import each other.
3. ``measure``  : curve features, theory–simulation comparison, phase diagrams, phenomena.
4. ``pipeline`` : sweep configuration, chunks, running jobs, HDF5/netCDF files, provenance.

Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
