"""Performance estimation: the early-stop trainer, fidelities, and the memo in front of it (§4.1.2, §5)."""

import dataclasses

import numpy as np
import pytest
import torch

from sb3_nas.data import ImageDataset
from sb3_nas.errors import InputError
from sb3_nas.estimation import (
    FIDELITIES,
    Evaluation,
    PerformanceEstimator,
    RewardMemo,
    UnknownFidelityError,
    evaluate_network,
    evaluate_nsc,
    evaluate_plan,
    get_fidelity,
    prepare_data,
)
from sb3_nas.estimation import trainer as trainer_module
from sb3_nas.estimation.fidelity import FidelityError
from sb3_nas.space import InvalidArchitecture, NSCNetwork, plan_network

CHAIN3 = [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)]


def test_paper_fidelity_is_section_4_1_2():
    paper = get_fidelity("paper")
    assert (paper.image_size, paper.channels, paper.epochs, paper.batch_size) == (84, 3, 12, 128)
    assert (paper.learning_rate, paper.beta1, paper.beta2, paper.adam_eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert (paper.lr_decay_factor, paper.lr_decay_every, paper.lr_schedule) == (0.2, 5, True)
    assert paper.max_train_images is None and paper.test_fraction == pytest.approx(1 / 3)
    assert get_fidelity(None) is FIDELITIES["cpu"]


def test_paper64_is_the_paper_fidelity_at_64_pixels():
    paper, mid = FIDELITIES["paper"], FIDELITIES["paper64"]
    assert mid.image_size == 64
    assert paper.replace(name="paper64", image_size=64, description=mid.description) == mid


def test_new_settings_at_their_default_keep_every_registered_digest_and_memo_key():
    # digests of the registered fidelities before max_params existed: memo entries stored under them still
    # answer; a new setting enters the digest only once it is set
    assert {name: f.digest for name, f in FIDELITIES.items()} == {
        "paper": "49caf78e6cb385f8",
        "paper64": "255dd047bcc20dcc",  # the fidelity study's: the paper's at 64×64
        "cpu": "fd76358b41821e95",
        "tiny": "a7f4e199a3689701",
    }
    assert get_fidelity("cpu,batch_size=64").digest == "03f9cbfc32235013"
    assert FIDELITIES["tiny"].max_params is None
    limited = get_fidelity("tiny,max_params=1000000")
    assert limited.max_params == 1_000_000 and limited.digest not in {f.digest for f in FIDELITIES.values()}
    assert limited.digest != FIDELITIES["tiny"].replace(max_params=999_999).digest


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tiny,batch_size=0", "batch_size must be at least 1, got 0"),
        ("tiny,image_size=0", "image_size must be at least 1, got 0"),
        ("tiny,epochs=0", "epochs must be at least 1, got 0"),
        ("tiny,learning_rate=nan", "learning_rate must be a finite number, got nan"),
        ("tiny,learning_rate=-1e-3", "learning_rate must be positive"),
        ("tiny,adam_eps=inf", "adam_eps must be a finite number, got inf"),
        ("tiny,beta2=1", r"beta2 must lie in \[0, 1\)"),
        ("tiny,test_fraction=0", r"test_fraction must lie in \(0, 1\)"),
        ("tiny,max_train_images=0", "max_train_images must be at least 1"),
        ("tiny,max_params=-5", "max_params must be at least 1"),
        ("tiny,channels=2", "channels must be 1, 3 or None"),
        ("tiny,seed=-1", r"seed must lie in 0..2\*\*32-1"),
    ],
)
def test_fidelity_settings_out_of_range_are_one_line_input_errors(text, problem):
    with pytest.raises(FidelityError, match=problem) as error:
        get_fidelity(text)
    assert isinstance(error.value, InputError) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"fidelity {text!r}: ")
    with pytest.raises(FidelityError, match="epochs must be an integer"):
        FIDELITIES["tiny"].replace(epochs=2.5)


def test_unknown_fidelity_names_the_problem():
    known = "known: cpu, paper, paper64, tiny"
    with pytest.raises(UnknownFidelityError, match=f"unknown fidelity 'huge'; {known}"):
        get_fidelity("huge")
    with pytest.raises(TypeError, match="unknown fidelity setting"):
        get_fidelity("tiny").replace(epoch=3)


