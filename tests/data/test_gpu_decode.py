"""decode_images: batching, order, PIL fallback and errors on CPU (libjpeg); nvJPEG under `gpu`."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lcnet_fast.data import ImageLoadError, gpu_decode
from lcnet_fast.data.gpu_decode import decode_images, is_jpeg


def _encode(arr, fmt="JPEG"):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _pil(data):
    with Image.open(io.BytesIO(data)) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


def _files(n=10):
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        h, w = 24 + 3 * i, 40 - 2 * i  # every image its own size
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([xx * 6, yy * 5, (xx + yy) * 3], -1) + rng.integers(0, 20, (h, w, 3))
        files.append(_encode(arr.clip(0, 255).astype(np.uint8)))
    return files


def test_batches_in_order_and_equal_to_pil(monkeypatch):
    files = _files(10)
    calls = []
    real = gpu_decode._decode_jpeg
    monkeypatch.setattr(
        gpu_decode, "_decode_jpeg", lambda ts, device: calls.append(len(ts)) or real(ts, device)
    )
    inputs = files[:5] + [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files[5:]]
    out = decode_images(inputs, device="cpu", batch_size=4)
    assert calls == [4, 4, 2]
    for data, image in zip(files, out, strict=True):
        assert image.dtype == torch.uint8 and image.device.type == "cpu"
        assert torch.equal(image, _pil(data))  # libjpeg-turbo both: the same pixels


def test_non_jpeg_and_grey_images():
    grey = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    rgb = np.random.default_rng(1).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    files = [_encode(grey), _encode(rgb, "PNG"), _encode(rgb)]
    assert [is_jpeg(f) for f in files] == [True, False, True]
    out = decode_images(files, batch_size=8)
    assert out[0].shape == (3, 20, 30) and torch.equal(out[0], _pil(files[0]))
    assert torch.equal(out[1], torch.from_numpy(rgb).permute(2, 0, 1))  # PNG: lossless via PIL
    assert out[2].shape == (3, 16, 12)


def test_a_bad_image_is_named(monkeypatch):
    files = _files(5)
    truncated = files[3][: len(files[3]) // 3]
    with pytest.raises(ImageLoadError, match="cannot read image b.jpg"):
        decode_images(files[:3] + [truncated], batch_size=4, names=["x", "y", "z", "b.jpg"])
    with pytest.raises(ImageLoadError, match="image #1"):
        decode_images([files[0], b"not an image at all"])
    with pytest.raises(ImageLoadError, match="#0: empty"):
        decode_images([b""])
    with pytest.raises(ValueError, match="1-D uint8 CPU tensor"):
        decode_images([torch.zeros(2, 3, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        decode_images(files, batch_size=0)
    with pytest.raises(ValueError, match="2 names for 5 images"):
        decode_images(files, names=["a", "b"])
    assert decode_images([]) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nvjpeg_matches_cpu_decode():
    """nvJPEG differs from libjpeg by IDCT/upsampling rounding: a few grey levels at most."""
    files = _files(10)
    gpu = decode_images(files, device="cuda", batch_size=4)
    cpu = decode_images(files, device="cpu")
    for g, c in zip(gpu, cpu, strict=True):
        assert g.device.type == "cuda" and g.shape == c.shape
        diff = (g.cpu().int() - c.int()).abs()
        assert diff.float().mean() < 1.0 and diff.max() <= 8
