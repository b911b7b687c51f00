"""The one budget object: how much a pipeline, a collection or a search may spend, with network sizes per space.

A :class:`Budget` is resolved once (``resolve_budget``: a preset name, a mapping of overrides on a preset, or a
``Budget``) at the edge (CLI, flow parameters) and handed down as it is.  It holds

- the collection: architectures per source task, epochs per run, landmarker seeds, transfer-component settings;
- the search: training recipe, epochs per evaluation, evaluations per method, zero-shot samples, one-shot epochs,
  TAP predictions, retraining epochs, images per class;
- the network size **per space family** for ``space.build`` (``network_size(space)``) and for one-shot supernets
  (``supernet_size(space)``): NB201 ``C, N``; DARTS ``C, layers`` (+ auxiliary head, drop-path); NAS-Bench-Macro
  ``stem_channels, head_channels``.  Every preset has every space, so every budget works for every space.

The presets: ``micro`` (seconds; tests), ``default`` (the main job, minutes on two CPU cores), ``paper`` (published
sizes: NB201 C=16 N=5, the DARTS 20-cell C=36 evaluation network and 8-cell C=16 search network, Macro's 32 / 1280
channels, 200-epoch retraining; for GPU workers).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: space families a budget names sizes for; ``darts-s1`` .. ``darts-s4`` share the DARTS sizes
SPACE_FAMILIES = ("nb201", "darts", "macro")


def space_family(space: str) -> str:
    """``darts-s3`` -> ``darts``; other space names are their own family."""
    return "darts" if space == "darts" or space.startswith("darts-") else space


class Budget(BaseModel):
    """Everything a run may spend; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    # -- collection
    n_archs: int = Field(16, ge=1, description="architectures trained per source task")
    collect_epochs: int = Field(8, ge=1, description="epochs of each collection run")
    landmarker_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    transfer: dict[str, dict[str, Any]] = Field(default_factory=dict, description="component -> fit settings")
    # -- search
    train: dict[str, Any] = Field(default_factory=lambda: {"batch_size": 64, "lr": 0.05, "num_threads": 1})
    eval_epochs: int = Field(8, ge=1, description="epochs of each evaluation in a search")
    evaluations: int = Field(6, ge=1, description="architectures trained per search method")
    zeroshot_samples: int = Field(100, ge=1)
    zeroshot_proxies: list[str] = Field(default_factory=lambda: ["naswot", "synflow"], min_length=1)
    oneshot_epochs: int = Field(10, ge=1)
    tapas_predictions: int = Field(500, ge=1)
    retrain_epochs: int = Field(20, ge=1)
    samples_per_class: int | None = Field(None, ge=2, description="images per class of every task (None: all)")
    # -- network sizes per space family
    network: dict[str, dict[str, Any]] = Field(default_factory=dict)
    supernet: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sizes_for_every_space(self) -> Budget:
        for label, sizes in (("network", self.network), ("supernet", self.supernet)):
            unknown = sorted(set(sizes) - set(SPACE_FAMILIES))
            if unknown:
                raise ValueError(f"{label} sizes for unknown space famil(ies) {unknown}; known: {SPACE_FAMILIES}")
        return self

    def network_size(self, space: str) -> dict[str, Any]:
        """Keyword arguments of ``space.build`` for networks that are trained (searches, collection, retrain)."""
        return dict(self.network.get(space_family(space), {}))

    def supernet_size(self, space: str) -> dict[str, Any]:
        """Keyword arguments of the one-shot supernet of ``space``."""
        return dict(self.supernet.get(space_family(space), {}))

    def train_config(self, epochs: int | None = None, **changes: Any) -> Any:
        """The training recipe (``nasmeta.training.TrainConfig``) for ``epochs`` (default ``eval_epochs``)."""
        from nasmeta.training import TrainConfig

        return TrainConfig(**{**self.train, "epochs": epochs or self.eval_epochs, **changes})

    def describe(self) -> str:
        """One line for tags and tables."""
        return (
            f"{self.name}: {self.evaluations} evaluations x {self.eval_epochs} epochs; collect {self.n_archs} archs x "
            f"{self.collect_epochs} epochs"
        )


_NETWORK = {
    "micro": {
        "nb201": {"C": 4, "N": 1},
        "darts": {"C": 4, "layers": 3, "auxiliary": False, "drop_path_prob": 0.0},
        "macro": {"stem_channels": 8, "head_channels": 32},
    },
    "default": {
        "nb201": {"C": 8, "N": 1},
        "darts": {"C": 8, "layers": 5, "auxiliary": False, "drop_path_prob": 0.0},
        "macro": {"stem_channels": 16, "head_channels": 128},
    },
    "paper": {
        "nb201": {"C": 16, "N": 5},
        "darts": {"C": 36, "layers": 20, "auxiliary": True, "drop_path_prob": 0.2},
        "macro": {"stem_channels": 32, "head_channels": 1280},
    },
}
_SUPERNET = {
    "micro": {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}},
    "default": {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}},
    "paper": {"nb201": {"C": 16, "N": 5}, "darts": {"C": 16, "layers": 8}},
}

BUDGETS: dict[str, Budget] = {
    "micro": Budget(
        name="micro",
        n_archs=2,
        collect_epochs=2,
        # small batches: 30 images per class give a few steps per epoch, too few for BN statistics at batch 64
        train={"batch_size": 16, "lr": 0.05, "num_threads": 1},
        transfer={"tapas": {"epochs": 2}, "lcranknet": {"steps": 5}},
        eval_epochs=2,
        evaluations=2,
        zeroshot_samples=8,
        oneshot_epochs=1,
        tapas_predictions=50,
        retrain_epochs=2,
        samples_per_class=30,
        network=_NETWORK["micro"],
        supernet=_SUPERNET["micro"],
    ),
    "default": Budget(
        name="default",
        transfer={"tapas": {"epochs": 30}, "lcranknet": {"steps": 200}},
        network=_NETWORK["default"],
        supernet=_SUPERNET["default"],
    ),
    "paper": Budget(
        name="paper",
        n_archs=200,
        collect_epochs=50,
        landmarker_seeds=[0, 1, 2],
        train={"batch_size": 256, "lr": 0.1},
        eval_epochs=12,
        evaluations=100,
        zeroshot_samples=1000,
        oneshot_epochs=50,
        tapas_predictions=10000,
        retrain_epochs=200,
        network=_NETWORK["paper"],
        supernet=_SUPERNET["paper"],
    ),
}


def resolve_budget(budget: str | dict[str, Any] | Budget | None = None) -> Budget:
    """A preset name, a mapping (``{"preset": "micro", "evaluations": 4, ...}``: overrides on a preset, default
    ``default``), or a ``Budget``; unknown names and fields raise ``ValueError`` naming them."""
    if budget is None:
        return BUDGETS["default"]
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)} or a mapping")
        return BUDGETS[budget]
    if isinstance(budget, dict):
        changes = dict(budget)
        base = resolve_budget(changes.pop("preset", "default"))
        if set(changes) <= {"name"} and changes.get("name") in BUDGETS:
            return BUDGETS[changes["name"]]
        data = base.model_dump()
        for key in ("network", "supernet"):  # sizes merge per space family
            if key in changes:
                data[key] = {**data[key], **{f: {**data[key].get(f, {}), **v} for f, v in changes.pop(key).items()}}
        name = changes.pop("name", base.name if not changes else f"{base.name}+custom")
        return Budget.model_validate({**data, **changes, "name": name})
    raise ValueError(f"a budget is a preset name, a mapping or a Budget, got {type(budget).__name__}")
