"""Layer 2, simulations: batched (mini-batch) gradient descent of the DLN and of the linear model,
and the recorders that measure each registered observable from the state."""