def test_prepared_data_is_split_resized_and_uint8(small_digits, tiny_fidelity):
    data = prepare_data(small_digits, tiny_fidelity)
    assert data.train_x.dtype.is_floating_point is False and data.train_x.shape[1:] == (1, 12, 12)
    assert data.train_x.shape[0] == 200 and data.test_x.shape[0] == 100
    paper = prepare_data(small_digits, get_fidelity("paper"))
    assert paper.train_x.shape[1:] == (3, 84, 84)
    assert (paper.train_x[:, 0] == paper.train_x[:, 2]).all()  # grey repeated into RGB
    assert prepare_data(small_digits, tiny_fidelity) is data  # computed once


def test_training_learns_and_is_deterministic(small_digits, tiny_fidelity):
    fidelity = tiny_fidelity.replace(epochs=3)
    first = evaluate_nsc(CHAIN3, small_digits, fidelity)
    assert first.valid and first.reason == ""
    assert first.accuracy > 0.3  # chance is 0.1
    assert first.n_params > 0 and first.flops > 0 and first.train_seconds > 0
    again = evaluate_nsc(CHAIN3, small_digits, fidelity)
    assert again == dataclasses.replace(first, train_seconds=again.train_seconds)


def _weights(network):
    return [p.detach().clone() for p in network.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_fidelity_seed_seeds_the_weights_and_the_batch_order(small_digits, tiny_fidelity, monkeypatch):
    data = prepare_data(small_digits, tiny_fidelity)
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    drawn = {}
    for seed in (0, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            drawn[seed] = _weights(NSCNetwork(plan))
    assert not _same(drawn[0], drawn[1])
    built = []

    def spy(plan):
        network = NSCNetwork(plan)
        built.append(_weights(network))  # as built, before the training changes them
        return network

    monkeypatch.setattr(trainer_module, "NSCNetwork", spy)
    for seed in (0, 0, 1):
        evaluate_plan(plan, data, tiny_fidelity.replace(seed=seed))
    # the weights are drawn from the torch RNG seeded by the fidelity's seed
    assert _same(built[0], drawn[0]) and _same(built[1], drawn[0]) and _same(built[2], drawn[1])
    # from the same weights and the same dropout masks, the fidelity's seed alone orders the batches
    trained = []
    for seed in (0, 0, 1):
        network = NSCNetwork(plan)
        for param, value in zip(network.parameters(), drawn[0], strict=True):
            param.data.copy_(value)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            trainer_module.train_and_test(network, data, tiny_fidelity.replace(seed=seed))
        trained.append(_weights(network))
    assert _same(trained[0], trained[1]) and not _same(trained[0], trained[2])


def test_lr_schedule_switch(small_digits, tiny_fidelity, monkeypatch):
    seen = []
    real = trainer_module.torch.optim.lr_scheduler.StepLR

    def spy(optimizer, step_size, gamma):
        seen.append((step_size, gamma))
        return real(optimizer, step_size, gamma)

    monkeypatch.setattr(trainer_module.torch.optim.lr_scheduler, "StepLR", spy)
    evaluate_nsc(CHAIN3, small_digits, tiny_fidelity)
    evaluate_nsc(CHAIN3, small_digits, tiny_fidelity.replace(lr_schedule=False))
    assert seen == [(5, 0.2)]


def test_invalid_and_failing_networks_score_zero_with_a_reason(small_digits, tiny_fidelity, monkeypatch):
    invalid = evaluate_nsc([(1, 2, 3, 0, 0), (2, 2, 3, 1, 0), (3, 2, 3, 2, 0)], small_digits, tiny_fidelity)
    assert (invalid.accuracy, invalid.valid) == (0.0, False) and "below 1" in invalid.reason

    def diverge(*args, **kwargs):
        raise FloatingPointError("the training loss diverged (non-finite)")

    monkeypatch.setattr(trainer_module, "train_and_test", diverge)
    failed = evaluate_nsc(CHAIN3, small_digits, tiny_fidelity)
    assert not failed.valid and failed.accuracy == 0.0 and "diverged" in failed.reason


def test_memo_hit_on_repeated_and_equivalent_networks_without_training(
    small_digits, tiny_fidelity, memo, monkeypatch
):
    estimator = PerformanceEstimator(small_digits, tiny_fidelity, memo)
    first = estimator.estimate(CHAIN3)
    assert not first.memo_hit and estimator.n_trained == 1
    calls = []
    monkeypatch.setattr(trainer_module, "train_and_test", lambda *a: calls.append(a) or 0.5)
    repeated = estimator.estimate(CHAIN3)
    with_terminal = estimator.estimate([*CHAIN3, (4, 7, 0, 0, 0)])
    stale_pointer = estimator.estimate([(1, 1, 3, 0, 5), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)])
    assert all(e.memo_hit for e in (repeated, with_terminal, stale_pointer))
    assert {e.entry.accuracy for e in (repeated, with_terminal, stale_pointer)} == {first.entry.accuracy}
    assert calls == [] and estimator.n_trained == 1
    # a new process (a new memo object on the same file) reuses the stored reward too
    reopened = PerformanceEstimator(small_digits, tiny_fidelity, RewardMemo(memo.url))
    assert reopened.estimate(CHAIN3).memo_hit and calls == []


def test_memo_key_separates_datasets_and_fidelities(small_digits, tiny_fidelity, memo):
    a = PerformanceEstimator(small_digits, tiny_fidelity, memo).estimate(CHAIN3)
    b = PerformanceEstimator(small_digits, tiny_fidelity.replace(seed=7), memo).estimate(CHAIN3)
    assert not b.memo_hit and a.entry.key != b.entry.key
    entry = a.entry
    assert entry.dataset == "digits300" and entry.fidelity == "tiny@1"
    assert entry.dataset_fingerprint == small_digits.fingerprint
    assert entry.network == "1k3<0|2k2<1|1k1<2"


def test_train_network_is_the_seeded_training_of_evaluate_plan(small_digits, tiny_fidelity):
    data = prepare_data(small_digits, tiny_fidelity)
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    fidelity = tiny_fidelity.replace(seed=3)
    with torch.random.fork_rng(devices=[]):  # what both must be: weights seeded by the fidelity, then trained
        torch.manual_seed(fidelity.seed)
        network = NSCNetwork(plan)
        expected = trainer_module.train_and_test(network, data, fidelity)
    n_params = sum(p.numel() for p in network.parameters())
    rng = torch.get_rng_state()
    trained = evaluate_network(lambda: NSCNetwork(plan), data, fidelity)
    evaluated = evaluate_plan(plan, data, fidelity)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert trained.train_seconds > 0 and evaluated.train_seconds > 0
    assert dataclasses.replace(trained, train_seconds=0.0) == Evaluation(expected, True, "", n_params, 0, 0.0)
    assert dataclasses.replace(evaluated, train_seconds=0.0) == Evaluation(
        expected, True, "", n_params, plan.flops, 0.0
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB"),
            "training failed: CUDA out of memory.",
        ),
        (MemoryError(), "training failed: MemoryError"),
        (FloatingPointError("the training loss diverged (non-finite)"), "training failed: the training loss"),
    ],
)
def test_a_failed_training_is_an_invalid_evaluation(small_digits, tiny_fidelity, monkeypatch, error, reason):
    data = prepare_data(small_digits, tiny_fidelity)
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    n_params = sum(p.numel() for p in NSCNetwork(plan).parameters())

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(trainer_module, "train_and_test", fail)
    trained = evaluate_network(lambda: NSCNetwork(plan), data, tiny_fidelity)
    assert trained.reason.startswith(reason) and "\n" not in trained.reason
    assert (trained.accuracy, trained.valid, trained.n_params, trained.flops) == (0.0, False, n_params, 0)
    assert trained.train_seconds > 0  # the time spent, for retraining's table
    # evaluate_plan, as before: the plan's flops, and no training time for the memo
    assert evaluate_plan(plan, data, tiny_fidelity) == Evaluation(
        0.0, False, trained.reason, n_params, plan.flops
    )


