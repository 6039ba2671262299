"""The small AlexNet-style CNN used in the thesis for 72x72 Sentinel-1/2 inputs.

Five convolutions with batch norm and three max-poolings (72 -> 36 -> 18 -> 9), then
global average pooling. Registered with timm as ``small_alexnet`` so that
``timm.create_model("small_alexnet", in_chans=13, num_classes=0)`` builds it once
rsmm is imported, like any other timm backbone.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn


def _block(cin: int, cout: int, k: int, pool: bool, bn: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


class SmallAlexNet(nn.Module):
    """AlexNet-style encoder for small multispectral / SAR chips.

    Args:
        in_chans: input bands.
        num_classes: size of a linear classifier on the pooled features (0 = none,
            the forward then returns the pooled features, as timm backbones do).
        width: channel multiplier (1.0: 64-128-256-256-256 channels).
        batch_norm: batch norm after each convolution.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        width: float = 1.0,
        batch_norm: bool = True,
        **_: object,
    ) -> None:
        super().__init__()
        c = [max(4, round(w * width)) for w in (64, 128, 256, 256, 256)]
        self.in_chans = in_chans
        self.features = nn.Sequential(
            *_block(in_chans, c[0], 5, True, batch_norm),
            *_block(c[0], c[1], 5, True, batch_norm),
            *_block(c[1], c[2], 3, False, batch_norm),
            *_block(c[2], c[3], 3, False, batch_norm),
            *_block(c[3], c[4], 3, True, batch_norm),
        )
        self.num_features = c[4]
        self.head = nn.Linear(c[4], num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map ``B x F x h x w``."""
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


#: timm's configuration of the two architectures: no weights to download; a local
#: folder (``timm.create_model("local-dir:<folder>", pretrained=True)``) provides them
default_cfgs = generate_default_cfgs(
    {
        name: {"num_classes": 0, "input_size": (3, 72, 72), "classifier": "head"}
        for name in ("small_alexnet", "tiny_cnn")
    }
)


@register_model
def small_alexnet(pretrained: bool = False, **kwargs: object) -> SmallAlexNet:
    """timm entry point; pretrained weights come from a local folder (see above)."""
    return build_model_with_cfg(SmallAlexNet, "small_alexnet", pretrained, **kwargs)


@register_model
def tiny_cnn(pretrained: bool = False, **kwargs: object) -> SmallAlexNet:
    """A 1/16-width SmallAlexNet for tests and quick CPU runs."""
    kwargs.setdefault("width", 1 / 16)
    return build_model_with_cfg(SmallAlexNet, "tiny_cnn", pretrained, **kwargs)
