"""Evaluation: leave-one-dataset-out folds (``lodo``), replay of stored runs (``replay``), metrics (regret,
Kendall / Spearman), results tables (markdown + CSV) and plots.

Submodules are imported where used, so ``import nasmeta.evaluation`` pulls in nothing heavy.
"""
