"""``python -m pipelines.train_nerf`` (also under torchrun): runs :func:`pipelines.train_nerf.cli.main_from_args`."""

from pipelines.train_nerf.cli import main_from_args

if __name__ == "__main__":
    raise SystemExit(main_from_args())
