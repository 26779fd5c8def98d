"""Video decoding speed on CPU and resident memory versus video length (``gas_core.videoio``).

Run from the repository root:

    .venv/bin/python benchmarks/bench_video_decode.py [--lengths 100 400 1600] [--source 720x1280]
        [--max-side 512]

Source videos are portrait H.264 MP4s (``--source`` width x height, 30 fps, ffmpeg's ``testsrc2``
pattern encoded with libx264 ``-preset veryfast -crf 23``, written to a temporary folder; about the
bit rate of a downloaded social-media clip).

Table 1, decoding: each video is decoded by a fresh child Python process with
``iter_video_frames(path, max_side=512)`` (and once more resampled to 15 fps), touching every frame.
"video frames/s" is the source video's frame count divided by the child's decode wall time (ffmpeg's
startup included), so rows with and without resampling compare the same decoding work.
"py RSS" is the child's peak resident memory (``ru_maxrss``: interpreter, numpy, one frame);
"ffmpeg RSS" the peak of the ffmpeg decoder process it ran. Both should stay flat as the video grows;
"all frames" is what holding every decoded frame in one array would take, for comparison.

Table 2, other readers at 512 px: a TikTok-style PNG frame folder (``iter_ref_frames``, one image
decoded and resized per frame) and ``write_mp4`` encoding speed of 512 px frames.

Timings are wall-clock on a shared machine: expect noise of tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ffmpeg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gas_core.videoio import count_video_frames, iter_video_frames, output_size, write_mp4  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from gas_core.videoio import iter_video_frames
start = time.perf_counter()
count = 0
checksum = 0
for frame in iter_video_frames({path!r}, max_side={max_side}, fps={fps}):
    count += 1
    checksum += int(frame[::64, ::64].sum())
seconds = time.perf_counter() - start
print(json.dumps({{
    "frames": count, "seconds": seconds,
    "self_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "child_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}}))
"""


def make_source(path: Path, num_frames: int, width: int, height: int) -> Path:
    (
        ffmpeg.input(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
        .output(
            str(path), vcodec="libx264", preset="veryfast", crf=23, pix_fmt="yuv420p",
            **{"frames:v": num_frames},
        )
        .global_args("-nostdin", "-loglevel", "error")
        .overwrite_output()
        .run()
    )
    return path


def decode_in_child(path: Path, max_side: int, fps: float | None) -> dict:
    code = _CHILD.format(root=str(ROOT), path=str(path), max_side=max_side, fps=fps)
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * width for width in widths) + " |")
    for row in rows:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--source", default="720x1280", help="source width x height")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--folder-frames", type=int, default=60)
    arguments = parser.parse_args()
    source_width, source_height = (int(side) for side in arguments.source.lower().split("x"))
    out_width, out_height = output_size(source_width, source_height, max_side=arguments.max_side)

    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        folder = Path(folder)
        rows = []
        for length in arguments.lengths:
            source = make_source(folder / f"source_{length}.mp4", length, source_width, source_height)
            source_count = count_video_frames(source)
            for fps in (None, 15.0):
                measured = decode_in_child(source, arguments.max_side, fps)
                rows.append([
                    str(source_count), "source" if fps is None else f"{fps:g}",
                    str(measured["frames"]), f"{measured['seconds']:.2f}",
                    f"{source_count / measured['seconds']:.0f}",
                    f"{measured['self_rss_kib'] / 1024:.0f}", f"{measured['child_rss_kib'] / 1024:.0f}",
                    f"{measured['frames'] * out_width * out_height * 3 / 2**20:.0f}",
                ])
        print(
            f"\nTable 1: decoding {source_width}x{source_height} H.264 to {out_width}x{out_height} "
            "RGB (iter_video_frames, fresh process each)"
        )
        print_table(
            ["video frames", "fps out", "frames out", "seconds", "video frames/s", "py RSS MiB",
             "ffmpeg RSS MiB", "all frames MiB"],
            rows,
        )

        import cv2

        from pipelines.datasets.tiktok import VideoRef, iter_ref_frames

        sequence = folder / "TikTok_dataset" / "00001"
        (sequence / "images").mkdir(parents=True)
        source = folder / f"source_{arguments.lengths[0]}.mp4"
        for index, frame in enumerate(iter_video_frames(source, max_frames=arguments.folder_frames)):
            cv2.imwrite(str(sequence / "images" / f"{index + 1:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        ref = VideoRef("tiktok", "00001", sequence, "frames")
        start = time.perf_counter()
        folder_count = sum(1 for _ in iter_ref_frames(ref, fps=None, max_side=arguments.max_side))
        folder_seconds = time.perf_counter() - start

        frames = np.stack(list(iter_video_frames(source, max_side=arguments.max_side, max_frames=100)))
        start = time.perf_counter()
        write_mp4(frames, folder / "written.mp4", 30.0)
        write_seconds = time.perf_counter() - start
        print(f"\nTable 2: other readers and the writer at {out_width}x{out_height}")
        print_table(
            ["operation", "frames", "seconds", "frames/s"],
            [
                [f"PNG frame folder {source_width}x{source_height} -> {out_width}x{out_height}",
                 str(folder_count), f"{folder_seconds:.2f}", f"{folder_count / folder_seconds:.0f}"],
                ["write_mp4 (libx264 crf 18, yuv420p)", str(len(frames)), f"{write_seconds:.2f}",
                 f"{len(frames) / write_seconds:.0f}"],
            ],
        )


if __name__ == "__main__":
    main()
