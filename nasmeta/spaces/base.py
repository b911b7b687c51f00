"""The search-space contract shared by every space (NNI's "space", NASLib's search-space graph).

An :class:`Architecture` is a small immutable value: the space's name plus a space-specific, hashable,
JSON-serialisable encoding.  Everything that knows how to interpret the encoding lives on the
:class:`SearchSpace` (parse, print, canonicalise, sample, mutate, build), so architectures can be stored,
hashed and sent between processes without carrying torch objects.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def _to_tuple(value: Any) -> Any:
    """Recursively turn lists into tuples so encodings read from JSON hash like the originals."""
    if isinstance(value, list | tuple):
        return tuple(_to_tuple(v) for v in value)
    return value


@dataclass(frozen=True)
class Architecture:
    """An architecture of one search space: ``space`` name + hashable ``encoding``.

    Construct through ``SearchSpace.parse`` / ``SearchSpace.from_encoding`` (which validate) rather than
    directly.  ``str(arch)`` gives the space's human form (NB201 string, DARTS genotype, Macro string).
    """

    space: str
    encoding: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoding", _to_tuple(self.encoding))

    def __str__(self) -> str:
        from nasmeta.spaces import get_space

        return get_space(self.space).to_str(self)

    @property
    def arch_id(self) -> str:
        from nasmeta.spaces import get_space

        return get_space(self.space).arch_id(self)

    def to_json(self) -> dict:
        return {"space": self.space, "encoding": json.loads(json.dumps(self.encoding)), "arch_str": str(self)}

    @classmethod
    def from_json(cls, data: dict | str) -> Architecture:
        """Rebuild (and validate) an architecture from ``to_json`` output or its JSON text."""
        from nasmeta.spaces import get_space

        if isinstance(data, str):
            data = json.loads(data)
        if "space" not in data or "encoding" not in data:
            raise ValueError(f"architecture JSON needs 'space' and 'encoding' keys, got {sorted(data)}")
        return get_space(data["space"]).from_encoding(data["encoding"])


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short, process-independent hash of JSON-serialisable parts (Python's ``hash`` is salted)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class SearchSpace(abc.ABC):
    """What every space provides.  Methods that a space cannot support raise, never silently no-op."""

    #: registry name, e.g. ``"nb201"``
    name: str
    #: candidate operation names, in the order used for op ids
    ops: tuple[str, ...]

    # -- text and validation -------------------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, text: str) -> Architecture:
        """Parse the space's human form; raise ``ValueError`` naming the bad part."""

    @abc.abstractmethod
    def to_str(self, arch: Architecture) -> str:
        """The space's human form; ``parse(to_str(a)) == a``."""

    @abc.abstractmethod
    def from_encoding(self, encoding: Sequence) -> Architecture:
        """Validate an encoding (e.g. from JSON) and wrap it; raise ``ValueError`` naming the bad value."""

    # -- identity --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def canonical(self, arch: Architecture) -> Any:
        """A JSON-serialisable canonical form: equal for isomorphic (functionally identical) cells."""

    def arch_id(self, arch: Architecture) -> str:
        """Canonical hash: isomorphic architectures share one id."""
        self._check_space(arch)
        return stable_hash(self.name_for_id, self.canonical(arch))

    @property
    def name_for_id(self) -> str:
        """Spaces that share architectures (DARTS and its restricted variants) share ids."""
        return self.name

    # -- sampling ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Draw an architecture uniformly from the space."""

    @abc.abstractmethod
    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Return a different architecture that differs in exactly one choice."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of encodings in the space (not up to isomorphism)."""

    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture of a finite, small space; large spaces raise ``TypeError``."""
        raise TypeError(f"space {self.name!r} has {self.size:.3g} architectures and cannot be enumerated")

    def count_distinct(self) -> int | None:
        """Architectures up to isomorphism (distinct ids) of a space small enough to enumerate (NB201: 6,466;
        Macro: 3,969), counted once; None for spaces that cannot be enumerated."""
        if "_distinct" not in self.__dict__:
            try:
                self.__dict__["_distinct"] = len({arch.arch_id for arch in self.enumerate()})
            except TypeError:
                self.__dict__["_distinct"] = None
        return self.__dict__["_distinct"]

    # -- encodings for predictors ---------------------------------------------------------------------------
    @abc.abstractmethod
    def tokens(self, arch: Architecture) -> list[int]:
        """A fixed-order sequence of token ids in ``range(self.vocab_size)`` (for LSTM encoders)."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids ``tokens`` can return."""

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        """The architecture whose ``tokens`` are ``tokens`` (the inverse of :meth:`tokens`, for sequence decoders such
        as NAO's); a sequence that is no architecture of this space raises ``ValueError`` naming the bad token.
        Spaces without an inverse raise ``ValueError``."""
        raise ValueError(f"space {self.name!r} has no tokens -> architecture inverse")

    def token_choices(self) -> list[tuple[int, ...]]:
        """Per position of :meth:`tokens`, the token ids that position can take (a decoder masks the others).
        Spaces without an inverse raise ``ValueError``."""
        raise ValueError(f"space {self.name!r} has no tokens -> architecture inverse")

    def next_token_choices(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """The token ids that can follow ``prefix`` in some architecture's :meth:`tokens` (constrained decoding);
        default: the position's :meth:`token_choices`, for spaces whose positions are independent."""
        return self.token_choices()[len(prefix)]

    @abc.abstractmethod
    def graph(self, arch: Architecture) -> tuple[np.ndarray, list[int]]:
        """(adjacency matrix of the DAG with ops on nodes, op id per node) for graph encoders."""

    @abc.abstractmethod
    def features(self, arch: Architecture) -> np.ndarray:
        """A fixed-length float vector (one-hot of each choice)."""

    # -- networks ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build(
        self, arch: Architecture, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32), **size: Any
    ) -> Any:
        """A plain ``torch.nn.Module`` (no search machinery); defaults give the published network."""

    def supernet(self, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32), **size: Any) -> Any:
        """The one-shot supernet over this space (``nasmeta.oneshot.supernet.Supernet``); spaces without one raise
        ``ValueError``."""
        raise ValueError(f"no one-shot supernet for space {self.name!r}")

    @property
    def has_supernet(self) -> bool:
        return type(self).supernet is not SearchSpace.supernet

    # -- helpers -------------------------------------------------------------------------------------------------
    def _check_space(self, arch: Architecture) -> None:
        if not isinstance(arch, Architecture):
            raise TypeError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name and arch.space not in self.compatible_spaces:
            raise ValueError(f"architecture of space {arch.space!r} given to space {self.name!r}")

    #: other space names whose architectures this space accepts
    compatible_spaces: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<SearchSpace {self.name}: {len(self.ops)} ops, {self.size} archs>"
