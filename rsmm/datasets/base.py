"""The base class of rsmm's datasets: one key per modality, bands by name.

Every rsmm dataset returns samples of the form::

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
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torchgeo.datasets import NonGeoDataset

from rsmm.errors import ConfigError
from rsmm.io import fill_nonfinite
from rsmm.manifests import DatasetManifest, load_manifest
from rsmm.render import render_modality
from rsmm.sensors import get_sensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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

    #: Name of the packaged manifest (``rsmm/data_manifests/<name>.json``), which is
    #: also the dataset's name on the command line (``rsmm manifest stats <name>``, see
    #: :data:`rsmm.datasets.DATASETS`).
    manifest_name: ClassVar[str]
    #: Pixel size (m) of each modality's arrays as the dataset gives them (every band
    #: resampled to one grid), ``None`` where it is not known. This is the GSD an encoder
    #: trained on the dataset expects, recorded in checkpoints and exports; it can differ
    #: from the sensor's native GSD per band (:mod:`rsmm.sensors`). Datasets whose pixel
    #: size depends on their options override :meth:`gsd_for` / :meth:`training_gsd`.
    gsd: ClassVar[Mapping[str, float | None]] = {}
    #: Classes whose samples only serve as negatives in contrastive objectives: their
    #: rows are never anchors or positives but stay in every denominator.
    negative_classes: ClassVar[tuple[str, ...]] = ()
    #: Whether a sample may lack a modality (its key is then absent from the sample);
    #: the loaders of such a dataset add ``batch["presence"]`` (see
    #: :mod:`rsmm.datamodules.collate`). Datasets set it per instance when it depends on
    #: their options (a stack with ``min_modalities``).
    may_lack_modalities: bool = False

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

    @classmethod
    def gsd_for(
        cls, modalities: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> dict[str, float | None]:
        """Pixel size (m) of ``modalities``' arrays in a dataset of this class built with
        ``options`` (constructor or datamodule arguments), without building one:
        :attr:`gsd` by default.

        Used for checkpoints written before the GSD was recorded in them.
        """
        return {m: cls.gsd.get(m) for m in modalities}

    def training_gsd(self) -> dict[str, float | None]:
        """Pixel size (m) of each returned modality's arrays (see :attr:`gsd`)."""
        return self.gsd_for(self.modalities)

    def targets(self) -> np.ndarray:
        """Label of every sample, without reading images (for stratified subsets).

        Returns an int array of shape ``(N,)`` (single-label) or a float array of
        shape ``(N, K)`` (multi-label); ``-1`` marks an unlabelled sample.
        """
        raise NotImplementedError

    def presence(self) -> dict[str, np.ndarray] | None:
        """``{modality: N booleans}``, False where a sample lacks the modality, without
        reading images; ``None`` when every sample has every modality (the default)."""
        return None

    def modality_shape(self, modality: str) -> tuple[int, ...] | None:
        """``C x H x W`` of the modality's arrays when every sample has the same and it is
        known without reading images, else ``None`` (the loaders then read a sample
        that has it)."""
        return None

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
        :func:`~rsmm.io.fill_nonfinite`) and the number of filled pixels.
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
        import matplotlib.pyplot as plt  # only when a plot is asked for

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
