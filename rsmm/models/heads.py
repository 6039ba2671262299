"""Projection heads mapping backbone features to the contrastive embedding space."""

from __future__ import annotations

from torch import nn

from rsmm.errors import ConfigError

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """MLP projector ``Linear -> [BN] -> ReLU -> ... -> Linear`` (SimCLR's head).

    Args:
        in_dim: backbone feature size.
        hidden_dim: hidden width.
        out_dim: embedding size.
        num_layers: number of linear layers (>= 1; 1 = a linear projection).
        batch_norm: batch norm after each hidden linear layer.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 512,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(d, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x):
        return self.net(x)
