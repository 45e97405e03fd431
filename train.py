"""Train one tricklab run (or a sweep with -m). See README.md."""
from tricklab.train import cli

cli()
