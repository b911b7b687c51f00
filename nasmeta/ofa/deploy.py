"""Deploying a sub-network of the shrunk OFA network: extract its weights (no retraining), re-estimate its BN
statistics on training images (as OFA does before evaluating or shipping a sub-network) and export it like any
search winner (:func:`nasmeta.export.export_model`: state dict + architecture JSON, ``torch.export`` program,
ONNX where available); :func:`nasmeta.export.load_model` rebuilds it with the OFA space.
"""

from __future__ import annotations

from pathlib import Path

from nasmeta.data.types import TaskData
from nasmeta.export import ExportedFiles, export_model
from nasmeta.ofa.elastic import ElasticOFANet, extract_subnet, recalibrate_bn
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ofa import OFASubnet


def deployable_subnet(net: ElasticOFANet, arch: Architecture, task: TaskData, bn_images: int = 500) -> OFASubnet:
    """``arch`` with the elastic network's weights and BN statistics re-estimated on ``bn_images`` training images
    (eval mode)."""
    return recalibrate_bn(extract_subnet(net, arch), task.x_train[:bn_images])  # type: ignore[return-value]


def export_subnet(
    net: ElasticOFANet, arch: Architecture, task: TaskData, out: str | Path, bn_images: int = 500
) -> ExportedFiles:
    """Extract, recalibrate and export ``arch`` to ``out`` (a ``.pt`` path)."""
    model = deployable_subnet(net, arch, task, bn_images)
    return export_model(model, arch, out, num_classes=task.num_classes, input_shape=task.input_shape, size={})