def test_train_network_lets_an_unbuildable_network_raise(small_digits, tiny_fidelity):
    def build():
        raise InvalidArchitecture("too small")

    rng = torch.get_rng_state()
    with pytest.raises(InvalidArchitecture, match="too small"):
        evaluate_network(build, prepare_data(small_digits, tiny_fidelity), tiny_fidelity)
    assert torch.equal(torch.get_rng_state(), rng)


def test_any_exception_of_the_training_is_an_invalid_evaluation_named_by_its_type(
    small_digits, tiny_fidelity, monkeypatch
):
    data = prepare_data(small_digits, tiny_fidelity)

    def fail(*args, **kwargs):
        raise KeyError("no such layer")

    monkeypatch.setattr(trainer_module, "train_and_test", fail)
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    failed = evaluate_network(lambda: NSCNetwork(plan), data, tiny_fidelity)
    assert (failed.accuracy, failed.valid) == (0.0, False)
    assert failed.reason == "training failed: KeyError: 'no such layer'"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "train_and_test", interrupt)
    with pytest.raises(KeyboardInterrupt):  # not a failure of the network: the run stops
        evaluate_network(lambda: NSCNetwork(plan), data, tiny_fidelity)


def test_the_parameter_limit_refuses_a_network_from_its_plan_before_building_it(
    small_digits, tiny_fidelity, monkeypatch
):
    data = prepare_data(small_digits, tiny_fidelity)
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    n_params = sum(p.numel() for p in NSCNetwork(plan).parameters())
    at_limit = tiny_fidelity.replace(max_params=n_params)
    below = tiny_fidelity.replace(max_params=n_params - 1)
    assert evaluate_plan(plan, data, at_limit).valid  # the limit itself is allowed

    def never(*args):
        raise AssertionError("a network above the limit was built")

    monkeypatch.setattr(trainer_module, "NSCNetwork", never)
    refused = evaluate_plan(plan, data, below)
    reason = f"too many parameters: {n_params} > {n_params - 1}"
    assert refused == Evaluation(0.0, False, reason, 0, plan.flops, 0.0)
    assert evaluate_nsc(CHAIN3, small_digits, below) == refused
    # a network given as a builder is counted once built, and refused before any training
    monkeypatch.setattr(trainer_module, "train_and_test", never)
    built = evaluate_network(lambda: NSCNetwork(plan), data, below)
    assert (built.accuracy, built.valid, built.reason, built.n_params) == (0.0, False, reason, n_params)


