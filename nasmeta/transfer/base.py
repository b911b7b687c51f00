"""The transfer-component contract (DESIGN.md): ``fit(meta) -> self``, ``save(dir)``, ``load(dir)`` plus one role.

Roles:
- :class:`Predictor` — ``predict(archs, task) -> scores`` (higher = better);
- :class:`Generator` — ``propose(task, n) -> archs``, the candidates to evaluate first (the portfolio);
- :class:`Stopper` — ``decide(curve, context) -> Decision`` on a partial learning curve;
- :class:`MetaArchitecture` — ``adapt(task) -> arch``.

Each component declares the slices of the metadata store it needs (NASLib's ``get_data_reqs``) in
``data_requirements`` so a flow can refuse early, with a clear message, when the store lacks them.
``meta`` is a read-only ``metadata_store.MetaDataset`` view; leave-one-dataset-out passes ``meta.without(task)``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from nasmeta.scheduling import Decision
from nasmeta.spaces.base import Architecture

#: names a component may list in ``data_requirements``
KNOWN_REQUIREMENTS = frozenset(
    {"tasks", "landmarkers", "architectures", "runs", "curves", "proxy_scores", "task_samples"}
)


class MissingMetadataError(ValueError):
    """The store lacks what a component declared it needs."""


class TransferComponent(abc.ABC):
    """Base of every transfer component; subclasses must implement all abstract methods."""

    #: registry / MLflow name, e.g. ``"lcranknet"``
    name: ClassVar[str]
    #: subset of ``KNOWN_REQUIREMENTS``
    data_requirements: ClassVar[frozenset[str]] = frozenset()
    #: search spaces the component can learn from (None: any)
    spaces: ClassVar[tuple[str, ...] | None] = None

    @abc.abstractmethod
    def fit(self, meta: Any) -> Self:
        """Train on a ``MetaDataset`` view and return ``self``."""

    @abc.abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write everything needed to rebuild the fitted component into ``directory``; return it."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: str | Path) -> Self:
        """Rebuild a component written by ``save``; predictions must equal the original's."""

    def check_requirements(self, available: set[str] | frozenset[str]) -> None:
        """Raise :class:`MissingMetadataError` naming what the store lacks."""
        unknown = self.data_requirements - KNOWN_REQUIREMENTS
        if unknown:
            raise ValueError(f"{self.name}: unknown data requirement(s) {sorted(unknown)}")
        missing = self.data_requirements - set(available)
        if missing:
            raise MissingMetadataError(f"{self.name} needs {sorted(missing)} in the metadata store, which has none")


class Predictor(TransferComponent):
    @abc.abstractmethod
    def predict(self, archs: Sequence[Architecture], task: Any) -> np.ndarray:
        """Scores for ``archs`` on ``task`` (higher = better); ``task`` is a task id or a landmarker dict."""


class Generator(TransferComponent):
    @abc.abstractmethod
    def propose(self, task: Any, n: int) -> list[Architecture]:
        """``n`` architectures for ``task``, best candidates first."""


class Stopper(TransferComponent):
    @abc.abstractmethod
    def decide(self, curve: Sequence[float], context: dict[str, Any]) -> Decision:
        """Continue or stop a run given its partial validation curve and context (arch, task, best so far)."""


class MetaArchitecture(TransferComponent):
    @abc.abstractmethod
    def adapt(self, task: Any) -> Architecture:
        """An architecture adapted to ``task``."""
