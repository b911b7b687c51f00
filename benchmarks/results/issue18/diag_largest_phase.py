"""Diagnostic for issue 18: the largest-network phase of progressive shrinking alone, three ways, at one budget.

    NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/results/issue18/diag_largest_phase.py 16

1. ``fixed32``: the elastic network's largest sub-network trained by ``train_phase("largest")`` on a copy of
   ``ofa-small`` whose only resolution is 32 px;
2. ``elastic-res``: the same on ``ofa-small`` (resolution 16 / 24 / 32 sampled per step, as in the benchmark);
3. ``static``: the largest sub-network as a plain module trained by ``nasmeta.training.train``, same recipe.

Prints validation accuracy (and test for 1 and 2: BN re-estimated on 500 training images; 3 uses its running
statistics).  The argument is the number of epochs (default 6).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def main() -> None:
    from nasmeta.data.tasks import get_task
    from nasmeta.ofa.shrink import (
        PhaseConfig,
        ShrinkConfig,
        checkpoint_path,
        evaluate_subnet,
        load_checkpoint,
        train_phase,
    )
    from nasmeta.spaces import get_space
    from nasmeta.spaces.ofa import SMALL_CONFIG, register_ofa_space
    from nasmeta.training import TrainConfig, train

    torch.set_num_threads(1)
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    data = get_task("cifar10").small(200).load()
    fixed = register_ofa_space("ofa-r32", SMALL_CONFIG.model_copy(update={"resolutions": (32,)}))
    for name, space in (("fixed32", fixed), ("elastic-res", get_space("ofa-small"))):
        config = ShrinkConfig(largest=PhaseConfig(epochs=epochs, lr=0.1), batch_size=128, bn_images=500, num_threads=1)
        directory = tempfile.mkdtemp()
        start = time.time()
        metrics = train_phase(space, data, "largest", config, directory)
        net, _ = load_checkpoint(checkpoint_path(directory, "largest"))
        test = evaluate_subnet(net, space.largest(), data, 500, "test")
        print(name, metrics["val_acc_largest"], "test", test, round(time.time() - start), flush=True)
    space = get_space("ofa-small")
    torch.manual_seed(0)
    model = space.build(space.largest(), 10)
    recipe = TrainConfig(
        epochs=epochs, batch_size=128, lr=0.1, weight_decay=3e-5, label_smoothing=0.1, augment=True, device="cpu"
    )
    result = train(model, data, recipe.with_(num_threads=1))
    print("static", result.final_val_acc, result.final_test_acc, flush=True)


if __name__ == "__main__":
    main()
