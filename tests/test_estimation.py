"""Performance estimation: the early-stop trainer, fidelities, and the memo in front of it (SPEC §4–§5)."""

import pytest

from sb3_nas.estimation import (
    FIDELITIES,
    PerformanceEstimator,
    RewardMemo,
    UnknownFidelityError,
    evaluate_nsc,
    get_fidelity,
    prepare_data,
)
from sb3_nas.estimation import trainer as trainer_module

CHAIN3 = [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)]


def test_paper_fidelity_is_section_4_1_2():
    paper = get_fidelity("paper")
    assert (paper.image_size, paper.channels, paper.epochs, paper.batch_size) == (84, 3, 12, 128)
    assert (paper.learning_rate, paper.beta1, paper.beta2, paper.adam_eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert (paper.lr_decay_factor, paper.lr_decay_every, paper.lr_schedule) == (0.2, 5, True)
    assert paper.max_train_images is None and paper.test_fraction == pytest.approx(1 / 3)
    assert get_fidelity(None) is FIDELITIES["cpu"]


def test_unknown_fidelity_names_the_problem():
    with pytest.raises(UnknownFidelityError, match="unknown fidelity 'huge'; known: cpu, paper, tiny"):
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
    assert again.accuracy == first.accuracy
    other_seed = evaluate_nsc(CHAIN3, small_digits, fidelity.replace(seed=1))
    assert other_seed.n_params == first.n_params


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

    monkeypatch.setattr(trainer_module, "train_and_score", diverge)
    failed = evaluate_nsc(CHAIN3, small_digits, tiny_fidelity)
    assert not failed.valid and failed.accuracy == 0.0 and "diverged" in failed.reason


def test_memo_hit_on_repeated_and_equivalent_networks_without_training(
    small_digits, tiny_fidelity, memo, monkeypatch
):
    estimator = PerformanceEstimator(small_digits, tiny_fidelity, memo)
    first = estimator.estimate(CHAIN3)
    assert not first.memo_hit and estimator.n_trained == 1
    calls = []
    monkeypatch.setattr(trainer_module, "train_and_score", lambda *a: calls.append(a) or 0.5)
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
