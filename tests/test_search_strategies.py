"""The NAS baselines as search strategies: regularized evolution, local search and TPE, on tiny tables whose
optimum is known, and through the run commands on a tabular benchmark."""

import itertools
import json
import zipfile

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml

from sb3_nas import train
from sb3_nas.algos import LocalSearch, RandomSearch, RegularizedEvolution, TPESearch
from sb3_nas.algos.rea import scaled_sizes
from sb3_nas.algos.tpe import parameter_name
from sb3_nas.envs import TabularNasEnv
from sb3_nas.errors import ModelError
from sb3_nas.experiment import ALGOS, SEARCH_ALGOS, load_run_model
from sb3_nas.experiment.runner import model_file, study_name

DECISIONS, CHOICES = 3, 4
ARCHITECTURES = list(itertools.product(range(CHOICES), repeat=DECISIONS))


class TableEnv(gym.Env):
    """Pick ``DECISIONS`` choices of ``CHOICES`` one per step; the last step is rewarded with the table's
    value of the architecture (0 before). Records every episode's architecture. ``masked`` choices are never
    allowed by ``action_masks``; ``terminal`` adds an action that ends the episode early (rewarded 0)."""

    def __init__(self, table: dict, masked: tuple[int, ...] = (), terminal: bool = False) -> None:
        self.table, self.masked, self.terminal = table, masked, terminal
        self.action_space = gym.spaces.Discrete(CHOICES + terminal)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (DECISIONS * (CHOICES + 1),), np.float32)
        self.max_steps = DECISIONS
        self.prefix: list[int] = []
        self.episodes: list[tuple[int, ...]] = []

    def _observation(self) -> np.ndarray:
        observation = np.zeros(self.observation_space.shape, np.float32)
        for position, choice in enumerate(self.prefix):
            observation[position * (CHOICES + 1) + choice] = 1.0
        return observation

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.prefix = []
        return self._observation(), {}

    def action_masks(self) -> np.ndarray:
        return np.array([a not in self.masked for a in range(self.action_space.n)])

    def step(self, action):
        action = int(action)
        if action == CHOICES:  # the terminal action
            self.episodes.append(tuple(self.prefix))
            return self._observation(), 0.0, True, False, {"network": str(self.prefix)}
        self.prefix.append(action)
        done = len(self.prefix) == DECISIONS
        reward = self.table[tuple(self.prefix)] if done else 0.0
        if done:
            self.episodes.append(tuple(self.prefix))
        return self._observation(), float(reward), done, False, {"network": str(self.prefix)}


def random_table(seed: int = 0) -> dict:
    values = np.random.default_rng(seed).permutation(len(ARCHITECTURES)) / len(ARCHITECTURES)
    return dict(zip(ARCHITECTURES, values.tolist(), strict=True))


def one_basin(optimum: tuple[int, ...]) -> dict:
    """Every architecture is worse the further it lies from ``optimum`` (L1): one basin."""
    return {a: 1.0 - sum(abs(x - y) for x, y in zip(a, optimum, strict=True)) / 10 for a in ARCHITECTURES}


def hamming(a, b) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


# -- regularized evolution -------------------------------------------------------------------------------


def test_rea_children_mutate_one_decision_of_the_tournament_winner_and_the_oldest_dies():
    table = random_table()
    env = TableEnv(table)
    population, episodes = 5, 40
    rea = RegularizedEvolution(env, seed=0, population_size=population, sample_size=population)
    rea.learn(episodes * DECISIONS)
    seen = env.episodes
    assert len(seen) == episodes
    assert len(set(seen[:population])) > 1  # the initial population is drawn at random
    for j in range(population, episodes):  # S = P: the tournament's winner is the population's best
        parent = max(seen[j - population : j], key=table.get)
        assert hamming(seen[j], parent) == 1, (j, seen[j], parent)
    # ageing: the population is the last P evaluated, whatever their value
    assert [tuple(m["actions"]) for m in rea.population] == seen[-population:]
    assert [m["value"] for m in rea.population] == [table[a] for a in seen[-population:]]


