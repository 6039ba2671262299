"""`BandAugment`: the band-aware, batched, device-side augmentation pipeline.

For each view and modality of a batch ``{modality: B x C x H x W}`` it runs, on the
batch's device and without any Python loop over samples:

1. the geometric transform (random resized crop + flips + quarter turns) drawn per
   sample in normalised coordinates, one draw per sample shared by all modalities
   (``shared_geometry=True``) or one per modality, each modality resampled at its own
   resolution (:mod:`rsmm.augment.geometry`);
2. the radiometric operations of the modality's sensor kind, in preset order, on the
   values in their stored units (:mod:`rsmm.augment.optical`, :mod:`rsmm.augment.sar`);
3. the per-band normalisation ``(x - mean) / std`` with the statistics of the
   modality's bands;
4. the operations that act on normalised values (band dropout).

Random parameters are drawn per sample on the CPU from one ``torch.Generator`` (a few
numbers per sample) and moved to the device; per-pixel noise (speckle) is drawn on the
device from a generator seeded by it. With ``seed`` set the views are reproducible.

A batch whose samples may lack a modality comes with ``presence``
(``{modality: B booleans}``, see :mod:`rsmm.datamodules.collate`): parameters are
still drawn for every row, so the views of the present rows (and the generator's state
afterwards, which exact resume relies on) do not depend on which rows are absent; the
absent rows, zero-filled placeholders, come out as zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rsmm.augment.geometry import apply_geometry, draw_geometry
from rsmm.augment.ops import ModalityInfo, Op
from rsmm.augment.presets import Preset, load_preset
from rsmm.errors import ConfigError
from rsmm.sensors import Sensor, check_units, get_sensor

StatsLike = tuple[Any, Any] | Mapping[str, Sequence[float]]
Params = dict[str, dict[str, Tensor]]

#: Samples augmented together on the CPU (see :meth:`BandAugment._chunk`).
CPU_CHUNK = 64


def _rows(params: dict[str, Tensor], rows: slice) -> dict[str, Tensor]:
    """The per-sample parameters of the samples ``rows``."""
    return {k: v[rows] for k, v in params.items()}


def _resolve_stats(info: ModalityInfo, stats: StatsLike) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` float64 vectors in the modality's band order.

    ``stats`` is ``(mean, std)`` in band order, or ``{band: (mean, std)}`` (which may
    hold more bands than selected: the selected ones are picked by name).
    """
    if isinstance(stats, Mapping):
        missing = [b for b in info.bands if b not in stats]
        if missing:
            raise ConfigError(f"stats of modality {info.name!r} lack band(s) {missing}")
        pairs = torch.tensor(
            [[float(v) for v in stats[b]] for b in info.bands], dtype=torch.float64
        )
        mean, std = pairs[:, 0], pairs[:, 1]
    else:
        try:
            mean, std = (torch.as_tensor(t, dtype=torch.float64).flatten() for t in stats)
        except (TypeError, ValueError):
            raise ConfigError(
                f"stats of modality {info.name!r} must be (mean, std) or {{band: (mean, std)}}"
            ) from None
    c = len(info.bands)
    if mean.numel() != c or std.numel() != c:
        raise ConfigError(
            f"stats of modality {info.name!r} have {mean.numel()} means and {std.numel()} stds "
            f"for {c} bands {list(info.bands)}"
        )
    if not bool((std > 0).all()) or not bool(torch.isfinite(mean).all()):
        raise ConfigError(f"stats of modality {info.name!r} need finite means and positive stds")
    return mean, std


