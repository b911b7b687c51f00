"""The tiny elastic space shared by the Once-for-All tests: two stages, every elastic dimension with >= 2 choices."""

from __future__ import annotations

from nasmeta.spaces.ofa import OFAConfig, register_ofa_space

TINY = OFAConfig(
    widths=(4, 8),
    strides=(2, 2),
    activations=("relu", "hswish"),
    depths=(1, 2),
    expands=(2, 3),
    kernels=(3, 5, 7),
    resolutions=(8, 12),
    stem_channels=4,
    stem_stride=1,
    head_channels=8,
    feature_channels=16,
)
SPACE = register_ofa_space("ofa-test-tiny", TINY)
