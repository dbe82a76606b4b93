"""Opt-in batched JPEG decoding on a device (nvJPEG through ``torchvision.io.decode_jpeg``).

The loader decodes with PIL in its worker processes (:func:`lcnet_fast.data.base.load_image`),
which costs about 2 ms of a core per COCO-sized JPEG. With a GPU, ``decode_jpeg`` takes a *list*
of encoded images and decodes them in one batched nvJPEG call, so a loader can hand raw file bytes
to the main process and decode a whole batch on the device. :func:`decode_images` is that step:

- encoded images (``bytes`` or 1-D uint8 CPU tensors) are decoded ``batch_size`` at a time with
  one ``decode_jpeg(list, device=...)`` call per chunk, in order, to RGB uint8 ``(3, H, W)``;
- what is not a JPEG (no ``FF D8 FF`` start, e.g. PNG) is decoded by PIL on the CPU, as
  ``load_image`` does, and moved to ``device``;
- nvJPEG returns nothing for a chunk when one image in it is bad, so a failing chunk is redone
  image by image and the bad one raises :class:`~lcnet_fast.data.base.ImageLoadError` naming it.

``device="cpu"`` runs the same code with libjpeg-turbo (what the tests check: the batching,
fallback and error paths need no GPU); PIL uses libjpeg-turbo too and gave identical pixels on the
test images. nvJPEG's IDCT and chroma upsampling differ from libjpeg's by a few grey levels, so
GPU-decoded images are close to, not equal to, the CPU ones. EXIF orientation is not applied
(neither does ``load_image``). Not wired into the train/evaluate drivers: their datasets decode in
the workers; this module is for a loader that passes bytes.

torchvision 0.29 marks its image decoders deprecated (superseded by TorchCodec); the warning is
silenced here, and ``decode_jpeg`` is still the batched nvJPEG entry point of this torchvision.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .base import ImageLoadError

__all__ = ["decode_images", "is_jpeg"]

_JPEG_MAGIC = b"\xff\xd8\xff"


def is_jpeg(data: bytes | torch.Tensor) -> bool:
    """True when ``data`` starts like a JPEG file (SOI marker and the next marker's FF)."""
    head = bytes(data[:3]) if isinstance(data, bytes | bytearray | memoryview) else None
    if head is None:
        head = bytes(data[:3].tolist())
    return head == _JPEG_MAGIC


def _as_tensor(data: bytes | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) == 0:
            raise ImageLoadError(f"cannot read image {name}: empty")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if isinstance(data, torch.Tensor):
        if data.dtype != torch.uint8 or data.dim() != 1 or data.device.type != "cpu":
            raise ValueError(
                f"decode_images: image {name} must be bytes or a 1-D uint8 CPU tensor, got "
                f"{tuple(data.shape)} {data.dtype} on {data.device}"
            )
        if data.numel() == 0:
            raise ImageLoadError(f"cannot read image {name}: empty")
        return data
    raise TypeError(f"decode_images: image {name} must be bytes or a tensor, got {type(data)}")


def _decode_jpeg(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*decoding and encoding capabilities.*")
        return decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)


def _decode_pil(data: torch.Tensor, name: str) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            img.load()
            arr = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot read image {name}: {exc}") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_images(
    images: Sequence[bytes | torch.Tensor],
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    names: Sequence[str] | None = None,
) -> list[torch.Tensor]:
    """Decode encoded images to RGB uint8 ``(3, H, W)`` tensors on ``device``, in input order.

    Args:
        images: encoded files, as ``bytes`` or 1-D uint8 CPU tensors.
        device: where to decode JPEGs ("cuda": nvJPEG, batched) and put every result.
        batch_size: JPEGs per ``decode_jpeg`` call (bounds nvJPEG's working memory).
        names: one label per image for error messages (e.g. file paths); default: the index.
    """
    device = torch.device(device)
    if int(batch_size) < 1:
        raise ValueError(f"decode_images: batch_size must be >= 1, got {batch_size}")
    if names is not None and len(names) != len(images):
        raise ValueError(
            f"decode_images: {len(names)} names for {len(images)} images; give one per image"
        )
    labels = [str(n) for n in names] if names is not None else [f"#{i}" for i in range(len(images))]
    tensors = [_as_tensor(data, labels[i]) for i, data in enumerate(images)]
    out: list[torch.Tensor | None] = [None] * len(tensors)
    jpegs = [i for i, t in enumerate(tensors) if is_jpeg(t)]
    for i in sorted(set(range(len(tensors))) - set(jpegs)):
        out[i] = _decode_pil(tensors[i], labels[i]).to(device)
    for start in range(0, len(jpegs), int(batch_size)):
        chunk = jpegs[start : start + int(batch_size)]
        try:
            decoded = _decode_jpeg([tensors[i] for i in chunk], device)
        except RuntimeError:  # no partial results: find the bad one(s), one image at a time
            decoded = []
            for i in chunk:
                try:
                    decoded.append(_decode_jpeg([tensors[i]], device)[0])
                except RuntimeError as exc:
                    raise ImageLoadError(f"cannot read image {labels[i]}: {exc}") from exc
        for i, image in zip(chunk, decoded, strict=True):
            out[i] = image
    return out  # type: ignore[return-value]