class BandAugment:
    """Device-side, band-aware augmentation of a batch dict.

    Example:
        >>> aug = BandAugment(
        ...     sensors={"s1": "s1", "s2": "s2"},
        ...     stats={"s1": (s1_mean, s1_std), "s2": (s2_mean, s2_std)},
        ...     units={"s1": "db", "s2": "dn"},
        ...     preset="simclr_ms",
        ...     views=2,
        ...     seed=0,
        ... )
        >>> views = aug({"s1": s1_batch, "s2": s2_batch})  # {"s1": [v1, v2], "s2": [v1, v2]}
    """

    def __init__(
        self,
        sensors: Mapping[str, str | Sensor | Sequence[str]],
        stats: Mapping[str, StatsLike],
        preset: str | Path | Mapping[str, Any] | Preset = "mm_pretrain",
        views: int = 2,
        shared_geometry: bool = True,
        bands: Mapping[str, Sequence[str]] | None = None,
        units: Mapping[str, str] | None = None,
        seed: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """Configure the pipeline.

        Args:
            sensors: ``{modality: sensor name}`` (registry of :mod:`rsmm.sensors`); a
                list of band names instead means the sensor named like the modality,
                with those bands.
            stats: ``{modality: (mean, std)}`` per band in channel order, or
                ``{modality: {band: (mean, std)}}`` (picked by band name).
            preset: preset name (``rsmm/augment/recipes/<name>.yaml``), YAML path, mapping
                or :class:`~rsmm.augment.presets.Preset`.
            views: number of augmented views per modality.
            shared_geometry: one crop/flip/rotation per sample for all its modalities
                (in normalised coordinates, so the same ground area at every
                resolution); ``False`` draws one per modality.
            bands: ``{modality: band names in channel order}``; default the sensor's
                registry order.
            units: ``{modality: units}`` of the stored values (``db``, ``linear``,
                ``dn``, ``reflectance_x1e4``); required by SAR operations.
            seed: seed of the pipeline's generator; ``None`` draws each call's seed
                from torch's global generator (so ``torch.manual_seed`` governs it).
            chunk_size: samples transformed together; ``None`` = the whole batch on an
                accelerator and slices of :data:`CPU_CHUNK` on the CPU. The parameters
                are drawn for the whole batch first, so the views do not depend on it
                (except for ops that draw noise while applying, e.g. speckle).

        Raises:
            ValueError: for a bad views count, unknown bands or units, stats of the
                wrong length, or an operation that cannot act on a modality's sensor
                kind or units (the message names the modality).
        """
        if int(views) < 1:
            raise ConfigError(f"views must be >= 1, got {views}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.chunk_size = chunk_size
        self.preset = load_preset(preset)
        self.views = int(views)
        self.shared_geometry = bool(shared_geometry)
        self.infos: dict[str, ModalityInfo] = {}
        self._mean_std: dict[str, tuple[Tensor, Tensor]] = {}
        self._cache: dict[tuple[str, torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}
        bands = dict(bands or {})
        units = dict(units or {})
        unknown = (set(bands) | set(units)) - set(sensors)
        if unknown:
            raise ConfigError(
                f"bands/units given for modalities {sorted(unknown)} absent from sensors"
            )
        for m, s in sensors.items():
            if isinstance(s, str | Sensor):
                sensor = get_sensor(s)
            else:
                sensor = get_sensor(m)
                bands.setdefault(m, tuple(s))
            names = sensor.check_bands(bands.get(m, sensor.band_names))
            u = units.get(m)
            if u is not None:
                try:
                    check_units(u)
                except ValueError as err:
                    raise ConfigError(f"modality {m!r}: {err}") from None
            info = ModalityInfo(name=m, sensor=sensor, bands=names, units=u)
            for op in self.preset.ops.get(sensor.kind, []):
                op.check(info)
            if m not in stats:
                raise ConfigError(f"no stats given for modality {m!r}")
            self.infos[m] = info
            self._mean_std[m] = _resolve_stats(info, stats[m])
        self._generator: torch.Generator | None = None
        if seed is not None:
            self.manual_seed(seed)

    def manual_seed(self, seed: int) -> BandAugment:
        """Reset the pipeline's generator to ``seed``."""
        self._generator = torch.Generator().manual_seed(int(seed))
        return self

    def _call_generator(self) -> torch.Generator:
        if self._generator is not None:
            return self._generator
        return torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))

    def _stats(self, m: str, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (m, device, dtype)
        if key not in self._cache:
            mean, std = self._mean_std[m]
            self._cache[key] = (
                (-mean / std).to(device, dtype)[None, :, None, None],
                (1.0 / std).to(device, dtype)[None, :, None, None],
            )
        return self._cache[key]

    def _check_batch(self, batch: Mapping[str, Tensor]) -> int:
        unknown = set(batch) - set(self.infos)
        if unknown:
            raise ConfigError(
                f"batch has modalities {sorted(unknown)} that BandAugment was not configured "
                f"for (configured: {sorted(self.infos)})"
            )
        sizes = set()
        for m, x in batch.items():
            c = len(self.infos[m].bands)
            if x.ndim != 4 or x.shape[1] != c:
                raise ConfigError(
                    f"modality {m!r}: expected a B x {c} x H x W batch (bands "
                    f"{list(self.infos[m].bands)}), got shape {tuple(x.shape)}"
                )
            sizes.add(x.shape[0])
        if len(sizes) > 1:
            raise ConfigError(f"modalities have different batch sizes: {sorted(sizes)}")
        return sizes.pop() if sizes else 0

    def augment_modality(
        self,
        m: str,
        x: Tensor,
        geometry: dict[str, Tensor] | None,
        generator: torch.Generator,
        device_generator: torch.Generator,
    ) -> tuple[Tensor, Params]:
        """One view of one modality: geometry, stored-units ops, normalisation, the rest.

        Returns the view (in ``x``'s floating dtype, float32 for integer input) and the
        drawn parameters.
        """
        info = self.infos[m]
        n = x.shape[0]
        out_dtype = x.dtype if x.is_floating_point() else torch.float32
        params: Params = {}
        if geometry is not None:
            params["geometry"] = geometry
        ops = self.preset.ops.get(info.kind, [])
        names = [op.name for op in ops]
        drawn: list[tuple[Op, dict[str, Tensor]]] = []
        for i, op in enumerate(ops):
            key = op.name if names.count(op.name) == 1 else f"{op.name}#{i}"
            p = op.draw(n, info, generator)
            params[key] = p
            drawn.append((op, p))
        # The geometric resampling writes a new batch, which the chain below then
        # transforms in place; without geometry the input is copied slice by slice into
        # the output first. Either way the output is written once, by whole pages, and
        # never copied again (first-touch page faults on a fresh 100 MB output cost as
        # much as a pass over it, benchmarks/augment.py).
        work = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
        if geometry is not None:
            work = apply_geometry(work, geometry["theta"], self.preset.geometry.mode)
        out = work if work is not x else torch.empty_like(work)
        step = self._chunk(x)
        for lo in range(0, n, step):
            part = slice(lo, lo + step)
            chunk = out[part]
            if out is not work:
                chunk.copy_(work[part])
            result = self._apply_ops(
                m,
                chunk,
                drawn if step >= n else [(op, _rows(p, part)) for op, p in drawn],
                device_generator,
            )
            if result.data_ptr() != chunk.data_ptr():  # an op that returned a new tensor
                chunk.copy_(result)
        return out.to(out_dtype), params

    def _chunk(self, x: Tensor) -> int:
        """Samples processed together: the whole batch on an accelerator; on the CPU,
        slices of :data:`CPU_CHUNK` so that the chain of element-wise passes stays in
        cache (1.6x faster than one 256-sample pass on one core, benchmarks/augment.py)."""
        if self.chunk_size is not None:
            return int(self.chunk_size)
        return CPU_CHUNK if x.device.type == "cpu" else x.shape[0] or 1

    def _apply_ops(
        self,
        m: str,
        x: Tensor,
        drawn: list[tuple[Op, dict[str, Tensor]]],
        device_generator: torch.Generator,
    ) -> Tensor:
        """Stored-units ops, normalisation and normalised-stage ops on ``x`` (owned by
        the pipeline: modified in place where the ops allow) with drawn parameters."""
        info = self.infos[m]
        for op, p in drawn:
            if op.stage == "stored":
                x = op.apply(x, p, info, device_generator)
        shift, inv_std = self._stats(m, x.device, x.dtype)
        # (x - mean) / std in one in-place pass
        x = torch.addcmul(shift, x, inv_std, out=x)
        for op, p in drawn:
            if op.stage == "normalised":
                x = op.apply(x, p, info, device_generator)
        return x

    def __call__(
        self,
        batch: Mapping[str, Tensor],
        return_params: bool = False,
        presence: Mapping[str, Tensor] | None = None,
    ) -> dict[str, list[Tensor]] | tuple[dict[str, list[Tensor]], dict[str, list[Params]]]:
        """Augment a batch.

        Args:
            batch: ``{modality: B x C x H x W}`` on any device, any dtype; the
                modalities may have different sizes but share ``B``.
            return_params: also return the parameters drawn per sample.
            presence: ``{modality: B booleans}``, False for the zero-filled rows of
                samples that lack the modality: their views are zeros (every row's
                parameters are drawn all the same).

        Returns:
            ``{modality: [view_1, ..., view_V]}``, each the input's shape, normalised;
            with ``return_params``, also ``{modality: [params of view_1, ...]}`` where a
            view's parameters are ``{"geometry": {...}, op_name: {"applied": B bools,
            ...}}`` (CPU tensors; see :func:`~rsmm.augment.geometry.draw_geometry`).
        """
        n = self._check_batch(batch)
        gen = self._call_generator()
        dev_gens: dict[torch.device, torch.Generator] = {}

        def device_generator(device: torch.device) -> torch.Generator:
            if device.type == "cpu":
                return gen
            if device not in dev_gens:
                seed = int(torch.randint(2**62, (1,), generator=gen))
                dev_gens[device] = torch.Generator(device=device).manual_seed(seed)
            return dev_gens[device]

        geo_cfg = self.preset.geometry
        out: dict[str, list[Tensor]] = {m: [] for m in batch}
        params: dict[str, list[Params]] = {m: [] for m in batch}
        for _ in range(self.views):
            shared = None
            if self.shared_geometry and not geo_cfg.is_identity:
                shared = draw_geometry(n, geo_cfg, gen)
            for m, x in batch.items():
                geometry = shared
                if not self.shared_geometry and not geo_cfg.is_identity:
                    geometry = draw_geometry(n, geo_cfg, gen)
                view, p = self.augment_modality(m, x, geometry, gen, device_generator(x.device))
                if presence is not None and m in presence:
                    absent = ~presence[m].to(device=view.device, dtype=torch.bool)
                    view = view.masked_fill(absent.view(-1, *([1] * (view.ndim - 1))), 0)
                out[m].append(view)
                params[m].append(p)
        return (out, params) if return_params else out

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={i.sensor.name}[{len(i.bands)}]" for m, i in self.infos.items())
        return (
            f"BandAugment(preset={self.preset.name!r}, views={self.views}, "
            f"shared_geometry={self.shared_geometry}, modalities=({mods}))"
        )