def test_rea_tournament_picks_the_best_of_its_sample():
    rea = RegularizedEvolution(TableEnv(random_table()), seed=1, population_size=4, sample_size=2)
    rea.sizes = (4, 2)
    rea.population.extend(
        {"actions": [i], "allowed": [[0, 1, 2, 3]], "value": v} for i, v in enumerate([3, 1, 4, 2])
    )
    winners = [rea.tournament()["value"] for _ in range(400)]
    assert 1 not in winners  # the worst member wins no tournament of two
    assert set(winners) == {2, 3, 4}
    assert 0.4 < winners.count(4) / len(winners) < 0.6  # the best is drawn in half of the pairs


def test_rea_finds_the_optimum_of_a_tiny_table_and_scales_its_population_to_the_budget():
    table = random_table(3)
    optimum = max(table, key=table.get)
    rea = RegularizedEvolution(TableEnv(table), seed=0)
    rea.learn(150 * DECISIONS)
    assert rea.sizes == scaled_sizes(150 * DECISIONS, DECISIONS) == (15, 4)
    assert rea.record.best_reward == table[optimum] and tuple(rea.record.best_actions) == optimum
    assert scaled_sizes(10**6, 4) == (100, 25)  # Real et al.'s P and S once the budget allows them


def test_rea_and_local_search_never_take_a_masked_action():
    for strategy in (RegularizedEvolution, LocalSearch, TPESearch):
        env = TableEnv(random_table(), masked=(2,))
        strategy(env, seed=0).learn(60 * DECISIONS)
        assert all(2 not in episode for episode in env.episodes), strategy.__name__


def test_rea_refuses_a_tournament_larger_than_its_population():
    with pytest.raises(ValueError, match="exceeds population_size"):
        RegularizedEvolution(None, population_size=3, sample_size=5)


# -- local search ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimum", [(3, 0, 2), (1, 1, 1)])
def test_local_search_climbs_to_the_optimum_of_a_table_with_one_basin(optimum):
    env = TableEnv(one_basin(optimum))
    search = LocalSearch(env, seed=0)
    # from any start: at most 3 moves toward the optimum, each found among at most 9 neighbours
    search.learn((1 + DECISIONS * DECISIONS * (CHOICES - 1)) * DECISIONS)
    assert tuple(search.record.best_actions) == optimum and search.record.best_reward == 1.0
    found = env.episodes.index(optimum)
    assert found < len(ARCHITECTURES) / 2  # a climb, not an enumeration
    seen = env.episodes
    for j in range(1, found + 1):  # after the random start, each is one decision away from an earlier one
        assert min(hamming(seen[j], earlier) for earlier in seen[:j]) == 1
    # then the optimum's neighbours not seen yet, none better, and only then a restart
    neighbours = {a for a in ARCHITECTURES if hamming(a, optimum) == 1}
    assert len(seen) > found + len(neighbours)
    assert neighbours <= set(seen[: found + 1 + len(neighbours)])
    assert len(set(seen)) == len(seen)  # no architecture evaluated twice


def test_local_search_restarts_at_random_from_a_local_optimum():
    table = one_basin((0, 0, 0))
    table[(3, 3, 3)] = 2.0  # a second basin holding the global optimum, unreachable by single moves
    for neighbour in ARCHITECTURES:
        if hamming(neighbour, (3, 3, 3)) == 1:
            table[neighbour] = -1.0
    env = TableEnv(table)
    search = LocalSearch(env, seed=0)
    search.learn(400 * DECISIONS)
    assert search.n_restarts > 1
    assert search.centre is not None and search.record.best_reward >= 1.0


# -- TPE --------------------------------------------------------------------------------------------------


