"""Train one tricklab run (or a sweep with -m) with this checkout's code and configs. See README.md.

Installed without a checkout: ``tricklab train [overrides]`` or ``python -m tricklab.train [overrides]``.
"""
import sys
from pathlib import Path

# This checkout's src/ first: a tricklab installed from another checkout (an editable install points there)
# must not run in its place. The project root (outputs/, data/) is found from the working directory.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from tricklab.train import cli  # noqa: E402

cli()
