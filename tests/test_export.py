"""Exporting a run's networks: standalone network.py, nsc.json, safetensors weights, ONNX, the model card,
tabular architectures, and the loader that reads an export back without unpickling."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sb3_nas import export, train
from sb3_nas.analysis import export as export_module
from sb3_nas.estimation import PreparedData
from sb3_nas.space import (
    ExportError,
    NSCNetwork,
    build_network,
    load_exported,
    network_source,
    plan_network,
)
from sb3_nas.space.nasbench201 import choices_from_arch_string

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
RANDOM = FIXTURES / "random"  # train --algo random on digits,photos at the tiny fidelity: chains
MULTI_BRANCH = FIXTURES / "meta_a2c_multi_branch"  # meta_a2c on the multi-branch space: additions
# a chain, and multi-branch networks with an addition of padded inputs, a concatenation and several leaves
NETWORKS = {
    "chain": [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)],
    "merges": [(1, 1, 3, 0, 0), (2, 1, 5, 0, 0), (3, 5, 0, 1, 2), (4, 6, 0, 1, 3), (5, 3, 2, 4, 0)],
    "leaves": [(1, 1, 3, 0, 0), (2, 1, 5, 0, 0), (3, 2, 2, 0, 0)],
    "empty": [],
}

# run in a fresh interpreter where importing sb3_nas fails: import network.py, load the weights, run it
ISOLATED = """
import importlib.abc, importlib.util, sys
class NoSb3Nas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sb3_nas":
            raise ImportError("sb3_nas is not importable here")
sys.meta_path.insert(0, NoSb3Nas())
try:
    import sb3_nas
except ImportError:
    pass
else:
    raise SystemExit("sb3_nas was importable")
