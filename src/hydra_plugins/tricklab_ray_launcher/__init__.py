"""tricklab's Ray launcher plugin, ``hydra/launcher=ray`` (Hydra finds plugins only in ``hydra_plugins``)."""
