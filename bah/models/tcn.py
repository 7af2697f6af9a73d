"""Causal dilated temporal convolutional network (TCN) with weight norm.

The module names reproduce the original ``TemporalConvNet`` so that released checkpoints
load strictly: every block registers its two convolutions twice, as ``conv1``/``conv2`` and
inside ``net`` as ``net.0``/``net.4`` (the state dict therefore lists both names for one
tensor), and each weight-normed convolution stores ``bias``, ``weight_g`` (C_out,1,1) and
``weight_v`` (C_out,C_in,k) in that order.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F


class WeightNormConv1d(nn.Module):
    """Causal Conv1d whose weight is ``g * v / ||v||`` (norm per output channel).

    Written out rather than via ``torch.nn.utils.weight_norm`` because that helper is
    deprecated and its parametrization replacement renames the keys
    (``parametrizations.weight.original0``), which would break checkpoint compatibility.
    The causal left padding replaces the original's pad-both-sides-then-chomp: the same
    sums, without computing and discarding (k-1)*d extra outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 xavier: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation = kernel_size, dilation
        self.left_pad = (kernel_size - 1) * dilation
        # Registration order = state-dict order of the original (bias first, then g, v).
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.weight_g = nn.Parameter(torch.empty(out_channels, 1, 1))
        self.weight_v = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.reset_parameters(xavier)

    def reset_parameters(self, xavier: bool = False) -> None:
        if xavier:
            nn.init.xavier_uniform_(self.weight_v)
        else:
            # PyTorch's default Conv1d init: what the original effectively used, because
            # its Xavier call hit the recomputed ``weight`` and was a no-op.
            nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        fan_in = self.in_channels * self.kernel_size
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(1, 2), keepdim=True))

    def weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left_pad:
            x = F.pad(x, (self.left_pad, 0))
        return F.conv1d(x, self.weight(), self.bias, dilation=self.dilation)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, dilation={self.dilation}, causal"


class TemporalBlock(nn.Module):
    """conv -> LeakyReLU -> dropout -> conv -> LeakyReLU -> dropout, + residual, LeakyReLU."""

    def __init__(self, n_inputs: int, n_outputs: int, kernel_size: int, dilation: int,
                 dropout: float, xavier: bool = False):
        super().__init__()
        self.conv1 = WeightNormConv1d(n_inputs, n_outputs, kernel_size, dilation, xavier)
        self.conv2 = WeightNormConv1d(n_outputs, n_outputs, kernel_size, dilation, xavier)
        # Same module objects again under ``net``: reproduces the aliased checkpoint keys.
        self.net = nn.Sequential(self.conv1, nn.Identity(), nn.LeakyReLU(0.01), nn.Dropout(dropout),
                                 self.conv2, nn.Identity(), nn.LeakyReLU(0.01), nn.Dropout(dropout))
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        if self.downsample is not None:
            nn.init.xavier_uniform_(self.downsample.weight)
        self.relu = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TemporalConvNet(nn.Module):
    """Stack of causal ``TemporalBlock``s, block i dilated by 2**i. Input/output (B, C, L)."""

    def __init__(self, num_inputs: int, num_channels: Sequence[int], kernel_size: int = 5,
                 dropout: float = 0.2, xavier: bool = False):
        super().__init__()
        if not num_channels:
            raise ValueError("TemporalConvNet needs at least one level (num_channels is empty)")
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.num_inputs = int(num_inputs)
        self.num_channels = [int(c) for c in num_channels]
        self.kernel_size = int(kernel_size)
        layers = []
        for i, out_ch in enumerate(self.num_channels):
            in_ch = self.num_inputs if i == 0 else self.num_channels[i - 1]
            layers.append(TemporalBlock(in_ch, out_ch, self.kernel_size, 2 ** i, dropout, xavier))
        self.network = nn.Sequential(*layers)

    @property
    def out_channels(self) -> int:
        return self.num_channels[-1]

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_size, len(self.num_channels))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x`` (B, C_in, L); ``mask`` (B, L) bool zeroes padded inputs before the first block.

        The network is causal, so zeroed padding can only reach frames after it, and those
        frames' outputs no longer depend on what the padding contained.
        """
        if mask is not None:
            x = x * mask[:, None, :].to(x.dtype)
        return self.network(x)


def receptive_field(kernel_size: int, levels: int) -> int:
    """Frames seen by one output: 1 + 2(k-1)(2**levels - 1) (two convolutions per level)."""
    return 1 + 2 * (kernel_size - 1) * (2 ** levels - 1)
