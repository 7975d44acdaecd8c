"""The subgoal roadmap on a two-room plane whose data go through the door (no world model involved)."""
from types import SimpleNamespace

import numpy as np
import torch

from worldmodel.planning.probe import ProbeFrames
from worldmodel.planning.subgoals import SubgoalConfig, SubgoalGraph

DOOR_Y, DOOR_HALF, WALL = 0.45, 0.22, 0.12  # centres stay WALL away from x = 0 except in the door
STEP = 0.08  # distance per env step


def drive(p, target, rng):
    """Steps of STEP from p to target, with a little noise, as a list of points (the end included)."""
    out = []
    while np.linalg.norm(target - p) > STEP:
        p = p + STEP * (target - p) / np.linalg.norm(target - p) + rng.normal(0, 0.005, 2)
        out.append(p)
    return out + [target]


def two_room_frames(episodes=120, seed=0) -> ProbeFrames:
    """Episodes that cross between the rooms only through the door (like the TwoRoom data policy)."""
    rng = np.random.default_rng(seed)
    states, episode, step = [], [], []
    for e in range(episodes):
        side = rng.choice([-1, 1])
        p = np.array([side * rng.uniform(0.2, 0.85), rng.uniform(-0.85, 0.85)])
        t = np.array([-side * rng.uniform(0.2, 0.85), rng.uniform(-0.85, 0.85)])
        path = [p]
        for w in (np.array([side * 0.3, DOOR_Y]), np.array([-side * 0.3, DOOR_Y]), t):
            path += drive(path[-1], w, rng)
        path = np.array(path)
        states.append(path)
        episode.append(np.full(len(path), e))
        step.append(np.arange(len(path)))
    states = np.concatenate(states).astype(np.float32)
    n = len(states)
    return ProbeFrames(z=torch.arange(n, dtype=torch.float32)[:, None, None], z_fine=None,
                       states=torch.from_numpy(states), episode=np.concatenate(episode), step=np.concatenate(step))


def identity_probe():
    """A probe whose standardized state is the (x, y) state itself."""
    return SimpleNamespace(dims=[0, 1], r2=[1.0, 1.0], standardize=lambda s: s[..., :2].float())


def crosses_wall(a, b) -> bool:
    """Whether the segment a -> b passes x = 0 outside the door."""
    if np.sign(a[0]) == np.sign(b[0]):
        return False
    y = a[1] + (b[1] - a[1]) * (0 - a[0]) / (b[0] - a[0])
    return abs(y - DOOR_Y) > DOOR_HALF


def test_subgoals_lead_through_the_door():
    frames = two_room_frames()
    graph = SubgoalGraph.build(frames, identity_probe(), SubgoalConfig(enabled=True, radius=0.15), stride=1)
    starts = torch.tensor([[-0.5, -0.6], [0.6, -0.7], [-0.4, 0.8]])
    goals = torch.tensor([[0.5, -0.6], [-0.6, -0.5], [0.5, -0.6]])  # straight lines miss the door
    assert all(crosses_wall(s.numpy(), g.numpy()) for s, g in zip(starts, goals))
    graph.set_goals(goals)
    for e in range(len(starts)):
        p, hops, goal = starts[e].numpy(), 0, goals[e].numpy()
        while np.linalg.norm(p - goal) > 1e-6:  # a greedy planner: up to 6 steps straight at its target
            node = graph.subgoals(np.array([e]), torch.from_numpy(p)[None], lookahead=6)[0]
            target = goal if node < 0 else graph.x[node]
            q = p + (target - p) * min(1.0, 6 * STEP / max(np.linalg.norm(target - p), 1e-9))
            assert not crosses_wall(p, q), (e, p, q, node)
            p, hops = q, hops + 1
            assert hops < 40, "the subgoals do not converge to the goal"
        assert hops >= 3  # the detour takes several moves of 6 steps


