"""Layer 1, the problem: teacher priors, designs, problem instances (X, β*, ξ), the network state
of the diagonal linear network, step schedules and the stability bound. Imports only the
registry and the backend."""
