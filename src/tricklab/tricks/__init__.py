"""The tricks themselves: one module per kind (init, norm, optimizers, schedules, regularization)."""