def test_near_goal_aims_at_the_goal_itself():
    frames = two_room_frames(episodes=40)
    graph = SubgoalGraph.build(frames, identity_probe(), SubgoalConfig(enabled=True, radius=0.15), stride=1)
    graph.set_goals(torch.tensor([[0.5, 0.0]]))
    assert graph.subgoals(np.array([0]), torch.tensor([[0.45, 0.1]]), lookahead=6)[0] == -1  # 2 steps away
    far = graph.subgoals(np.array([0]), torch.tensor([[-0.5, 0.0]]), lookahead=6)[0]
    assert far >= 0 and graph.x[far][0] < 0  # the first subgoal is still in the left room
    # the subgoal's latent and state are its frame's
    assert graph.latents[far].item() == far and torch.equal(graph.states[far], frames.states[far, :2])


def test_dims_outside_the_probe_fail_clearly():
    frames = two_room_frames(episodes=4)
    try:
        SubgoalGraph.build(frames, identity_probe(), SubgoalConfig(enabled=True, dims=[3]), stride=1)
    except ValueError as e:
        assert "subgoals.dims [3]" in str(e)
    else:
        raise AssertionError("expected a ValueError")


def test_clear_way_aims_at_the_goal_itself():
    """In the same room the straight line is free: no subgoal, however far (unless detours are forced)."""
    frames = two_room_frames()
    graph = SubgoalGraph.build(frames, identity_probe(), SubgoalConfig(enabled=True, radius=0.15), stride=1)
    graph.set_goals(torch.tensor([[-0.3, 0.8]]))
    start = torch.tensor([[-0.7, -0.8]])  # ~20 steps away, same room
    assert graph.subgoals(np.array([0]), start, lookahead=6)[0] == -1
    graph.cfg.straight = 1.01  # always follow the roadmap
    node = graph.subgoals(np.array([0]), start, lookahead=6)[0]
    assert node >= 0 and graph.x[node][0] < 0


def test_latent_space_roadmap_needs_no_state_labels():
    """The same door, with the graph spanned by latents (a smooth nonlinear embedding of the position) and a
    probe whose states are useless: subgoals still lead through the door."""
    frames = two_room_frames()
    w = torch.randn(2, 64, generator=torch.Generator().manual_seed(0)) * 2.0
    b = torch.rand(64, generator=torch.Generator().manual_seed(1)) * 6.28

    def embed(p: torch.Tensor) -> torch.Tensor:  # (B, 2) -> latents (B, 4, 16)
        return torch.cos(p.float() @ w + b).reshape(len(p), 4, 16)

    frames.z = embed(frames.states)
    blind = SimpleNamespace(dims=[0], r2=[0.0], standardize=lambda s: torch.zeros(len(s), 1))
    graph = SubgoalGraph.build(frames, blind, SubgoalConfig(enabled=True, space="latent"), stride=1)
    start, goal = torch.tensor([[-0.5, -0.6]]), torch.tensor([[0.5, -0.6]])
    graph.set_goals(None, embed(goal))
    p, hops = start[0].numpy(), 0
    while np.linalg.norm(p - goal[0].numpy()) > 1e-6:
        node = graph.subgoals(np.array([0]), None, lookahead=6, latents=embed(torch.from_numpy(p)[None]))[0]
        target = goal[0].numpy() if node < 0 else frames.states[node].numpy()
        q = p + (target - p) * min(1.0, 6 * STEP / max(np.linalg.norm(target - p), 1e-9))
        assert not crosses_wall(p, q), (p, q, node)
        p, hops = q, hops + 1
        assert hops < 40, "the subgoals do not converge to the goal"
    assert hops >= 3


def test_latent_roadmap_coordinates_are_the_same_every_run():
    from worldmodel.planning.subgoals import latent_projection

    z = torch.randn(300, 4, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    a = latent_projection(z, 5)(z)
    torch.manual_seed(2)  # whatever the global random state, the same latents span the same roadmap
    np.testing.assert_array_equal(a, latent_projection(z, 5)(z))
