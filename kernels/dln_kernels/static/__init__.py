"""Layer 2, the long-time (static) theory: the gradient-flow limit of depth 2 (``solver``), of
depth L (``depth``) and the Marchenko–Pastur closed forms of linear gradient descent."""