def test_tpe_trials_are_the_episodes_one_to_one_with_conditional_decisions():
    env = TableEnv(random_table(), terminal=True)
    search = TPESearch(env, seed=0, n_startup_trials=5)
    search.learn(60 * DECISIONS)
    trials = search.study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == len(env.episodes) == len(search.trials)
    for trial, architecture, record in zip(finished, env.episodes, search.trials, strict=True):
        steps = [trial.params[parameter_name(step, list(range(CHOICES + 1)), CHOICES + 1)]
                 for step in range(len(trial.params))]  # fmt: skip
        assert steps[: len(architecture)] == list(architecture)  # then the terminal action, if it ended early
        assert (
            trial.value == (table_value := env.table.get(tuple(steps), 0.0))
            and record["value"] == table_value
        )
    assert len({len(t.params) for t in finished}) > 1  # episodes that ended early have fewer decisions
    assert max(t.value for t in finished) == search.record.best_reward


def test_tpe_beats_random_search_on_a_smooth_table():
    table, budget = one_basin((2, 1, 3)), 40 * DECISIONS
    tpe = TPESearch(TableEnv(table), seed=0).learn(budget)
    random = RandomSearch(TableEnv(table), seed=0).learn(budget)
    assert np.mean(tpe.record.episode_best[-20:]) > np.mean(random.record.episode_best[-20:])


def test_masked_decisions_are_parameters_of_their_own_choices():
    assert parameter_name(2, [0, 1, 2, 3], 4) == "step 2"
    assert parameter_name(2, [0, 1, 3], 4) == "step 2 of {0,1,3}"


# -- SB3's interface: save, load, predict ------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [RegularizedEvolution, LocalSearch, TPESearch, RandomSearch])
def test_a_saved_strategy_loads_with_its_state_and_replays_its_best_architecture(strategy, tmp_path):
    table = random_table(5)
    search = strategy(TableEnv(table), seed=0)
    search.learn(30 * DECISIONS)
    search.save(tmp_path / "search")
    loaded = strategy.load(tmp_path / "search.zip")
    assert loaded.record.best_reward == search.record.best_reward
    assert len(loaded.record.best_actions) == DECISIONS  # the whole episode that met the best network
    assert loaded.state_dict()["rng"] == search.state_dict()["rng"]
    if strategy is RandomSearch:
        return
    env = TableEnv(table)
    observation, _ = env.reset()
    state, rewards = None, []
    for step in range(DECISIONS):
        action, state = loaded.predict(observation, state=state, episode_start=np.array([step == 0]))
        observation, reward, *_ = env.step(int(action))
        rewards.append(reward)
    assert max(rewards) == search.record.best_reward
    assert search.predict(np.stack([observation] * 2))[0].shape == (2,)  # a batch, as SB3's


def test_the_best_actions_are_the_whole_episode_that_met_the_best_network():
    from sb3_nas.algos.search import Episode

    search = RandomSearch(TableEnv(random_table()), seed=0)  # the base class's record, no search rule
    search._episodes = [Episode()]
    for action, reward, done in (
        (2, 0.9, False),
        (1, 0.1, False),
        (3, 0.2, True),
    ):  # the best at the first step
        search._observe(0, action, reward, done, {})
    assert search.record.best_reward == 0.9 and search.record.best_actions == [2, 1, 3]
    for action, reward, done in ((0, 0.5, False), (0, 0.1, True)):  # a worse episode changes nothing
        search._observe(0, action, reward, done, {})
    assert search.record.best_actions == [2, 1, 3]


def test_loading_refuses_another_strategy_and_a_foreign_file(tmp_path):
    RegularizedEvolution(TableEnv(random_table()), seed=0).save(tmp_path / "rea.zip")
    with pytest.raises(ModelError, match="holds a RegularizedEvolution, not a TPESearch"):
        TPESearch.load(tmp_path / "rea.zip")
    with zipfile.ZipFile(tmp_path / "pickle.zip", "w") as archive:
        archive.writestr("data.pkl", b"\x80\x04c__builtin__\neval\n.")
    with pytest.raises(ModelError, match="is not a saved search strategy"):
        LocalSearch.load(tmp_path / "pickle.zip")
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ModelError, match="is not a saved search strategy"):
        LocalSearch.load(tmp_path / "text.zip")


