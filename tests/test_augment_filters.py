"""The matrix-product Gaussian blur equals kornia's reflect-padded convolution."""

from __future__ import annotations

import kornia
import pytest
import torch
import torch.nn.functional as F

from rsmm.augment.filters import band_matrices, gaussian_blur, reflect_index


def test_reflect_index_matches_torch_reflect_pad() -> None:
    size, pad = 5, 4
    padded = F.pad(torch.arange(size, dtype=torch.float32)[None, None], (pad, pad), mode="reflect")
    idx = reflect_index(torch.arange(-pad, size + pad), size)
    assert idx.tolist() == padded.flatten().long().tolist()


def test_band_matrix_is_a_reflect_padded_convolution() -> None:
    torch.manual_seed(0)
    taps = torch.rand(3, 5, dtype=torch.float64)
    v = torch.rand(3, 7, dtype=torch.float64)
    m = band_matrices(taps, 7)
    out = (m @ v[:, :, None])[:, :, 0]
    padded = F.pad(v[:, None], (2, 2), mode="reflect")[:, 0]
    naive = torch.stack(
        [torch.stack([(padded[b, i : i + 5] * taps[b]).sum() for i in range(7)]) for b in range(3)]
    )
    torch.testing.assert_close(out, naive)


@pytest.mark.parametrize(("h", "w", "ks"), [(16, 16, 5), (12, 20, 7), (6, 6, 11)])
def test_gaussian_blur_equals_kornia(h: int, w: int, ks: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, h, w, generator=g, dtype=torch.float64) * 1000
    sigma = torch.tensor([0.1, 0.7, 1.5, 3.0], dtype=torch.float64)
    ref = kornia.filters.gaussian_blur2d(
        x, (ks, ks), sigma[:, None].expand(-1, 2), border_type="reflect"
    )
    torch.testing.assert_close(gaussian_blur(x, sigma, ks), ref, rtol=1e-10, atol=1e-9)
    # float32 within rounding
    out32 = gaussian_blur(x.float(), sigma.float(), ks)
    torch.testing.assert_close(out32, ref.float(), rtol=1e-5, atol=1e-3)


def test_chunked_batches_give_the_same_views() -> None:
    from rsmm.augment import BandAugment

    stats = {"s2": (torch.full((13,), 1000.0), torch.full((13,), 500.0))}
    x = {"s2": torch.rand(10, 13, 16, 16, generator=torch.Generator().manual_seed(0)) * 3000}

    def views(chunk: int | None) -> list[torch.Tensor]:
        aug = BandAugment({"s2": "s2"}, stats, "simclr_ms", views=2, seed=3, chunk_size=chunk)
        return aug(x)["s2"]

    whole, chunked = views(1000), views(3)
    assert not torch.equal(whole[0], whole[1])
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="chunk_size"):
        BandAugment({"s2": "s2"}, stats, "eval", chunk_size=0)
