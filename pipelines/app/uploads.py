"""Checks of the Generate tab's uploads before anything is queued: size, kind, and every file read as
``gas generate`` reads it (:func:`pipelines.generate.check_input_files`), with messages that name the
uploaded file by its own name (not the server's temporary path)."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from gas_core.videoio import VIDEO_SUFFIXES
from pipelines.generate import GenerateConfig, GenerateInputError, GenerateInputs, check_input_files

__all__ = ["IMAGE_SUFFIXES", "POSE_SUFFIXES", "UploadRefused", "check_uploads"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
POSE_SUFFIXES = (".json", ".npz", *VIDEO_SUFFIXES)

_WHAT = {"image": "photo", "mask": "mask", "smpl": "SMPL JSON", "camera": "camera JSON", "poses": "pose file or video"}
_SUFFIXES = {"image": IMAGE_SUFFIXES, "mask": IMAGE_SUFFIXES, "smpl": (".json",), "camera": (".json",),
             "poses": POSE_SUFFIXES}


class UploadRefused(ValueError):
    """An upload the app will not use; the message names the file and the reason."""


def _without_folders(message: str, inputs: GenerateInputs) -> str:
    for item in fields(inputs):
        path = getattr(inputs, item.name)
        if path is not None:
            message = message.replace(os.fspath(path), Path(path).name)
    return message


def check_uploads(inputs: GenerateInputs, config: GenerateConfig, max_bytes: int) -> None:
    """Refuse unusable uploads with :class:`UploadRefused`: a file over ``max_bytes``, a suffix of the wrong
    kind, an image that does not decode, a mask of another size, an SMPL file without a camera file,
    pose mode without a pose file, a pose file that does not parse, a video whose first frame does not
    decode. The message names the upload by its file name."""
    for item in fields(inputs):
        path = getattr(inputs, item.name)
        if path is None:
            continue
        path = Path(path)
        what = _WHAT[item.name]
        if not path.is_file():
            raise UploadRefused(f"{what} {path.name} was not received; upload it again")
        if path.suffix.lower() not in _SUFFIXES[item.name]:
            raise UploadRefused(f"{what} {path.name}: expected a {' / '.join(_SUFFIXES[item.name])} file")
        size = path.stat().st_size
        if size > max_bytes:
            raise UploadRefused(f"{what} {path.name} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
        if size == 0:
            raise UploadRefused(f"{what} {path.name} is empty")
    try:
        check_input_files(inputs, config)
    except GenerateInputError as error:
        raise UploadRefused(_without_folders(str(error), inputs)) from error