from safetensors.torch import load_file, save_file
folder, inputs, outputs = sys.argv[1:]
spec = importlib.util.spec_from_file_location("network", folder + "/network.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.Network().eval()
model.load_state_dict(load_file(folder + "/weights.safetensors"))
import torch
with torch.inference_mode():
    save_file({"logits": model(load_file(inputs)["x"])}, outputs)
assert "sb3_nas" not in sys.modules
"""


def _run_isolated(folder: Path, x: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    from safetensors.torch import load_file, save_file

    save_file({"x": x.contiguous()}, str(tmp_path / "inputs.safetensors"))
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED, str(folder), str(tmp_path / "inputs.safetensors"),
         str(tmp_path / "outputs.safetensors")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return load_file(str(tmp_path / "outputs.safetensors"))["logits"]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_generated_module_has_the_builders_keys_and_outputs(name):
    plan = plan_network(NETWORKS[name], (3, 16, 16), 5)
    namespace = {}
    exec(compile(network_source(plan), "network.py", "exec"), namespace)
    standalone, built = namespace["Network"](), NSCNetwork(plan)
    assert list(standalone.state_dict()) == list(built.state_dict())
    standalone.load_state_dict(built.state_dict())  # weights move one way …
    built.load_state_dict(standalone.state_dict())  # … and the other
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(standalone.eval()(x), built.eval()(x))


@pytest.mark.parametrize("name", ["chain", "merges", "leaves"])
def test_an_exported_network_runs_where_sb3_nas_cannot_be_imported(name, tmp_path, tiny_fidelity):
    pytest.importorskip("safetensors")
    pytest.importorskip("onnxruntime")
    from safetensors.torch import load_file

    plan = plan_network(NETWORKS[name], (3, 16, 16), 5)
    network = NSCNetwork(plan)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so eval mode is not the identity
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2)
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    data = PreparedData(images, torch.zeros(20, dtype=torch.long), images, images[:, 0, 0, 0] % 5, 5)
    description = export_module.network_description(plan, "digits", tiny_fidelity, name=name)
    folder = tmp_path / name
    export_module.write_network_export(folder, plan, description, trained=network, data=data)
    assert load_file(str(folder / "weights.safetensors")).keys() == network.state_dict().keys()
    x = images.float() / 255
    expected = network.eval()(x).detach()
    assert torch.equal(_run_isolated(folder, x, tmp_path), expected)
    assert torch.equal(load_exported(folder)(x).detach(), expected)
    written = json.loads((folder / "nsc.json").read_text())
    assert written["onnx"]["max_abs_difference"] <= 1e-5
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "network.onnx"), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"images": x[:7].numpy()})  # another batch size than exported with
    np.testing.assert_allclose(onnx_logits, expected[:7].numpy(), atol=1e-5, rtol=0)


def test_export_a_run_with_training_writes_every_file(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    run = tmp_path / "random"
    shutil.copytree(RANDOM, run)
    out = tmp_path / "exported"
    argv = [str(run), "--envs", "digits", "--top", "2", "--train", "--epochs", "1", "-f", str(out)]
    assert export.main(argv) == 0
    printed = capsys.readouterr().out
    assert "digits #1" in printed and "digits #2" in printed
    steps = pd.read_csv(run / "steps.csv")
    for rank in (1, 2):
        folder = out / "digits" / str(rank)
        names = {p.name for p in folder.iterdir()}
        assert names == {"network.py", "nsc.json", "weights.safetensors", "network.onnx", "README.md",
                         "architecture.svg"}  # fmt: skip
        description = json.loads((folder / "nsc.json").read_text())
        assert description["fidelity"] == "tiny" and description["search"]["rank"] == rank
        assert description["input_shape"] == [1, 12, 12] and description["n_classes"] == 10
        assert 0 <= description["training"]["accuracy"] <= 1 and description["training"]["epochs"] == 1
        assert description["onnx"]["max_abs_difference"] <= 1e-5
        card = (folder / "README.md").read_text()
        assert (
            "![architecture](architecture.svg)" in card and f"{description['n_params']:,} parameters" in card
        )
        model = load_exported(folder)
        plan = plan_network(description["nsc"], (1, 12, 12), 10)
        assert sum(p.numel() for p in model.parameters()) == plan.n_params == description["n_params"]
    # the network the run rewarded most, as retrain chooses it
    best = json.loads((out / "digits" / "1" / "nsc.json").read_text())
    top = steps[steps["env"] == "digits"].sort_values(["reward", "step"], ascending=[False, True]).iloc[0]
    assert best["search"]["step"] == int(top["step"])
    # training is seeded: the same command gives the same weights
    again = tmp_path / "again"
    assert export.main([*argv[:-1], str(again)]) == 0
    from safetensors.torch import load_file

    first, second = (load_file(str(d / "digits" / "1" / "weights.safetensors")) for d in (out, again))
    assert all(torch.equal(first[k], second[k]) for k in first)
    # an existing export is not overwritten unasked
    assert export.main(argv) == 2
    assert "already holds an export: pass --overwrite" in capsys.readouterr().err
    assert export.main([*argv, "--overwrite"]) == 0


def test_a_multi_branch_run_exports_without_training(tmp_path):
    out = tmp_path / "exported"
    assert export.main([str(MULTI_BRANCH), "--envs", "digits", "--top", "3", "-f", str(out)]) == 0
    folders = sorted((out / "digits").iterdir())
    assert [f.name for f in folders] == ["1", "2", "3"]
    rows = json.loads((folders[0] / "nsc.json").read_text())["nsc"]
    assert any(row[1] == 5 for row in rows)  # the best one adds two branches
    source = (folders[0] / "network.py").read_text()
    assert "pad_to(" in source and "import sb3_nas" not in source and "from sb3_nas" not in source
    assert not (folders[0] / "weights.safetensors").exists()
    model = load_exported(folders[0])
    assert model(torch.rand(2, 1, 12, 12)).shape == (2, 10)


def test_train_without_the_export_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export_module, "missing_export_packages", lambda: ["onnx", "onnxruntime"])
    out = tmp_path / "exported"
    assert export.main([str(RANDOM), "--envs", "digits", "--train", "-f", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'sb3_nas[export]'" in err and "onnx, onnxruntime" in err
    folder = out / "digits" / "1"
    assert (folder / "network.py").is_file() and (folder / "nsc.json").is_file()
    assert not (folder / "weights.safetensors").exists()


def test_a_run_without_a_valid_network_is_one_line(tmp_path, capsys):
    run = tmp_path / "invalid"
    shutil.copytree(RANDOM, run)
    steps = pd.read_csv(run / "steps.csv")
    steps["valid"] = False
    steps.to_csv(run / "steps.csv", index=False)
    assert export.main([str(run), "--envs", "digits", "-f", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: run folder {run}: digits has no valid network to export"
    assert export.main([str(tmp_path / "none"), "-f", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_load_exported_refuses_a_pickle_and_a_broken_description(tmp_path):
    plan = plan_network(NETWORKS["chain"], (3, 16, 16), 5)
    from sb3_nas.estimation import get_fidelity

    description = export_module.network_description(plan, "digits", get_fidelity("tiny"))
    folder = tmp_path / "export"
    export_module.write_network_export(folder, plan, description)
    assert isinstance(load_exported(folder), NSCNetwork)
    (folder / "extra.dat").write_bytes(pickle.dumps({"a": 1}))  # a pickle under an innocent name
    with pytest.raises(ExportError, match=r"holds a pickle \(extra.dat\)"):
        load_exported(folder)
    (folder / "extra.dat").unlink()
    torch.save({"w": torch.zeros(1)}, folder / "weights.dat")  # torch.save's zip holding data.pkl
    with pytest.raises(ExportError, match="holds a pickle"):
        load_exported(folder)
    (folder / "weights.dat").unlink()
    (folder / "nsc.json").write_text(json.dumps({**description, "nsc": [[1, 9, 3, 0, 0]]}))
    with pytest.raises(ExportError, match="does not describe a buildable network"):
        load_exported(folder)
    (folder / "nsc.json").write_text("{")
    with pytest.raises(ExportError, match="is not readable JSON"):
        load_exported(folder)


@pytest.mark.parametrize("env", ["nbgraph:cora", "nb201:cifar10"])
def test_a_tabular_run_exports_its_architectures_in_the_benchmarks_notation(env, tmp_path):
    run = tmp_path / "tabular"
    argv = ["--algo", "random", "--envs", env, "--timesteps", "30", "--out", str(run)]
    assert train.main([*argv, "--no-progress"]) == 0
    out = tmp_path / "exported"
    assert export.main([str(run), "--top", "2", "--train", "-f", str(out)]) == 0
    steps = pd.read_csv(run / "steps.csv")
    best = steps[steps["valid"]].sort_values(["reward", "step"], ascending=[False, True]).iloc[0]
    folder = out / env.replace(":", "_")
    for rank in (1, 2):
        assert {p.name for p in (folder / str(rank)).iterdir()} == {"architecture.json", "README.md"}
    first = json.loads((folder / "1" / "architecture.json").read_text())
    assert first["validation_accuracy"] == pytest.approx(best["accuracy"])
    assert first["test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert first["architecture"] == json.loads(best["architecture"])
    if env.startswith("nbgraph"):
        assert first["benchmark"] == "NAS-Bench-Graph" and set(first["architecture"]) == {"link", "ops"}
    else:  # NAS-Bench-201's arch string, which names the same cell
        assert choices_from_arch_string(first["arch_string"]) == tuple(first["architecture"])
        assert first["arch_string"] in (folder / "1" / "README.md").read_text()
    with pytest.raises(ExportError, match="describes a tabular benchmark's architecture"):
        load_exported(folder / "1")


def test_build_network_and_the_loader_agree_on_retrained_filters(tmp_path, tiny_fidelity):
    from sb3_nas.analysis.retraining import RETRAIN_DENSE_UNITS, retrain_filters

    nsc = [(1, 1, 3, 0, 0), (2, 1, 1, 1, 0), (3, 2, 2, 2, 0)]
    plan = plan_network(nsc, (3, 16, 16), 5, conv_filters=retrain_filters, dense_units=RETRAIN_DENSE_UNITS)
    description = export_module.network_description(
        plan, "digits", tiny_fidelity, conv_filters=export_module.retrained_conv_filters(plan),
        dense_units=RETRAIN_DENSE_UNITS,
    )  # fmt: skip
    assert description["build"]["conv_filters"] == [32, 64]
    export_module.write_network_export(tmp_path / "r", plan, description)
    loaded = load_exported(tmp_path / "r")
    reference = build_network(
        nsc, (3, 16, 16), 5, conv_filters=retrain_filters, dense_units=RETRAIN_DENSE_UNITS
    )
    assert [tuple(p.shape) for p in loaded.parameters()] == [tuple(p.shape) for p in reference.parameters()]


def test_retrain_save_keeps_the_retrained_networks_with_their_weights(tmp_path):
    pytest.importorskip("onnxruntime")
    from sb3_nas import retrain
    from sb3_nas.data import load_dataset
    from sb3_nas.estimation import get_fidelity, prepare_data

    saved, table = tmp_path / "networks", tmp_path / "table"
    argv = ["--run", str(RANDOM), "--envs", "digits", "--runs", "2", "--epochs", "1", "--no-progress"]
    assert retrain.main([*argv, "-f", str(table), "--save", str(saved)]) == 0
    runs = pd.read_csv(table / "runs.csv")
    data = prepare_data(load_dataset("digits"), get_fidelity("tiny"))
    x = data.test_x.float() / 255
    for rank, architecture in ((1, "random (1st)"), (2, "random (2nd)")):
        folder = saved / "digits" / str(rank)
        description = json.loads((folder / "nsc.json").read_text())
        first = runs[(runs["architecture"] == architecture) & (runs["seed"] == 0)].iloc[0]
        assert description["training"]["accuracy"] == pytest.approx(first["accuracy"])
        assert description["build"]["dense_units"] == 4096
        assert description["onnx"]["max_abs_difference"] < 1e-4
        with torch.inference_mode():
            correct = (load_exported(folder)(x).argmax(1) == data.test_y).sum().item()
        # Table 6's network itself, not only its score
        assert abs(correct - first["accuracy"] * len(data.test_y)) <= 1
    assert retrain.main([*argv, "-f", str(table), "--save", str(saved)]) == 2  # not overwritten unasked
