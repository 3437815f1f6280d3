"""Layer 2, the long-time (static) theory: the gradient-flow limit of depth 2 (``solver``), of
depth L (``depth``), the potential-independent (τ, γ) state-evolution machinery both use
(``state_evolution``) and the Marchenko–Pastur closed forms of linear gradient descent."""
