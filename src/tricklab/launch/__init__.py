"""Launching sweeps: folder naming, device sharing, the worker pool behind ``hydra/launcher=local``, the manifest."""
