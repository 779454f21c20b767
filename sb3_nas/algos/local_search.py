"""Local search (White et al., 2021, "Exploring the loss landscape in neural architecture search").

From the best architecture of the current climb, its neighbours — one decision changed — are evaluated in
random order; the first that is better becomes the new centre, and its neighbours are queued in turn. When
every neighbour of the centre has been evaluated and none is better (a local optimum), the search restarts
from an architecture drawn at random. A neighbour evaluated before (the previous centre, a neighbour two
centres share) is not evaluated again: every step of the budget goes to an architecture not yet seen.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

from sb3_nas.algos.search import Episode, SearchStrategy

RESTART = -1  # the generation of a restart episode (it belongs to no centre)


class LocalSearch(SearchStrategy):
    """Local search with random restarts, ``local_search`` (see the module's text), on any environment.

    :param env: a Gymnasium environment with a ``Discrete`` action space, or a ``VecEnv`` (workers take the
        next neighbours of the queue; a neighbour of a centre the search has left counts for nothing)
    :param seed: seeds the random restarts and the order of the neighbours
    :param use_masks: choose among the actions the environment's masks allow (a neighbour changes a decision
        to another action allowed there, as the centre's own state says)

    The decisions after a changed one follow the centre's; one the new state rules out is drawn anew.
    """

    name = "local search"

    def __init__(self, env: gym.Env | VecEnv | None, seed: int | None = None, use_masks: bool = True) -> None:
        self.centre: dict[str, Any] | None = None
        self.queue: list[list[int]] = []  # the centre's neighbours to evaluate: [step, action], next last
        self.generation = 0  # counts the centres, so that a worker's late neighbour of an old one is known
        self.n_restarts = 0
        self.evaluated: set[tuple[int, ...]] = set()  # the actions of every episode so far
        self._generation_of: dict[int, int] = {}  # worker → the generation its episode belongs to
        super().__init__(env, seed=seed, use_masks=use_masks)

    def neighbours(self, member: dict[str, Any]) -> list[list[int]]:
        """Every (step, action) that changes one decision of ``member``, in random order."""
        moves = [
            [step, other]
            for step, (action, allowed) in enumerate(zip(member["actions"], member["allowed"], strict=True))
            for other in allowed
            if other != action
        ]
        return [moves[i] for i in self.rng.permutation(len(moves))]

    def _next_neighbour(self) -> list[int] | None:
        """The plan of the next neighbour in the queue not evaluated yet (``None``: the queue is spent)."""
        while self.centre is not None and self.queue:
            step, action = self.queue.pop()
            plan = list(self.centre["actions"])
            plan[step] = action
            if tuple(plan) not in self.evaluated:
                return plan
        return None

    def _begin(self, worker: int, episode: Episode) -> None:
        plan = self._next_neighbour()
        if plan is None:  # nothing yet, or a local optimum: restart at random
            self.centre, self._generation_of[worker] = None, RESTART
            self.n_restarts += 1
            episode.plan = None
            return
        episode.plan, self._generation_of[worker] = plan, self.generation

    def _finish(self, worker: int, episode: Episode) -> None:
        member = {"actions": episode.taken, "allowed": episode.allowed, "value": episode.value}
        self.evaluated.add(tuple(episode.taken))
        generation = self._generation_of.pop(worker, RESTART)
        current = self.centre is not None and generation == self.generation
        restart = generation == RESTART and (self.centre is None or member["value"] > self.centre["value"])
        if restart or (current and member["value"] > self.centre["value"]):
            self.centre, self.generation = member, self.generation + 1
            self.queue = self.neighbours(member)
            self.logger.record("local_search/centre_value", member["value"])
            self.logger.record("local_search/restarts", self.n_restarts)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "centre": self.centre, "queue": self.queue,
                "generation": self.generation, "n_restarts": self.n_restarts,
                "evaluated": sorted(self.evaluated)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.centre, self.queue = state["centre"], [list(move) for move in state["queue"]]
        self.generation, self.n_restarts = int(state["generation"]), int(state["n_restarts"])
        self.evaluated = {tuple(actions) for actions in state["evaluated"]}
        self._generation_of = {}
