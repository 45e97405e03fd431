"""The tricks themselves: one module per kind (init, norm, optimizers, schedules, regularization, clipping, the
gradient stage), each with its registry; ``step`` builds the step's tricks into one bundle."""
