"""torchvision ResNet-18/50 as block classifiers, with the stem adapted to small inputs.

stem "standard": 7×7/2 conv + 3×3/2 max-pool (ImageNet); "small": 3×3/1 conv, no max-pool (CIFAR-style,
He et al. 2016 §4.2), which keeps 4× more resolution and costs about 16× more compute.
"""

from __future__ import annotations

from torch import nn

from pipeline.models.blocks import BlockClassifier, pooled_linear

ARCHITECTURES = ("resnet18", "resnet50")


def resnet(arch: str, num_classes: int, stem: str) -> BlockClassifier:
    # torchvision.models is imported here, not at module level: it takes about 2 s (it pulls in
    # torch._dynamo), which every stage would pay even when no ResNet is built.
    from torchvision import models

    net = getattr(models, arch)(weights=None, num_classes=num_classes)
    if stem == "small":
        net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem != "standard":
        raise ValueError(f"stem must be 'standard' or 'small', got {stem!r}")
    stem_block = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return BlockClassifier([stem_block, net.layer1, net.layer2, net.layer3, net.layer4],
                           pooled_linear(net.fc.in_features, num_classes))
