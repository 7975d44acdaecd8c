"""Subgoals from a roadmap of the training data ("search on the replay buffer"), for goals behind obstacles.

Why: CEM scores a plan by how close its last predicted step gets to the goal, ``horizon x action_repeat`` env
steps ahead (15 at the cpu preset). When the straight way to the goal is blocked (TwoRoom's wall, a block that
must be pushed from the far side), every short plan that heads for the detour ends farther from the goal than
one that presses into the obstacle, so the greedy planner gets pinned. The data the world model was trained on
knows the ways round; a graph over it turns the far goal into a near subgoal the planner can reach.

Graph (``SubgoalGraph.build``): nodes are the frames the planning probe is fit on (``energy.probe_episodes``
episodes, every ``energy.probe_stride``-th frame) at their standardized states ``x`` (n, G) (``dims``, default
all the probe's kept dims). Edges, with costs in env steps:
  - temporal: frame t -> frame t + stride of the same episode, cost stride (directed: the data did it);
  - neighbours: each node to its ``neighbors`` nearest nodes within ``radius`` (standardized units), both ways,
    cost |x_i - x_j| / v, where v is the median standardized distance covered per env step on temporal edges.
Per episode, once (``set_goals``): the goal nodes are the nodes within ``radius`` of the goal state (read from the
goal frame by the probe; the nearest node if none is that close), and Dijkstra from them on the reversed graph
gives every node's cost-to-go and next node toward the goal. Per replanning step (``subgoals``): the current state
is read from the current frame by the same probe; the walk enters the graph at the one of the ``neighbors`` nearest
nodes with the lowest |x - c| / v + cost-to-go and follows the next-node chain until ``lookahead`` env steps are
covered. That node's latent (N, D) and standardized state (K,) replace the goal's in the energy. The planner
aims at the goal itself when no path exists, when the remaining cost is within the lookahead, or when the way is
clear: reaching the subgoal s would bring it closer to the goal by at least ``straight`` times |s - c|
(|c - g| - |s - g| >= straight |s - c|: the path heads straight for the goal, as on open ground, where the
greedy planner already does well and the data's wiggles would only slow it down).

States are used only as the dataset's labels (like the probe's: recorded proprioception in pure mode); at
evaluation the goal and the current state are read from images. ``space=latent`` spans the graph by the frames'
latents instead (their first ``latent_components`` principal components, standardized), so it needs no state
label at all and sees every body the encoder sees (PushBlock's block too); there ``radius`` is replaced by the
90th percentile of the distances to the ``neighbors``-th nearest node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch


class Space(StrEnum):
    """Coordinates of the roadmap: the probe's labelled state dims | principal components of the latents."""
    state = "state"
    latent = "latent"


@dataclass
class SubgoalConfig:
    """Settings of the subgoal roadmap (``subgoals.*`` in the plan config)."""

    enabled: bool = False  # plan toward graph subgoals when the goal is more than ``lookahead`` env steps away
    space: Space = Space.state  # graph coordinates: state (the probe's labelled dims) | latent (principal components)
    dims: list[int] = field(default_factory=list)  # space=state: label dims spanning the graph ([]: probe's kept)
    latent_components: int = 16  # space=latent: principal components of the latents spanning the graph
    radius: float = 0.3  # neighbour edges and goal nodes: standardized state distance
    neighbors: int = 8  # most neighbour edges per node; also the entry candidates per replanning step
    lookahead: int = 6  # env steps of graph path to the subgoal (keep it well inside horizon x action_repeat)
    straight: float = 0.8  # aim at the goal itself when the path to the subgoal heads this straight for the goal


