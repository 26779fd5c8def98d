"""GAS diffusion model: parameter counts of the paper preset and CPU timings of the tiny preset.

Run from the repository root (about 30 s on two CPU cores):

    .venv/bin/python benchmarks/bench_diffusion_model.py [--threads 1] [--repeats 5]

Parameter counts: the ``paper`` preset (SVD-xt 1.1 img2vid sizes, the release's encoder widths) is
built on ``torch.device("meta")``, so no weights are allocated. Timings: the ``tiny`` preset
(64x64 images, 8x8 latents) on CPU, median of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from gas_core.diffusion import GASConditions, GASModel, GASModelPreset, GenerationMode, svd_added_time_ids  # noqa: E402
from timing import median_seconds  # noqa: E402


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def paper_parameter_rows() -> list[tuple[str, str, str]]:
    preset = GASModelPreset.paper()
    with torch.device("meta"):
        unet = preset.unet.build()
        pose_net, nerf_net = preset.conditions.build(unet.config.block_out_channels[0])
        vae = preset.vae.build()
        image_encoder = preset.image_encoder.build()
    switcher = count(unet.mode_embedding)
    trainable = count(unet) + count(pose_net) + count(nerf_net)
    rows = [
        ("UNet (SVD-xt spatio-temporal, 8 in-channels)", f"{count(unet) - switcher:,}", "trainable"),
        ("switcher MLP (mode_embedding)", f"{switcher:,}", "trainable"),
        ("normal-map encoder (pose_net)", f"{count(pose_net):,}", "trainable"),
        ("NeRF encoder (nerf_net)", f"{count(nerf_net):,}", "trainable"),
        ("VAE (AutoencoderKLTemporalDecoder)", f"{count(vae):,}", "frozen"),
        ("CLIP image encoder (ViT-H/14)", f"{count(image_encoder):,}", "frozen"),
        ("denoiser total", f"{trainable:,}", f"{trainable * 2 / 2**30:.2f} GiB in fp16"),
        ("model total", f"{trainable + count(vae) + count(image_encoder):,}", ""),
    ]
    return rows


def milliseconds(function, repeats: int) -> str:
    return f"{median_seconds(function, repeats) * 1e3:.0f} ms"


def tiny_timing_rows(repeats: int) -> list[tuple[str, str, str]]:
    model = GASModel.from_preset("tiny", seed=0)
    preset = GASModelPreset.tiny()
    rows = []
    for batch, frames in ((1, 4), (2, 4), (1, 8)):
        latent = preset.image_size // 8
        generator = torch.Generator().manual_seed(0)
        conditions = GASConditions(
            reference_latent=torch.randn(batch, 4, latent, latent, generator=generator),
            image_embedding=torch.randn(batch, 1, preset.image_encoder.projection_dim, generator=generator),
            nerf_latents=torch.randn(batch, frames, 4, latent, latent, generator=generator),
            normal_maps=torch.rand(batch, frames, 3, preset.image_size, preset.image_size, generator=generator),
            mode=GenerationMode.VIEW.one_hot(batch),
            added_time_ids=svd_added_time_ids(batch),
        )
        noisy = torch.randn(batch, frames, 4, latent, latent, generator=generator)
        c_noise = torch.zeros(batch)

        def forward():
            with torch.no_grad():
                model.denoiser(noisy, c_noise, conditions)

        def forward_backward():
            model.denoiser.zero_grad(set_to_none=True)
            model.denoiser(noisy, c_noise, conditions).square().mean().backward()

        rows.append((f"denoiser forward, B={batch} F={frames}", milliseconds(forward, repeats), ""))
        rows.append((f"denoiser forward+backward, B={batch} F={frames}", milliseconds(forward_backward, repeats), ""))
    images = torch.rand(8, 3, preset.image_size, preset.image_size) * 2 - 1
    rows.append(("encode_latents, 8 images", milliseconds(lambda: model.encode_latents(images), repeats), ""))
    rows.append(("encode_image_embedding, 1 image", milliseconds(lambda: model.encode_image_embedding(images[:1]), repeats), ""))
    latents = model.encode_latents(images) * model.scaling_factor
    rows.append(("decode_latents, 8 frames", milliseconds(lambda: model.decode_latents(latents, 8), repeats), ""))
    denoiser_parameters = count(model.denoiser)
    frozen = f"VAE {count(model.vae):,}, CLIP {count(model.image_encoder):,}"
    rows.append(("tiny denoiser parameters", f"{denoiser_parameters:,}", frozen))
    return rows


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    print(f"\n{title}")
    print(f"| {'part'.ljust(width)} | {'value'.rjust(value_width)} | note |")
    print(f"| {'-' * width} | {'-' * value_width} | ---- |")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value.rjust(value_width)} | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timings")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        raise ValueError("--threads and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    print_table("Paper preset (SVD-xt 1.1 sizes, meta device): parameters", paper_parameter_rows())
    print_table(f"Tiny preset on CPU ({args.threads} thread(s), median of {args.repeats})", tiny_timing_rows(args.repeats))


if __name__ == "__main__":
    main()
