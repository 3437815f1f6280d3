"""Layer 4, the pipeline: sweep configuration and its checks, chunks of runs and DMFT points,
running a job, the HDF5 chunk files and aggregated netCDF files, provenance and recomputation."""