def test_data_that_does_not_fit_the_fidelity_is_an_input_error(small_digits, tiny_fidelity, monkeypatch):
    with pytest.raises(FidelityError, match="'tiny,channels=1' makes 1-channel images, but dataset 'rgb'"):
        photos = ImageDataset("rgb", np.zeros((30, 8, 8, 3), np.uint8), np.arange(30) % 3)
        prepare_data(photos, get_fidelity("tiny,channels=1"))
    with pytest.raises(FidelityError, match="max_train_images=5 cannot keep an image of each of the 10"):
        prepare_data(small_digits, tiny_fidelity.replace(max_train_images=5))

    def out_of_memory(*args):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 10**12 bytes.")

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "_resize", out_of_memory)
        with pytest.raises(FidelityError, match="'digits300' at 99999x99999 does not fit in memory"):
            prepare_data(small_digits, tiny_fidelity.replace(image_size=99999))
    # a cap that leaves out fewer images than there are classes still keeps the share of every class
    full = torch.bincount(prepare_data(small_digits, tiny_fidelity).train_y)  # tiny keeps all 200
    data = prepare_data(small_digits, tiny_fidelity.replace(max_train_images=195))
    assert data.train_x.shape[0] == 195 and set((full - torch.bincount(data.train_y)).tolist()) == {0, 1}


def test_a_network_trains_when_its_caller_holds_gradients_off(small_digits, tiny_fidelity):
    with torch.no_grad():  # as sb3-contrib's ARS evaluates its candidates, the environment stepping inside
        evaluation = evaluate_nsc(CHAIN3, small_digits, tiny_fidelity)
    assert evaluation.valid and evaluation.reason == "" and evaluation.accuracy > 0
