"""``rsmm export``: the encoders of a checkpoint as safetensors files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rsmm.parsing import OptionParser


def parser() -> argparse.ArgumentParser:
    """The options of ``rsmm export``."""
    p = OptionParser(
        prog="rsmm export",
        description="Write the encoders of a checkpoint as <modality>.safetensors plus "
        "rsmm-encoders.json (architecture, bands, per-band mean/std, GSD) and a model card. "
        "Load them with rsmm.export.load_encoder(dir, modality).",
    )
    p.add_argument("checkpoint", help="an rsmm pretrain/finetune .ckpt")
    p.add_argument("out_dir", help="export directory (must not exist unless --overwrite)")
    p.add_argument("--modalities", nargs="+", help="encoders to export (default: all)")
    p.add_argument(
        "--format",
        choices=("safetensors", "torchgeo"),
        default="safetensors",
        help="torchgeo also writes <modality>.torchgeo.pth for TorchGeo's classification task",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    return p


def main(argv: Sequence[str]) -> int:
    """Run ``rsmm export``; torch is imported only once the options are valid."""
    a = parser().parse_args(argv)
    from rsmm.export import export_encoders

    out = export_encoders(a.checkpoint, a.out_dir, a.modalities, a.format, a.overwrite)
    print(f"exported encoders to {out}")
    return 0
