"""Layer 2, the dynamical mean-field theory (d → ∞) of the discrete algorithm: the N-path solver
(``solver``), its CPU loops (``cpu_products``), the spectral-edge decay rate (``spectral_rate``)
and the exact linear-model SGD recursion (``sgd_linear``)."""
