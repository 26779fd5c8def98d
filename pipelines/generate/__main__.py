"""``python -m pipelines.generate``: runs :func:`pipelines.generate.cli.main_from_args` (``gas generate``)."""

import sys

from pipelines.generate.cli import main_from_args

if __name__ == "__main__":
    raise SystemExit(main_from_args(sys.argv[1:]))
