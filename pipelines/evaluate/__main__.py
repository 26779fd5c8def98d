"""``python -m pipelines.evaluate``: runs :func:`pipelines.evaluate.cli.main_from_args` (``gas eval``, no Prefect)."""

import sys

from pipelines.evaluate.cli import main_from_args

if __name__ == "__main__":
    sys.exit(main_from_args())