# -- the run commands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["rea", "local_search", "tpe"])
def test_each_strategy_trains_saves_and_loads_through_the_run_commands(algo, tmp_path, capsys):
    out = tmp_path / algo
    envs = "nbgraph:cora,nbgraph:citeseer"
    argv = ["--algo", algo, "--envs", envs, "--timesteps", "200", "--out", str(out), "--no-progress"]
    assert train.main(argv) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    steps = pd.read_csv(out / "steps.csv")
    assert len(steps) == 400
    for dataset in ("nbgraph:cora", "nbgraph:citeseer"):
        search = ALGOS[algo].load(out / model_file(dataset), env=TabularNasEnv(dataset))
        assert search.record.best_reward == pytest.approx(steps[steps["env"] == dataset]["reward"].max())
        loaded = load_run_model(out, dataset)  # as the class config.yml names
        assert type(loaded) is ALGOS[algo] and loaded.record.best_reward == search.record.best_reward
    progress = pd.read_csv(out / "progress.csv")
    assert "rollout/episode_best_reward" in progress  # a row of SB3's log per episode
    assert set(SEARCH_ALGOS) >= {"random", algo}


def test_tpe_keeps_its_study_on_a_storage_with_the_password_kept_out_of_files(tmp_path, capsys):
    database = tmp_path / "studies.sqlite"
    out = tmp_path / "tpe"
    argv = ["--algo", "tpe", "--envs", "nbgraph:cora", "--timesteps", "120", "--out", str(out),
            "--no-progress", "--storage", f"sqlite:///{database}"]  # fmt: skip
    assert train.main(argv) == 0
    import optuna

    study = optuna.load_study(study_name=study_name(out, "nbgraph:cora"), storage=f"sqlite:///{database}")
    episodes = pd.read_csv(out / "episodes.csv")
    trials = study.get_trials(deepcopy=False)
    search = TPESearch.load(out / model_file("nbgraph:cora"))
    assert len(trials) == len(search.trials) >= len(episodes) - 1  # the last episode, cut by the budget, ran
    assert [t.value for t in trials] == pytest.approx(episodes["best_reward"][: len(trials)].tolist())
    assert [t.user_attrs["actions"] for t in trials] == [t["actions"] for t in search.trials]
    assert yaml.safe_load((out / "config.yml").read_text())["storage"] == f"sqlite:///{database}"
    capsys.readouterr()
    assert train.main(argv) == 2  # the run folder, and its study, are kept unless --overwrite
    assert train.main([*argv, "--overwrite"]) == 0
    assert len(optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{database}").trials) == len(
        trials
    )
    saved = json.loads(zipfile.ZipFile(out / model_file("nbgraph:cora")).read("search.json"))
    assert "storage" not in saved["hyperparameters"]


def test_storage_and_bad_settings_are_refused_in_one_line(tmp_path, capsys):
    base = ["--envs", "nbgraph:cora", "--timesteps", "20", "--out", str(tmp_path / "x"), "--no-progress"]
    cases = [
        (
            ["--algo", "rea", "--storage", f"sqlite:///{tmp_path / 's.db'}"],
            "--storage holds the study of a tpe",
        ),
        (
            ["--algo", "tpe", "-params", f"storage:'sqlite:///{tmp_path / 's.db'}'"],
            "unknown key(s) for tpe: storage",
        ),
        (["--algo", "rea", "-params", "population_size:five"], "population_size: 'five' is not"),
        (["--algo", "rea", "-params", "population_size:3", "sample_size:4"], "exceeds population_size"),
    ]
    for extra, message in cases:
        assert train.main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
