"""One-shot NAS: supernets (NB201, DARTS and S1-S4), DARTS (first and second order), PC-DARTS, ProxylessNAS, GDAS,
ENAS and random-sampling one-shot in one shared bi-level loop, and plots.

Entry point: :func:`oneshot_search`; after it, :func:`nasmeta.retrain.retrain` / :func:`nasmeta.retrain.with_retrain`
and :func:`nasmeta.export.export_model` (next to the trainer: every winner uses them), :mod:`nasmeta.oneshot.plots`.
"""

from nasmeta.oneshot.api import build_supernet, oneshot_search, strategy_names

__all__ = ["build_supernet", "oneshot_search", "strategy_names"]
