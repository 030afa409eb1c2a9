"""A 4-conv CNN for 32–64 px inputs: two blocks of (conv-BN-ReLU)×2 + 2×2 max-pool, then a 4×4 pool + linear.

The head keeps a 4×4 grid (not a global average) so the classifier can use where features are: GTSRB
classes differ by the layout of their glyphs.
"""

from __future__ import annotations

from torch import nn

from pipeline.models.blocks import BlockClassifier

GRID = 4


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def small_cnn(num_classes: int, width: int) -> BlockClassifier:
    """Channels width → 2·width; the four conv layers are the ones the issue's throughput figure refers to."""
    head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(), nn.Linear(2 * width * GRID * GRID, num_classes))
    return BlockClassifier([conv_block(3, width), conv_block(width, 2 * width)], head)
