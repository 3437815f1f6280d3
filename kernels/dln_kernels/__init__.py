"""Numerical core of the DLN sweep pipeline (installed as ``dln_kernels``).

Modules, one job each:

- ``backend``   : choose NumPy or CuPy (array-namespace style), move arrays to the host.
- ``priors``    : teacher priors (Gauss–Bernoulli, discrete magnitudes) with common random numbers.
- ``problem``   : draw a problem instance (X, β*, ξ) from a seed.
- ``schedule``  : step schedules, output times and the step-size stability bound.
- ``simulate``  : batched gradient descent of the DLN and of the linear model.
- ``sweep``     : expand a sweep configuration into runs and chunks.
- ``provenance``: what every output file records about how it was made.
- ``io``        : the HDF5 chunk format (atomic writes) and aggregation into xarray.

Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