class SubgoalGraph:
    """Roadmap over encoded dataset frames (see the module docstring); per-episode cost-to-go after ``set_goals``."""

    def __init__(self, x: np.ndarray, tree, latents: torch.Tensor, goal_states: torch.Tensor, src: np.ndarray,
                 dst: np.ndarray, cost: np.ndarray, speed: float, cfg: SubgoalConfig, dims_index: list[int],
                 radius: float, project=None):
        from scipy.sparse import csr_matrix

        self.x, self.latents, self.states = x, latents, goal_states  # (n, G), (n, N, D), (n, K)
        self.speed, self.cfg, self.dims_index, self.radius = float(speed), cfg, dims_index, float(radius)
        self.project = project  # space=latent: latents (B, N, D) -> graph coordinates (B, G); None: states
        n = len(x)
        # reversed graph (dst -> src) so that Dijkstra from the goal nodes gives costs *to* the goal;
        # duplicate pairs keep the cheapest edge
        order = np.lexsort((cost, src, dst))
        pair = np.stack([dst[order], src[order]], 1)
        keep = np.ones(len(pair), bool)
        keep[1:] = (pair[1:] != pair[:-1]).any(1)
        r, c, w = pair[keep, 0], pair[keep, 1], np.maximum(cost[order][keep], 1e-6)
        self.reverse = csr_matrix((w, (r, c)), shape=(n, n))
        self.edges = int(keep.sum())
        self.tree = tree  # scipy cKDTree over x
        self.cost_to_go: np.ndarray | None = None  # (E, n)
        self.next_node: np.ndarray | None = None  # (E, n); -9999 at goal nodes and unreachable ones
        self.goals: np.ndarray | None = None  # (E, G) goal states in graph coordinates

    @classmethod
    def build(cls, frames, probe, cfg: SubgoalConfig, stride: int) -> "SubgoalGraph":
        """Graph over ``frames`` (``probe.ProbeFrames``) in the standardized state space of ``probe``
        (``LatentProbe``); ``stride``: env steps between consecutive frames of an episode."""
        from scipy.spatial import cKDTree

        y = probe.standardize(frames.states)  # (n, K) the nodes' labelled states (the energy's state term)
        project, index = None, []
        if cfg.space == "latent":
            project = latent_projection(frames.z, cfg.latent_components)
            x = project(frames.z)  # (n, G)
        elif cfg.space == "state":
            dims = list(cfg.dims) or list(probe.dims)
            missing = [d for d in dims if d not in probe.dims]
            if missing:
                raise ValueError(f"subgoals.dims {missing} are not state dims the probe reads well (kept dims "
                                 f"{probe.dims}, held-out R^2 {probe.r2}); pick among the kept dims")
            index = [probe.dims.index(d) for d in dims]
            x = y[:, index].numpy().astype(np.float64)  # (n, G)
        else:
            raise ValueError(f"subgoals.space={cfg.space!r}; expected state or latent")
        ep, step = np.asarray(frames.episode), np.asarray(frames.step)
        nxt = np.flatnonzero((ep[1:] == ep[:-1]) & (step[1:] > step[:-1]))  # temporal edges i -> i + 1
        t_src, t_dst = nxt, nxt + 1
        t_cost = (step[t_dst] - step[t_src]).astype(np.float64)  # (e_t,) env steps
        moved = np.linalg.norm(x[t_dst] - x[t_src], axis=1) / t_cost
        speed = float(np.median(moved[moved > 0])) if (moved > 0).any() else 1.0  # standardized units per env step
        tree = cKDTree(x)
        radius = cfg.radius
        if project is not None:  # latent coordinates: most nodes reach their neighbors-th nearest node
            radius = float(np.quantile(tree.query(x, k=min(cfg.neighbors + 1, len(x)))[0][:, -1], 0.9))
        d, j = tree.query(x, k=min(cfg.neighbors + 1, len(x)), distance_upper_bound=radius)  # (n, k)
        i = np.repeat(np.arange(len(x)), d.shape[1]).reshape(d.shape)
        ok = np.isfinite(d) & (j != i)
        n_src, n_dst, n_cost = i[ok], j[ok], d[ok] / speed
        src = np.concatenate([t_src, n_src, n_dst])
        dst = np.concatenate([t_dst, n_dst, n_src])
        cost = np.concatenate([t_cost, n_cost, n_cost])
        return cls(x, tree, frames.z, y, src, dst, cost, speed, cfg, index, radius, project)

    def coords(self, states: torch.Tensor | None, latents: torch.Tensor | None) -> np.ndarray:
        """Graph coordinates (B, G) of observations: their latents (B, N, D) in latent space, else their
        standardized states (B, K) read by the probe."""
        if self.project is not None:
            return self.project(latents)
        return states[:, self.dims_index].cpu().double().numpy()

    def set_goals(self, goal_states: torch.Tensor | None, goal_latents: torch.Tensor | None = None) -> None:
        """Cost-to-go and next node toward each episode's goal: goal_states (E, K) standardized (probe dims) or
        None, goal_latents (E, N, D)."""
        from scipy.sparse.csgraph import dijkstra

        g = self.coords(goal_states, goal_latents)  # (E, G)
        ctg, nxt = [], []
        for e in range(len(g)):
            goal_nodes = self.tree.query_ball_point(g[e], self.radius)
            if not goal_nodes:
                goal_nodes = [int(self.tree.query(g[e])[1])]
            dist, pred, _ = dijkstra(self.reverse, directed=True, indices=goal_nodes, return_predecessors=True,
                                     min_only=True)
            ctg.append(dist)
            nxt.append(pred)
        self.cost_to_go, self.next_node = np.stack(ctg), np.stack(nxt)  # (E, n)
        self.goals = g  # (E, G)

    def subgoals(self, episodes: np.ndarray, current: torch.Tensor | None, lookahead: float,
                 latents: torch.Tensor | None = None) -> np.ndarray:
        """Subgoal node per active episode, -1 where the planner should aim at the goal itself.

        episodes (E',) episode ids (rows of ``set_goals``), current (E', K) standardized states read from the
        current frames (or None in latent space), latents (E', N, D) of the current frames; lookahead: env steps
        of path to cover."""
        c = self.coords(current, latents)  # (E', G)
        to_goal = np.linalg.norm(c - self.goals[episodes], axis=1)  # (E',)
        k = min(self.cfg.neighbors, len(self.x))
        d, j = self.tree.query(c, k=k)  # (E', k)
        d, j = d.reshape(len(c), k), j.reshape(len(c), k)
        out = np.full(len(c), -1, np.int64)
        for r, e in enumerate(episodes):
            score = d[r] / self.speed + self.cost_to_go[e, j[r]]  # (k,) env steps to the goal via each entry
            best = int(np.argmin(score))
            if not np.isfinite(score[best]) or score[best] <= lookahead:
                continue
            node, covered = int(j[r, best]), d[r, best] / self.speed
            while covered < lookahead and self.next_node[e, node] >= 0:
                nxt = int(self.next_node[e, node])
                covered += self.cost_to_go[e, node] - self.cost_to_go[e, nxt]
                node = nxt
            progress = to_goal[r] - np.linalg.norm(self.x[node] - self.goals[e])
            if progress < self.cfg.straight * np.linalg.norm(self.x[node] - c[r]):
                out[r] = node  # a detour: aim at the subgoal
        return out


def latent_projection(z: torch.Tensor, components: int):
    """A map latents (B, N, D) -> (B, k) onto the first ``components`` principal components of ``z`` (n, N, D),
    each scaled to unit variance over ``z``; the same ``z`` gives the same map in every run."""
    flat = z.flatten(1).double()  # (n, N*D)
    mean = flat.mean(0)
    k = min(components, *flat.shape)
    with torch.random.fork_rng(devices=[]):  # pca_lowrank is randomized: a fixed seed, the same roadmap every run
        torch.manual_seed(0)
        _, _, v = torch.pca_lowrank(flat - mean, q=k, center=False)  # v (N*D, k)
    scale = ((flat - mean) @ v).std(0).clamp_min(1e-12)  # (k,)

    def project(latents: torch.Tensor) -> np.ndarray:
        return (((latents.flatten(1).double().cpu() - mean) @ v) / scale).numpy()

    return project
