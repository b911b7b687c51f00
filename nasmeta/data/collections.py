"""Named metadata collections: which source tasks, which cells, how trained — so a collection is one command.

``nasmeta collect --collection nasmeta-meta-v1`` runs the plan below through the ``collect_metadata`` flow; a rerun
trains only what the store lacks.  The tasks are registered under their names with every other task
(``nasmeta.data.tasks``), so ``search target --task meta-c10-vehicles-16`` and LODO folds name them directly.

``nasmeta-meta-v1`` (made for a 2-core CPU in about 1.5 hours; the same plan at paper scale is a matter of
``size`` / ``train`` / ``epochs``): 12 tasks derived from MNIST, the CIFAR-10 subset and scikit-learn's digits —
class subsets, 8 / 16 / 32 px, grayscale, rotation, blur and noise corruptions, 20–100 training images per class —
chosen so that difficulty spreads (median final accuracy from about 35 % to 90 %).  Half of each task's sampled
images are its validation split, because the rankings of cells are only worth transferring if a validation
accuracy is not dominated by a handful of images.  Every task trains the same ``n_archs`` NB201 cells (sampled
with ``arch_seed``) plus ``search_archs`` cells proposed per task by mutating its best shared cells (so good cells
are covered), all for ``epochs`` epochs with full per-epoch curves; on the ``repeat_tasks`` the first
``repeat_archs`` cells are trained again with each of ``repeat_seeds`` to measure seed noise.

This module holds plain data (no import of ``nasmeta.data.tasks``, which registers these tasks at its import).
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLLECTIONS", "collection_plan", "collection_task_specs", "list_collections"]

_C10 = "cifar10-10k"
_HALF = 0.5  # validation share of each task's sampled training images (see the module docstring)

#: name -> {"tasks": {task name: TaskSpec fields}, "plan": CollectParams fields}
COLLECTIONS: dict[str, dict[str, Any]] = {
    "nasmeta-meta-v1": {
        "tasks": {
            "meta-digits-rot30-few": {
                "source": "digits",
                "samples_per_class": 40,
                "test_per_class": 40,
                "corruption": {"rotation": 30.0, "seed": 6},
            },
            "meta-digits-noisy": {
                "source": "digits",
                "samples_per_class": 100,
                "test_per_class": 40,
                "corruption": {"noise_std": 0.35, "rotation": 20.0, "seed": 1},
            },
            "meta-mnist-16-few": {"source": "mnist", "resolution": 16, "samples_per_class": 40, "test_per_class": 40},
            "meta-mnist-16-rot180": {
                "source": "mnist",
                "resolution": 16,
                "samples_per_class": 100,
                "test_per_class": 40,
                "corruption": {"rotation": 180.0, "seed": 2},
            },
            "meta-mnist-16-noise": {
                "source": "mnist",
                "resolution": 16,
                "samples_per_class": 100,
                "test_per_class": 40,
                "corruption": {"noise_std": 0.5, "seed": 3},
            },
            "meta-mnist-16-blur": {
                "source": "mnist",
                "resolution": 16,
                "samples_per_class": 60,
                "test_per_class": 40,
                "corruption": {"blur": 1.0, "seed": 4},
            },
            "meta-mnist-32-rot90": {
                "source": "mnist",
                "resolution": 32,
                "samples_per_class": 40,
                "test_per_class": 30,
                "corruption": {"rotation": 90.0, "seed": 5},
            },
            "meta-c10-vehicles-16": {
                "source": _C10,
                "classes": [0, 1, 8, 9],
                "resolution": 16,
                "samples_per_class": 160,
                "test_per_class": 80,
            },
            "meta-c10-bird-deer-frog-16": {
                "source": _C10,
                "classes": [2, 4, 6],
                "resolution": 16,
                "samples_per_class": 160,
                "test_per_class": 100,
            },
            "meta-c10-plane-ship-16": {
                "source": _C10,
                "classes": [0, 8],
                "resolution": 16,
                "samples_per_class": 200,
                "test_per_class": 120,
            },
            "meta-c10-cat-dog-16": {
                "source": _C10,
                "classes": [3, 5],
                "resolution": 16,
                "samples_per_class": 200,
                "test_per_class": 120,
            },
            "meta-c10-gray-5-16": {
                "source": _C10,
                "classes": [0, 1, 2, 3, 4],
                "channels": 1,
                "resolution": 16,
                "samples_per_class": 120,
                "test_per_class": 60,
            },
        },
        "plan": {
            "space": "nb201",
            "n_archs": 120,
            "arch_seed": 0,
            "search_archs": 8,
            "epochs": 12,
            "seeds": [0],
            "repeat_seeds": [1],
            "repeat_archs": 24,
            # seed noise measured on half of the tasks (MNIST and digits variants), to keep the collection in time
            "repeat_tasks": [
                "meta-digits-rot30-few",
                "meta-digits-noisy",
                "meta-mnist-16-few",
                "meta-mnist-16-rot180",
                "meta-mnist-16-noise",
                "meta-mnist-16-blur",
            ],
            "size": {"C": 8, "N": 1},
            "train": {"batch_size": 16, "lr": 0.05, "num_threads": 1},
        },
    },
}


def list_collections() -> list[str]:
    return sorted(COLLECTIONS)


def _get(name: str) -> dict[str, Any]:
    try:
        return COLLECTIONS[name]
    except KeyError:
        raise ValueError(f"unknown collection {name!r}; known: {', '.join(list_collections())}") from None


def collection_task_specs(name: str | None = None) -> dict[str, dict[str, Any]]:
    """Task name -> ``TaskSpec`` fields (validation share included) of one collection, or of all."""
    names = [name] if name is not None else list_collections()
    return {task: {"val_fraction": _HALF, **fields} for n in names for task, fields in _get(n)["tasks"].items()}


def collection_plan(name: str) -> dict[str, Any]:
    """``CollectParams`` fields of the collection (its tasks included)."""
    entry = _get(name)
    return {"tasks": list(entry["tasks"]), **entry["plan"]}
