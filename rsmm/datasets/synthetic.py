"""A procedurally generated co-registered S1 / S2 / NAIP dataset with real signal.

Each chip has a land-cover class. The class shows in every modality but weakly: in S2
as a spectral signature (reflectances), in S1 as a backscatter level (dB, with
multiplicative speckle), in NAIP as a texture frequency; on top of it every modality
carries strong *modality-specific* nuisance (bright blobs at random places, random
illumination). What the modalities share is the class, so cross-modal contrastive
learning has something to find, and a random encoder does not see it easily.

Deterministic: sample ``i`` of a seed is always the same chip, generated on the fly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from rsmm.datasets.base import MultiModalDataset
from rsmm.errors import ConfigError


class SyntheticMultiModal(MultiModalDataset):
    """Synthetic co-registered chips (see module docstring).

    Args:
        root: unused (kept for the datamodule's signature); may be ``None``.
        split: ``"train"``, ``"val"`` or ``"test"`` (different seeds).
        modalities: modalities to return.
        bands: optional band subsets.
        num_samples: chips in the split.
        size: S1/S2 chip size in pixels (10 m); NAIP is ``naip_scale`` times larger.
        naip_scale: NAIP pixels per S2 pixel (10 for 1 m NAIP).
        signal: strength of the class signal relative to the nuisance.
        seed: base seed.
    """

    manifest_name = "synthetic"
    #: S1/S2 pixels are 10 m; NAIP's are ``naip_scale`` times finer (see :meth:`gsd_for`)
    gsd: ClassVar[dict[str, float | None]] = {"s1": 10.0, "s2": 10.0, "naip": None}
    _split_offset: ClassVar[dict[str, int]] = {"train": 0, "val": 1_000_003, "test": 2_000_003}

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        bands: Mapping[str, Sequence[str]] | None = None,
        num_samples: int = 256,
        size: int = 16,
        naip_scale: int = 4,
        signal: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__(modalities, bands)
        if split not in self._split_offset:
            raise ConfigError(f"split must be one of {list(self._split_offset)}, got {split!r}")
        if num_samples < 1 or size < 4:
            raise ConfigError("num_samples must be >= 1 and size >= 4")
        self.split, self.num_samples, self.size = split, num_samples, size
        self.naip_scale, self.signal, self.seed = naip_scale, signal, seed
        proto = np.random.default_rng(seed)
        k = len(self.classes)
        # class signatures shared by all splits of one seed
        self._s2_sig = proto.uniform(500, 4000, size=(k, 13))
        self._s1_level = proto.uniform(-20, -6, size=(k, 2))
        self._freq = np.linspace(1.0, 4.0, k)[proto.permutation(k)]
        self._labels = np.random.default_rng(seed + self._split_offset[split]).integers(
            0, k, num_samples
        )

    @classmethod
    def gsd_for(
        cls, modalities: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> dict[str, float | None]:
        """10 m for S1 and S2, ``10 / naip_scale`` m for NAIP (``None`` when ``options``
        do not give ``naip_scale``)."""
        gsd = dict(cls.gsd)
        scale = (options or {}).get("naip_scale")
        if scale:
            gsd["naip"] = 10.0 / float(scale)
        return {m: gsd.get(m) for m in modalities}

    def training_gsd(self) -> dict[str, float | None]:
        return self.gsd_for(self.modalities, {"naip_scale": self.naip_scale})

    def __len__(self) -> int:
        return self.num_samples

    def targets(self) -> np.ndarray:
        return self._labels.copy()

    def _blobs(self, rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
        yy, xx = np.mgrid[0:size, 0:size] / size
        out = np.zeros((channels, size, size))
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
            amp = rng.normal(0, 1, size=(channels, 1, 1))
            out += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        return out

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        c = int(self._labels[index])
        base = self.seed + self._split_offset[self.split] + 7919 * (index + 1)
        s, a = self.size, self.signal
        sample: dict = {}
        for mi, m in enumerate(self.modalities):
            rng = np.random.default_rng(base + 104729 * mi)
            if m == "s2":
                illum = rng.uniform(0.6, 1.4)
                nuis = self._blobs(rng, 13, s) * 1500
                x = illum * (a * self._s2_sig[c][:, None, None] + (1 - a) * 2000) + nuis
                x = np.clip(x + rng.normal(0, 100, x.shape), 0, 10000)
            elif m == "s1":
                lin = 10 ** ((a * self._s1_level[c] + (1 - a) * -13)[:, None, None] / 10)
                lin = lin * 10 ** (self._blobs(rng, 2, s) * 0.6)
                speckle = rng.gamma(4.0, 1 / 4.0, size=(2, s, s))
                x = 10 * np.log10(lin * speckle)
            else:  # naip
                n = s * self.naip_scale
                yy, xx = np.mgrid[0:n, 0:n] / n * 2 * np.pi
                phase = rng.uniform(0, 2 * np.pi)
                tex = np.sin(self._freq[c] * 4 * xx + phase) * np.sin(self._freq[c] * 4 * yy)
                blobs = np.kron(self._blobs(rng, 4, s), np.ones((self.naip_scale, self.naip_scale)))
                x = 128 + 60 * a * tex[None] + 60 * blobs + rng.normal(0, 8, (4, n, n))
                x = np.clip(x, 0, 255).round()
            sample[m], _ = self._select(m, x.astype(np.float32))
        sample["label"] = torch.tensor(c, dtype=torch.int64)
        sample["meta"] = {
            "id": f"{self.split}-{index}",
            "nodata": dict.fromkeys(self.modalities, 0),
        }
        return sample
