"""Transfer components (one file each): TAPAS, LCRankNet, ... following the contract in ``base.py``."""
