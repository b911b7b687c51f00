"""Once-for-All (Cai et al. 2020): the elastic network (``elastic``), progressive shrinking (``shrink``),
measured latency and its lookup-table predictor (``latency``), the accuracy predictor (``accuracy``),
evolutionary deployment search (``evolution``) and extraction + export of the chosen sub-network (``deploy``).

Modules are imported where they are used, so ``import nasmeta.ofa`` stays free of torch.
"""
