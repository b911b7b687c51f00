"""NAO decoder quality on the DARTS spaces (where a decoded sequence can be an invalid genotype) and on NB201.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/nao_decoder_quality.py

Per space: a NAO model (``nasmeta.blackbox.nao``, default sizes) is trained for ``--epochs`` passes on ``--train``
distinct random cells (labels: percentile ranks of a fixed random linear function of the space's one-hot
features, standing in for accuracies; the decoder's loss does not depend on them), then

- reconstruction of ``--held-out`` other random cells: share of tokens and of whole cells decoded exactly, share of
  decodes that are valid architectures of the space;
- gradient ascent from every training cell over NAO's eta ladder (``eta * 2^j``, j = 0..10): share of valid
  decodes over all ladder steps, and share of training cells for which some step gives a valid cell other than
  the start.

Both with the decoder masked per position only (NAO's own masking: node indices and ops in their ranges;
``constrained = no``) and with the space's prefix-dependent constraints (``space.next_token_choices``; the
default of ``NAOConfig.constrained``), which make every decode valid by construction.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="*", default=["nb201", "darts", "darts-s1"])
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()

    import numpy as np
    import torch

    from nasmeta.blackbox.nao import NAOConfig, NAOModel, as_tokens, ascend, percentile_labels, reconstruct, train_nao
    from nasmeta.spaces import get_space

    torch.set_num_threads(1)
    print(
        "| space | constrained | train cells | epochs | token acc | cell acc | valid (reconstruction) "
        "| valid (ascent decodes) | new valid cell found | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.spaces:
        start = time.perf_counter()
        space = get_space(name)
        rng = np.random.default_rng(0)
        cells: dict = {}
        while len(cells) < args.train + args.held_out:
            arch = space.sample(rng)
            cells.setdefault(arch.arch_id, arch)
        archs = list(cells.values())
        train, held = archs[: args.train], archs[args.train :]
        weights = rng.normal(size=len(space.features(train[0])))
        labels = percentile_labels([float(space.features(a) @ weights) for a in train])
        config = NAOConfig()
        model = NAOModel(space.token_choices(), space.vocab_size, config)
        train_nao(model, as_tokens(space, train), labels, config, args.epochs, seed=0)
        ids = {a.arch_id for a in train}
        for constrained in (False, True):
            rec = reconstruct(model, space, held, constrained=constrained)
            stats: dict[str, int] = {}
            ladder = config.model_copy(update={"constrained": constrained})
            found = ascend(model, space, train, lambda a, seen=ids: a.arch_id not in seen, ladder, stats)
            new = sum(a is not None for a in found) / len(found)
            print(
                f"| {name} | {'yes' if constrained else 'no'} | {len(train)} | {args.epochs} "
                f"| {rec['token_accuracy']:.3f} | {rec['sequence_accuracy']:.3f} | {rec['valid_share']:.3f} "
                f"| {stats['valid'] / stats['decoded']:.3f} ({stats['decoded']} decodes) | {new:.3f} "
                f"| {time.perf_counter() - start:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
