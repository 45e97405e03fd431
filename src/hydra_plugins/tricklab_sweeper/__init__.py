"""tricklab's Hydra sweeper plugin: the grid (and arms) of ``-m``, every job checked before anything is created."""
