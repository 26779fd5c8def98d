"""``python -m pipelines.train_diffusion`` (also under ``torchrun ... -m``): runs :func:`pipelines.train_diffusion.cli.main`."""

import sys

from pipelines.train_diffusion.cli import main

if __name__ == "__main__":
    sys.exit(main())
