"""Defaults of the main job that the CLI needs before Prefect is imported (so bad input answers fast)."""

#: a task of the shipped collection that does not saturate (8x8 digits with rotation and noise: median ~67 %),
#: whose data ships with scikit-learn, so the main job needs no data folder
DEFAULT_TARGET = "meta-digits-noisy"
#: the shipped metadata collection the main job learns from (``metadata_store/collections/``), for its space
DEFAULT_METADATA = "nasmeta-meta-v1"
#: sources collected afresh when no shipped collection fits (another space, or ``--sources`` given)
DEFAULT_SOURCES = ["digits-0to4", "digits-even", "digits-odd", "digits-rot30"]
