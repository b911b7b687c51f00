"""Defaults of the main job that the CLI needs before Prefect is imported (so bad input answers fast)."""

DEFAULT_TARGET = "digits-5to9"
DEFAULT_SOURCES = ["digits-0to4", "digits-even", "digits-odd", "digits-rot30"]
