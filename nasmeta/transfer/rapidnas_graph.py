"""RapidNAS / MetaD2A graph parts: a D-VAE graph encoder and a D-VAE node-by-node decoder over the NB201 cell DAG.

D-VAE (Zhang, Jiang, Cui, Garnett & Chen, "D-VAE: A Variational Autoencoder for Directed Acyclic Graphs", NeurIPS
2019) is what MetaD2A builds on.  Graphs are NB201 cells in op-on-node form (``NB201Space.graph``): 8 nodes,
node 0 the cell input, nodes 1..6 the edges' ops, node 7 the output, with a fixed adjacency.  Node types are the
5 ops plus ``input`` and ``output`` (7 types).

Like D-VAE (its ``vid`` option) a node's *vertex state* is its hidden state ``h_v`` concatenated with the one-hot of
its position ``v``: in NB201's op-on-node graph which nodes connect depends on positions, not on op types, so
without it the decoder could not tell node 1 from node 2 (both fed by node 0 only) nor know when to emit the output.

- :class:`DAGEncoder`: a GRU passes messages in topological order; a node's hidden state is
  ``GRU(onehot(type), sum over predecessors u of sigmoid(g(s_u)) * m(s_u))`` over vertex states ``s_u`` (D-VAE's
  gated sum), optionally also
  in reverse order on the reversed graph (bidirectional, as MetaD2A's predictor); the graph vector is the output
  node's state (and the input node's state of the reverse pass).
- :class:`DAGDecoder`: from a latent ``z`` the start node (type ``input``) gets hidden state ``GRU(onehot(input),
  tanh(W z))``; then for ``v = 1 .. 7``: the type of ``v`` is drawn from a softmax over the 7 types given the
  graph state (the last node's vertex state, and the position ``v`` to fill), and for ``u = v-1 .. 0`` the edge
  ``u -> v`` is drawn from ``sigmoid(f([s_u, s_v]))``, ``h_v`` being updated from its predecessors after each
  added edge (D-VAE's order).
  Nothing forces a valid cell: types and edges are free, so validity (a decoded graph that *is* an NB201 cell:
  input, six ops, output, and exactly NB201's adjacency) is a measured property of the trained decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasmeta.spaces.base import Architecture
from nasmeta.spaces.nb201 import GRAPH_INPUT_ID, GRAPH_NUM_OP_IDS, GRAPH_OUTPUT_ID, OPS

__all__ = [
    "DAGDecoder",
    "DAGEncoder",
    "N_NODES",
    "N_TYPES",
    "NB201_ADJACENCY",
    "arch_graphs",
    "decoded_to_arch",
    "generation_metrics",
]

N_TYPES = GRAPH_NUM_OP_IDS
N_NODES = 8


def _nb201_adjacency() -> np.ndarray:
    from nasmeta.spaces import get_space

    adj, _ = get_space("nb201").graph(get_space("nb201").parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    return adj.astype(np.float32)


NB201_ADJACENCY = _nb201_adjacency()


def arch_graphs(archs: Sequence[Architecture]) -> tuple[torch.Tensor, torch.Tensor]:
    """(types ``(B, 8)`` int64, adjacency ``(B, 8, 8)`` float32) of NB201 cells."""
    from nasmeta.spaces import get_space

    space = get_space("nb201")
    types = []
    for arch in archs:
        if not isinstance(arch, Architecture) or arch.space != "nb201":
            raise ValueError(f"RapidNAS graphs are NB201 cells, got {arch!r}")
        types.append(space.graph(arch)[1])
    adj = torch.from_numpy(NB201_ADJACENCY).expand(len(archs), -1, -1).clone()
    return torch.tensor(types, dtype=torch.long).reshape(len(archs), N_NODES), adj


def decoded_to_arch(types: Sequence[int], adj: np.ndarray) -> Architecture | None:
    """The NB201 cell a decoded graph is, or None when it is not one (the validity rule of the module docstring)."""
    types = [int(t) for t in types]
    if len(types) != N_NODES or types[0] != GRAPH_INPUT_ID or types[-1] != GRAPH_OUTPUT_ID:
        return None
    if any(not 0 <= t < len(OPS) for t in types[1:-1]):
        return None
    if not np.array_equal(np.asarray(adj, dtype=np.float32), NB201_ADJACENCY):
        return None
    return Architecture("nb201", tuple(OPS[t] for t in types[1:-1]))


def generation_metrics(decoded: Sequence[Architecture | None], training: Sequence[Architecture]) -> dict[str, float]:
    """MetaD2A's generator quality over decoded samples (None = an invalid graph):

    validity = valid / samples; uniqueness = distinct valid cells / valid; novelty = valid samples whose cell is not
    in ``training`` / valid.  Cells are compared by their op string (``uniqueness_iso`` / ``novelty_iso``: up to
    NB201's isomorphism, by ``arch_id``)."""
    if not decoded:
        raise ValueError("generation_metrics needs at least one decoded sample, got none")
    valid = [a for a in decoded if a is not None]
    out = {"samples": float(len(decoded)), "valid": float(len(valid)), "validity": len(valid) / len(decoded)}
    if not valid:
        return {
            **out,
            "uniqueness": float("nan"),
            "novelty": float("nan"),
            "uniqueness_iso": float("nan"),
            "novelty_iso": float("nan"),
        }
    seen = {a.encoding for a in training}
    seen_iso = {a.arch_id for a in training}
    ids = [a.arch_id for a in valid]
    out["uniqueness"] = len({a.encoding for a in valid}) / len(valid)
    out["novelty"] = sum(a.encoding not in seen for a in valid) / len(valid)
    out["uniqueness_iso"] = len(set(ids)) / len(valid)
    out["novelty_iso"] = sum(i not in seen_iso for i in ids) / len(valid)
    return out


_VID = torch.eye(N_NODES)


def _with_vid(states: torch.Tensor) -> torch.Tensor:
    """Vertex states: ``(B, n, h)`` hidden states with each node's position one-hot appended."""
    return torch.cat([states, _VID[: states.shape[1]].expand(states.shape[0], -1, -1)], dim=2)


class _GatedSum(nn.Module):
    """D-VAE's message: ``sum_u sigmoid(gate(s_u)) * map(s_u)`` over the predecessors ``u`` given by a mask."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(hidden + N_NODES, hidden)
        self.map = nn.Linear(hidden + N_NODES, hidden, bias=False)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # states (B, n, h) hidden states, mask (B, n): 1 where node u feeds the node being updated
        vertex = _with_vid(states)
        messages = torch.sigmoid(self.gate(vertex)) * self.map(vertex)
        return (messages * mask.unsqueeze(-1)).sum(dim=1)


class DAGEncoder(nn.Module):
    """D-VAE encoder over graphs with node types and adjacency; returns ``(B, out_dim)``."""

    def __init__(self, hidden: int = 32, bidirectional: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.bidirectional = bidirectional
        self.forward_cell = nn.GRUCell(N_TYPES, hidden)
        self.forward_message = _GatedSum(hidden)
        if bidirectional:
            self.backward_cell = nn.GRUCell(N_TYPES, hidden)
            self.backward_message = _GatedSum(hidden)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def _pass(self, types: torch.Tensor, adj: torch.Tensor, cell: nn.GRUCell, message: _GatedSum) -> torch.Tensor:
        batch, n = types.shape
        x = F.one_hot(types, N_TYPES).float()
        states = torch.zeros(batch, n, self.hidden)
        for v in range(n):
            h = cell(x[:, v], message(states, adj[:, :, v]))
            states = states.clone()
            states[:, v] = h
        return states

    def forward(self, types: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        n = types.shape[1]
        forward_states = self._pass(types, adj, self.forward_cell, self.forward_message)
        out = [forward_states[:, n - 1]]
        if self.bidirectional:
            # the reverse pass runs on the reversed graph in reverse topological order
            flipped_types = types.flip(1)
            flipped_adj = adj.transpose(1, 2).flip(1).flip(2)
            backward_states = self._pass(flipped_types, flipped_adj, self.backward_cell, self.backward_message)
            out.append(backward_states[:, n - 1])
        return torch.cat(out, dim=1)


class DAGDecoder(nn.Module):
    """D-VAE decoder (module docstring): ``loss(z, types, adj)`` by teacher forcing, ``sample(z, generator)``."""

    def __init__(self, latent_dim: int = 32, hidden: int = 32, z_every_step: bool = False) -> None:
        super().__init__()
        self.hidden = hidden
        # D-VAE feeds z only into the start node; ``z_every_step`` also gives it to every type and edge decision
        # (a common remedy when the decoder learns to ignore z)
        self.z_every_step = z_every_step
        extra = latent_dim if z_every_step else 0
        self.init = nn.Linear(latent_dim, hidden)
        self.cell = nn.GRUCell(N_TYPES, hidden)
        self.message = _GatedSum(hidden)
        width = hidden + N_NODES
        # the type head sees the last node's vertex state and the position to fill
        self.type_head = nn.Sequential(
            nn.Linear(width + N_NODES + extra, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, N_TYPES)
        )
        self.edge_head = nn.Sequential(nn.Linear(2 * width + extra, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, 1))

    def _run(
        self, z: torch.Tensor, types: torch.Tensor | None, adj: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode node by node; with ``types`` / ``adj`` (teacher forcing) returns the summed per-graph type and
        edge negative log-likelihoods, else the sampled graphs."""
        batch = z.shape[0]
        states = torch.zeros(batch, N_NODES, self.hidden)
        out_types = torch.full((batch, N_NODES), GRAPH_INPUT_ID, dtype=torch.long)
        out_adj = torch.zeros(batch, N_NODES, N_NODES)
        type_nll = torch.zeros(batch)
        edge_nll = torch.zeros(batch)
        cond = [z] if self.z_every_step else []
        onehot_input = F.one_hot(out_types[:, 0], N_TYPES).float()
        h = self.cell(onehot_input, torch.tanh(self.init(z)))
        states = states.clone()
        states[:, 0] = h
        for v in range(1, N_NODES):
            last = torch.cat([h, _VID[v - 1].expand(batch, -1), _VID[v].expand(batch, -1), *cond], dim=1)
            logits = self.type_head(last)
            if types is not None:
                t = types[:, v]
                type_nll = type_nll + F.cross_entropy(logits, t, reduction="none")
            else:
                t = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator).squeeze(1)
            out_types[:, v] = t
            x = F.one_hot(t, N_TYPES).float()
            preds = torch.zeros(batch, N_NODES)
            h_v = self.cell(x, torch.zeros(batch, self.hidden))
            for u in range(v - 1, -1, -1):
                pair = [states[:, u], _VID[u].expand(batch, -1), h_v, _VID[v].expand(batch, -1), *cond]
                edge_logit = self.edge_head(torch.cat(pair, dim=1)).squeeze(1)
                if adj is not None:
                    e = adj[:, u, v]
                    edge_nll = edge_nll + F.binary_cross_entropy_with_logits(edge_logit, e, reduction="none")
                else:
                    e = torch.bernoulli(torch.sigmoid(edge_logit), generator=generator)
                out_adj[:, u, v] = e
                if bool((e > 0).any()):
                    preds = preds.clone()
                    preds[:, u] = e
                    updated = self.cell(x, self.message(states, preds))
                    # only graphs that gained an edge change their node state
                    h_v = torch.where(e.unsqueeze(1) > 0, updated, h_v)
            states = states.clone()
            states[:, v] = h_v
            h = h_v
        if types is not None:
            return type_nll, edge_nll, out_adj
        return out_types, out_adj, type_nll

    def loss(self, z: torch.Tensor, types: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """Per-graph reconstruction negative log-likelihood (types of nodes 1..7 + all 28 edge decisions)."""
        type_nll, edge_nll, _ = self._run(z, types, adj, None)
        return type_nll + edge_nll

    @torch.no_grad()
    def sample(self, z: torch.Tensor, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Stochastic decodes: (types ``(B, 8)``, adjacency ``(B, 8, 8)``) as numpy arrays."""
        types, adj, _ = self._run(z, None, None, generator)
        return types.numpy(), adj.numpy()
