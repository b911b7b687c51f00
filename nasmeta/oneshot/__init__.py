"""One-shot NAS: supernets (NB201, DARTS and S1-S4), DARTS (first and second order), ENAS and random-sampling
one-shot in one shared bi-level loop, plus retraining, export and plots.

Entry point: :func:`oneshot_search`; after it, :func:`retrain` / :func:`with_retrain`, and
:mod:`nasmeta.oneshot.export` / :mod:`nasmeta.oneshot.plots`.
"""

from nasmeta.oneshot.api import Retrained, build_supernet, oneshot_search, retrain, strategy_names, with_retrain

__all__ = ["Retrained", "build_supernet", "oneshot_search", "retrain", "strategy_names", "with_retrain"]
