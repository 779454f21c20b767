"""The fast trainer: device choice, fidelity overrides, speed settings that keep the reward, and the
benchmark command's contract."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sb3_nas.estimation import (
    DeviceError,
    SpeedSettings,
    UnknownFidelityError,
    configure_threads,
    evaluate_nsc,
    get_fidelity,
    prepare_data,
    resolve_device,
)
from sb3_nas.estimation import trainer as trainer_module
from sb3_nas.estimation.device import LayoutKeepingFlatten
from sb3_nas.space import NSCNetwork, plan_network

CHAIN3 = [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)]
ROOT = Path(__file__).resolve().parent.parent


def test_devices_resolve_or_fail_in_one_line():
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_threads_are_shared_between_workers():
    from sb3_nas.estimation.device import _count_cpu_list

    assert [_count_cpu_list(text) for text in ("0", "0,4", "0-3\n", "0-1,8-9")] == [1, 2, 4, 4]
    before = torch.get_num_threads()
    try:
        alone = configure_threads(1)
        assert alone >= 1 and torch.get_num_threads() == alone
        assert configure_threads(alone * 4) == 1  # never below one thread
    finally:
        torch.set_num_threads(before)


def test_fidelity_overrides_change_the_settings_and_the_memo_digest():
    cpu = get_fidelity("cpu")
    batch64 = get_fidelity("cpu,batch_size=64")
    assert batch64.batch_size == 64 and batch64.epochs == cpu.epochs
    assert batch64.id == "cpu,batch_size=64@1" and batch64.digest != cpu.digest
    both = get_fidelity("paper, max_train_images=None, lr_schedule=false, learning_rate=3e-4")
    assert (both.max_train_images, both.lr_schedule, both.learning_rate) == (None, False, 3e-4)
    with pytest.raises(UnknownFidelityError, match="'batch=3'.*expected setting=value"):
        get_fidelity("cpu,batch=3")
    with pytest.raises(UnknownFidelityError, match="'x' is not a int"):
        get_fidelity("cpu,batch_size=x")


def test_data_stays_uint8_and_is_prepared_once_per_device(small_digits, tiny_fidelity):
    data = prepare_data(small_digits, tiny_fidelity, "cpu")
    assert data.train_x.dtype == torch.uint8 and data.train_x.device.type == "cpu"
    assert prepare_data(small_digits, tiny_fidelity, "cpu") is data


def test_channels_last_batches_give_the_same_network_output(small_digits, tiny_fidelity):
    data = prepare_data(small_digits, tiny_fidelity, "cpu")
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    torch.manual_seed(0)
    network = NSCNetwork(plan).eval()
    index = torch.arange(16)
    plain = trainer_module._batch(data.train_x, index, SpeedSettings())
    fast = trainer_module._batch(data.train_x, index, SpeedSettings(channels_last=True))
    assert fast.is_contiguous(memory_format=torch.channels_last) and torch.equal(plain, fast)
    assert plain.min() >= 0 and plain.max() <= 1 and plain.dtype == torch.float32
    with torch.no_grad():
        expected = network(plain)
        network.to(memory_format=torch.channels_last)
        torch.testing.assert_close(network(fast), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [SpeedSettings(fused_adam=False), SpeedSettings(channels_last=True, fused_adam=True)],
    ids=["foreach-adam", "channels-last-fused-adam"],
)
def test_speed_settings_keep_the_reward(small_digits, tiny_fidelity, settings):
    fidelity = tiny_fidelity.replace(epochs=2)
    data = prepare_data(small_digits, fidelity, "cpu")
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)

    def accuracy(chosen):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return trainer_module.train_and_test(NSCNetwork(plan), data, fidelity, chosen)

    reference = accuracy(SpeedSettings.for_device(torch.device("cpu")))
    assert reference > 0.3
    assert accuracy(settings) == pytest.approx(reference, abs=0.02)


def test_bf16_autocast_trains_to_a_similar_accuracy(small_digits, tiny_fidelity):
    fidelity = tiny_fidelity.replace(epochs=2)
    data = prepare_data(small_digits, fidelity, "cpu")
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    results = []
    for dtype in (None, torch.bfloat16):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            settings = SpeedSettings(autocast_dtype=dtype)
            results.append(trainer_module.train_and_test(NSCNetwork(plan), data, fidelity, settings))
    assert results[1] == pytest.approx(results[0], abs=0.1)


def test_bf16_dense_needs_bf16_autocast():
    for dtype in (None, torch.float16):
        with pytest.raises(ValueError, match="bf16_dense needs bf16 autocast"):
            SpeedSettings(autocast_dtype=dtype, bf16_dense=True)


def test_bf16_dense_trains_the_dense_layers_in_bf16_to_a_similar_accuracy(small_digits, tiny_fidelity):
    fidelity = tiny_fidelity.replace(epochs=2)
    data = prepare_data(small_digits, fidelity, "cpu")
    plan = plan_network(CHAIN3, data.input_shape, data.n_classes)
    results, networks = [], []
    for dense in (False, True):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            networks.append(NSCNetwork(plan))
            settings = SpeedSettings(True, torch.bfloat16, True, bf16_dense=dense)
            results.append(trainer_module.train_and_test(networks[-1], data, fidelity, settings))
    linear = [m for m in networks[1].modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 2 and all(p.dtype == torch.bfloat16 for m in linear for p in m.parameters())
    others = [p for m in networks[1].layers for p in m.parameters()]
    assert others and all(p.dtype == torch.float32 for p in others)  # convolutions and BatchNorm stay fp32
    assert all(p.dtype == torch.float32 for p in networks[0].parameters())
    assert results[0] > 0.3 and results[1] == pytest.approx(results[0], abs=0.1)


def test_cpus_with_native_bf16_train_the_dense_layers_in_bf16(monkeypatch):
    from sb3_nas.estimation import device as device_module

    for native in (True, False):
        monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda native=native: native)
        SpeedSettings.for_device.cache_clear()
        chosen = SpeedSettings.for_device(torch.device("cpu"))
        assert chosen.bf16_dense is native and (chosen.autocast_dtype == torch.bfloat16) is native
    SpeedSettings.for_device.cache_clear()  # forget the faked answers


def test_real_divergence_is_detected_after_training(small_digits, tiny_fidelity):
    diverging = tiny_fidelity.replace(learning_rate=1e30, lr_schedule=False, epochs=2)
    result = evaluate_nsc(CHAIN3, small_digits, diverging, "cpu")
    assert not result.valid and result.accuracy == 0.0 and "diverged" in result.reason


def test_quick_benchmark_ends_with_the_summary_line(tmp_path):
    command = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--fidelity", "tiny",
        "--repeats", "1", "--memo-steps", "100", "--run", str(tmp_path / "none"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    pairs = dict(pair.split("=") for pair in lines[-1].split())
    assert list(pairs)[:2] == ["cpu_speedup", "memo_steps_per_s"]
    assert float(pairs["cpu_speedup"]) > 0 and float(pairs["memo_steps_per_s"]) > 100
    assert any(line.startswith("(a)") for line in lines) and any("GFLOP/s" in line for line in lines)


def test_the_cpu_history_section_times_every_cpu_speedup_in_turn(tmp_path):
    command = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--fidelity", "tiny", "--cpu-history",
        "--only", "g", "--repeats", "1",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("(g)"))
    columns = lines[header + 1].split()
    assert columns[:6] == ["layers", "before_s", "huge_pages_s", "flatten_s", "now_s", "speedup"]
    rows = [dict(zip(columns, line.split(), strict=True)) for line in lines[header + 2 : header + 4]]
    assert [row["layers"] for row in rows] == ["1", "4"]
    assert all(0 < float(row["before_acc"]) <= 1 and float(row["now_s"]) > 0 for row in rows)
    pairs = dict(pair.split("=") for pair in lines[-1].split())
    assert set(pairs) == {"cpu_speedup_1", "cpu_speedup_4"} and float(pairs["cpu_speedup_1"]) > 0


def _benchmark_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run as benchmark_run  # benchmarks/run.py
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return benchmark_run


def test_experiment_1_projection_scales_by_training_cost():
    bench = _benchmark_module()

    class Data:  # 300 training and 150 test images: a training cost of 3 × 300 + 150 = 1050
        train_x, test_x = torch.empty(300, 1), torch.empty(150, 1)

    hours, lines = bench.projection(10.0, Data, 0.5)
    expected = sum(
        steps * 0.5 * 10.0 * (3 * images * 2 / 3 + images / 3) / 1050
        for steps, images in bench.PAPER_EXP1.values()
    )
    assert hours == pytest.approx(expected / 3600) and len(lines) == 3


def test_memo_hit_rate_counts_networks_met_before_in_the_run(tmp_path):
    bench = _benchmark_module()
    rows = [
        ("digits", "[[1, 1, 3, 0, 0]]", False),
        ("digits", "[[1, 1, 3, 0, 0], [2, 7, 0, 0, 0]]", True),  # the same network with a terminal row
        ("digits", "[[1, 1, 1, 0, 0]]", True),  # a hit from an earlier run's memo
        ("photos", "[[1, 1, 3, 0, 0]]", False),  # another environment: a new network
    ]
    lines = ["env,nsc,memo_hit"] + [f'{env},"{nsc}",{hit}' for env, nsc, hit in rows]
    (tmp_path / "steps.csv").write_text("\n".join(lines) + "\n")
    recorded, from_empty, n = bench.hit_rate(tmp_path)
    assert (recorded, from_empty, n) == (0.5, 0.25, 4)
    assert bench.hit_rate(tmp_path / "absent") is None


def _huge_pages_after_import(environment: dict[str, str]) -> tuple[str, int]:
    """In a fresh interpreter: import sb3_nas, allocate and touch 64 MB through torch, and report the
    variable PyTorch read and the kB of anonymous huge pages the process holds."""
    code = (  # sb3_nas first, as in every command: the variable must be set before torch allocates anything
        "import os, re\n"
        "import sb3_nas\n"
        "import torch\n"
        "x = torch.ones(16 * 2**20)\n"
        "text = open('/proc/self/smaps_rollup').read()\n"
        "kb = int(re.search(r'AnonHugePages:\\s+(\\d+)', text).group(1))\n"
        "print(os.environ['THP_MEM_ALLOC_ENABLE'], kb)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | environment
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    value, kb = out.stdout.split()
    return value, int(kb)


def _transparent_huge_pages_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unavailable"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "unavailable"


def test_importing_sb3_nas_gives_torch_cpu_buffers_huge_pages_unless_turned_off():
    """The page faults of re-allocated multi-hundred-MB gradients halve paper-fidelity training on CPU without
    huge pages (benchmarks/run.py (g)); the package turns PyTorch's THP allocation on, a user's 0 wins."""
    mode = _transparent_huge_pages_mode()
    if mode not in ("madvise", "always"):
        pytest.skip(f"transparent huge pages are {mode} on this kernel")
    value, huge_kb = _huge_pages_after_import({})
    assert value == "1" and huge_kb >= 32 * 1024
    value, huge_kb = _huge_pages_after_import({"THP_MEM_ALLOC_ENABLE": "0"})
    assert value == "0"
    if mode == "madvise":  # without PyTorch's madvise, this kernel gives no huge pages
        assert huge_kb == 0


def test_every_public_name_of_the_package_is_importable():
    """What README and CI import from the top of the package (the huge-pages lines sit above the imports)."""
    import sb3_nas

    assert all(hasattr(sb3_nas, name) for name in sb3_nas.__all__)
    from sb3_nas import MULTI_BRANCH_ENV_ID, MetaA2C, MetaRLWrapper, NasEnv, RandomSearch  # noqa: F401


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_flatten_gives_the_same_values_and_a_channels_last_map_a_channels_last_gradient(layout):
    x = torch.randn(3, 4, 5, 6).contiguous(memory_format=layout)
    weights = torch.randn(4 * 5 * 6)
    outputs, grads = [], []
    for flatten in (LayoutKeepingFlatten(), torch.nn.Flatten()):
        leaf = x.clone().requires_grad_()  # clone keeps the layout
        inner = leaf * 2  # not a leaf: what a BatchNorm's backward would receive (a leaf's .grad is re-laid)
        seen = []
        inner.register_hook(seen.append)
        out = flatten(inner)
        (out * weights).sum().backward()
        outputs.append(out.detach())
        grads.append(seen[0])
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(grads[0], grads[1])
    channels_last = layout == torch.channels_last
    assert grads[0].is_contiguous(memory_format=torch.channels_last) == channels_last
    assert grads[1].is_contiguous()  # nn.Flatten's gradient is NCHW whatever the input's layout
    with torch.no_grad():
        assert torch.equal(LayoutKeepingFlatten()(x), x.flatten(1))


def test_channels_last_training_flattens_keeping_the_layout_and_the_state_dict():
    plan = plan_network(CHAIN3, (3, 16, 16), 4)
    plain, sped = NSCNetwork(plan), NSCNetwork(plan)
    sped.load_state_dict(plain.state_dict())
    assert type(plain.head[0]) is torch.nn.Flatten  # the builder makes a plain network
    SpeedSettings(channels_last=True).apply(sped, torch.device("cpu"))
    assert isinstance(sped.head[0], LayoutKeepingFlatten)
    assert sped.state_dict().keys() == plain.state_dict().keys()
    SpeedSettings(channels_last=True, flatten_keeps_layout=False).apply(plain, torch.device("cpu"))
    assert type(plain.head[0]) is torch.nn.Flatten
    x = torch.rand(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    plain.eval(), sped.eval()
    assert torch.equal(plain(x), sped(x))
