"""The base class of rsmm's datasets: one key per modality, bands by name.

Every rsmm dataset returns samples of the form (DESIGN.md section 1)::

    {
        "s2": float32 C x H x W,   # values as stored, cast to float32, no rescaling
        "s1": float32 C x H x W,
        "label": int64 scalar (or float32 multi-hot when multi-label),
        "meta": {"id": str, "nodata": {modality: int}},
    }

Subclasses declare a packaged manifest (class names, bands, units, statistics),
index their files in ``__init__`` and implement :meth:`_load`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchgeo.datasets import NonGeoDataset

from rsmm.datasets.io import fill_nonfinite
from rsmm.errors import ConfigError
from rsmm.manifests import DatasetManifest, load_manifest
from rsmm.sensors import get_sensor

Sample = dict[str, Any]


class MultiModalDataset(NonGeoDataset):
    """Base of rsmm's datasets.

    Attributes:
        manifest: the dataset's :class:`~rsmm.manifests.DatasetManifest`.
        classes: class names; the index of a name is its label id.
        modalities: the modality keys returned, in order.
        bands: ``{modality: band names}`` of the returned channels, in order.
        skipped: ``[(sample id, reason)]`` of samples left out when indexing.
    """

    #: Name of the packaged manifest (``rsmm/data_manifests/<name>.json``).
    manifest_name: ClassVar[str]
    #: Classes whose samples only serve as negatives in contrastive objectives: their
    #: rows are never anchors or positives but stay in every denominator.
    negative_classes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        modalities: Sequence[str],
        bands: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Validate the modality and band selection against the manifest.

        Args:
            modalities: modality keys to return.
            bands: optional ``{modality: band names}`` subsets (any order the
                sensor knows); modalities not named keep all their stored bands.

        Raises:
            ValueError: for an unknown modality, an empty selection or an unknown band.
        """
        self.manifest: DatasetManifest = self._load_manifest()
        self.classes: list[str] = list(self.manifest.classes)
        if isinstance(modalities, str):
            modalities = (modalities,)
        modalities = tuple(modalities)
        if not modalities:
            raise ConfigError("modalities: select at least one modality")
        unknown = [m for m in modalities if m not in self.manifest.modalities]
        if unknown:
            raise ConfigError(
                f"modalities: {unknown} not in dataset {self.manifest.name!r}; available: "
                f"{', '.join(self.manifest.modalities)}"
            )
        if len(set(modalities)) != len(modalities):
            raise ConfigError(f"modalities: repeated entries in {list(modalities)}")
        self.modalities: tuple[str, ...] = modalities
        bands = dict(bands or {})
        extra = [m for m in bands if m not in modalities]
        if extra:
            raise ConfigError(f"bands: given for modality {extra} which is not selected")
        self.bands: dict[str, tuple[str, ...]] = {}
        for m in modalities:
            info = self.manifest.modality(m)
            chosen = tuple(bands.get(m, info.bands))
            get_sensor(info.sensor).check_bands(chosen)
            missing = [b for b in chosen if b not in info.bands]
            if missing:
                raise ConfigError(
                    f"bands: {missing} are not stored by {self.manifest.name!r} for modality "
                    f"{m!r} (stored: {', '.join(info.bands)})"
                )
            if not chosen:
                raise ConfigError(f"bands: empty band list for modality {m!r}")
            self.bands[m] = chosen
        self.skipped: list[tuple[str, str]] = []

    # -- subclass interface -------------------------------------------------------

    def _load_manifest(self) -> DatasetManifest:
        """The dataset's manifest: the packaged :attr:`manifest_name` JSON by default.

        Datasets whose manifest is not packaged (user stacks, whose classes, bands,
        units and statistics live in a GeoParquet chip index) override this.
        """
        return load_manifest(self.manifest_name)

    def targets(self) -> np.ndarray:
        """Label of every sample, without reading images (for stratified subsets).

        Returns an int array of shape ``(N,)`` (single-label) or a float array of
        shape ``(N, K)`` (multi-label); ``-1`` marks an unlabelled sample.
        """
        raise NotImplementedError

    @property
    def sensors(self) -> dict[str, str]:
        """``{modality: sensor name}`` of the returned modalities."""
        return {m: self.manifest.modality(m).sensor for m in self.modalities}

    @property
    def units(self) -> dict[str, str]:
        """``{modality: units of stored values}``."""
        return {m: self.manifest.modality(m).units for m in self.modalities}

    def band_stats(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{modality: (mean, std)}`` for the selected bands, from the manifest."""
        return {m: self.manifest.modality(m).mean_std(self.bands[m]) for m in self.modalities}

    # -- helpers for subclasses -----------------------------------------------------

    def _select(self, modality: str, array: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, int]:
        """Keep the selected bands of a ``C x H x W`` array holding all stored bands.

        Returns the float32 tensor (non-finite pixels filled, see
        :func:`~rsmm.datasets.io.fill_nonfinite`) and the number of filled pixels.
        """
        stored = self.manifest.modality(modality).bands
        x = torch.as_tensor(np.asarray(array, dtype=np.float32))
        chosen = self.bands[modality]
        if chosen != stored:
            x = x[[stored.index(b) for b in chosen]]
        return fill_nonfinite(x)

    def _skip(self, sample_id: str, reason: str) -> None:
        self.skipped.append((sample_id, reason))

    def skipped_summary(self) -> str:
        """One line per reason: how many samples were left out when indexing, and why."""
        if not self.skipped:
            return "no samples left out"
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            counts[reason] = counts.get(reason, 0) + 1
        return "; ".join(f"{n} left out: {r}" for r, n in sorted(counts.items()))

    # -- plotting --------------------------------------------------------------------

    def plot(
        self,
        sample: Mapping[str, Any],
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: one panel per modality rendering.

        Sentinel-2 in true colour (B04, B03, B02; false colour from what is present
        otherwise), Sentinel-1 as VV / VH / VV-VH ratio false colour, NAIP as RGB and
        NIR, RGB as is. Each panel is stretched between its 2nd and 98th percentiles.

        Args:
            sample: a sample from ``__getitem__`` (optionally with ``"prediction"``).
            show_titles: whether to title each panel (the label goes in the first).
            suptitle: optional figure title.
        """
        panels: list[tuple[str, np.ndarray]] = []
        for m in self.modalities:
            if m in sample:
                panels.extend(
                    render_modality(self.sensors[m], self.bands[m], sample[m], self.units[m])
                )
        fig, axs = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
        for ax, (title, img) in zip(axs[0], panels):
            ax.imshow(img, cmap=None if img.ndim == 3 else "gray")
            ax.axis("off")
            if show_titles:
                ax.set_title(title)
        if show_titles and "label" in sample:
            label = self.describe_label(sample["label"])
            if "prediction" in sample:
                label += f"\npredicted: {self.describe_label(sample['prediction'])}"
            axs[0, 0].set_title(f"{panels[0][0]}\n{label}")
        if suptitle is not None:
            fig.suptitle(suptitle)
        fig.tight_layout()
        return fig

    def describe_label(self, label: torch.Tensor | int) -> str:
        """Class name(s) of a label (single id or multi-hot)."""
        t = torch.as_tensor(label)
        if t.ndim == 0:
            i = int(t)
            return self.classes[i] if 0 <= i < len(self.classes) else "unlabelled"
        names = [self.classes[i] for i in torch.nonzero(t > 0.5).flatten().tolist()]
        return " + ".join(names) if names else "none"


def _stretch(x: np.ndarray) -> np.ndarray:
    """Percentile stretch (2-98 %, per channel) to [0, 1]."""
    x = x.astype(np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[-1]) if x.ndim == 3 else [None]:
        ch = x[..., c] if c is not None else x
        finite = ch[np.isfinite(ch)]
        lo, hi = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
        scaled = np.clip((ch - lo) / max(hi - lo, 1e-12), 0, 1)
        if c is None:
            out = scaled
        else:
            out[..., c] = scaled
    return out


def render_modality(
    sensor: str, bands: Sequence[str], x: torch.Tensor | np.ndarray, units: str = "dn"
) -> list[tuple[str, np.ndarray]]:
    """Turn one modality's ``C x H x W`` image into displayable panels.

    Returns ``[(title, H x W x 3 or H x W array in [0, 1])]``.
    """
    arr = np.asarray(torch.as_tensor(x).detach().cpu().float())
    idx = {b: i for i, b in enumerate(bands)}

    def pick(*names: str) -> np.ndarray | None:
        if all(n in idx for n in names):
            return np.stack([arr[idx[n]] for n in names], axis=-1)
        return None

    s = get_sensor(sensor)
    if s.is_sar:
        vv, vh = arr[idx["VV"]] if "VV" in idx else None, arr[idx["VH"]] if "VH" in idx else None
        if vv is not None and vh is not None:
            if units == "db":
                ratio = vv - vh
            else:
                ratio = np.log10(np.maximum(vv, 1e-6) / np.maximum(vh, 1e-6))
            return [("S1 VV/VH/ratio", _stretch(np.stack([vv, vh, ratio], -1)))]
        return [(f"S1 {b}", _stretch(arr[i])) for b, i in idx.items()]
    if sensor == "s2":
        rgb = pick("B04", "B03", "B02")
        if rgb is not None:
            return [("S2 true colour", _stretch(rgb))]
        first = list(bands)[:3]
        if len(first) == 3:
            return [(f"S2 {'/'.join(first)}", _stretch(np.stack([arr[i] for i in range(3)], -1)))]
        return [(f"S2 {bands[0]}", _stretch(arr[0]))]
    panels = []
    rgb = pick("R", "G", "B")
    if rgb is not None:
        panels.append((f"{sensor.upper()} RGB", _stretch(rgb)))
    if "NIR" in idx:
        panels.append((f"{sensor.upper()} NIR", _stretch(arr[idx["NIR"]])))
    if not panels:
        panels.append((f"{sensor} {bands[0]}", _stretch(arr[0])))
    return panels
