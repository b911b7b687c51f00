"""Few-shot learning: episode sampling and MAML (the ground T-NAS meta-learns on)."""
