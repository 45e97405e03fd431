"""Launching sweeps: their jobs' W&B group, device sharing, the worker pool behind ``hydra/launcher=local``,
the manifest."""
