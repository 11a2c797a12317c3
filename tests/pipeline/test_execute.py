"""The pipeline's method call: one refusal of unknown parameters, networks loaded for NEEDS_MODEL methods,
and every ``configs/method/*.yaml`` bound to its method's signature."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import locres.methods as registry
from locres.cli import run_cli
from locres.errors import LocresError
from locres.io.checkpoints import export_slim
from locres.methods import LocalResolution, MethodInputs, get_method
from locres.models.loaded import LoadedModel
from locres.models.nets import CompactResNet
from locres.pipeline.execute import (
    accepted_parameters,
    call_method,
    check_parameters,
    measure,
    run_method,
)
from locres.pipeline.inputs import LoadedInputs

REPO = Path(__file__).resolve().parents[2]
METHOD_CONFIGS = sorted(p for p in (REPO / "configs" / "method").glob("*.yaml") if p.stem != "all")


def _module(run, **attrs) -> types.ModuleType:
    mod = types.ModuleType("locres.methods.toy")
    mod.run = run
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


def _inputs(shape=(6, 7, 8)) -> MethodInputs:
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return MethodInputs(voxel_size_a=1.0, map=data)


def _constant_run(inputs, level_a: float = 4.0, scale: int = 1):
    return LocalResolution(resolution_a=np.full(inputs.shape_zyx, level_a * scale, np.float32))


def test_unknown_parameter_refused_in_one_line_with_what_it_takes():
    mod = _module(_constant_run)
    assert accepted_parameters("toy", mod) == ["level_a", "scale"]
    with pytest.raises(LocresError) as err:
        check_parameters("toy", mod, {"level_a": 3.0, "foo": 1})
    assert str(err.value) == "method toy has no parameter 'foo' (it takes: level_a, scale)"
    with pytest.raises(LocresError, match="no parameters 'a', 'b'"):
        call_method("toy", mod, _inputs(), {"a": 1, "b": 2})
    out = call_method("toy", mod, _inputs(), {"level_a": 3.0, "scale": 2})
    assert np.all(out.resolution_a == 6.0)


def test_var_keyword_run_is_checked_against_its_config_keys(tmp_path):
    (tmp_path / "toy.yaml").write_text("name: toy\nstep_a: 0.5\nsmooth: true\n")
    mod = _module(lambda inputs, **params: _constant_run(inputs))
    assert accepted_parameters("toy", mod, tmp_path) == ["step_a", "smooth"]
    check_parameters("toy", mod, {"step_a": 1.0}, tmp_path)
    with pytest.raises(LocresError, match=r"has no parameter 'stepa' \(it takes: step_a, smooth\)"):
        check_parameters("toy", mod, {"stepa": 1.0}, tmp_path)
    assert accepted_parameters("toy", mod, tmp_path / "none") is None  # no config: nothing to check against
    check_parameters("toy", mod, {"anything": 1}, tmp_path / "none")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = CompactResNet(channels=[2, 2], kernel_sizes=[3, 3], strides=[1, 1], dense_widths=[4])
    return export_slim(tmp_path_factory.mktemp("ck") / "tiny.pt", net, 1.25, (2.5, 12.0))


def _model_method(default: Path, seen: dict) -> types.ModuleType:
    def run(inputs, model: LoadedModel, gain: float = 1.0):
        seen.update(model=model, gain=gain)
        return _constant_run(inputs, model.resolution_range_a[0] * gain)

    return _module(run, NEEDS_MODEL=True, default_checkpoint=lambda inputs: default)


def test_needs_model_gets_a_loaded_network(tiny_checkpoint, tmp_path):
    seen: dict = {}
    mod = _model_method(tmp_path / "missing.pt", seen)
    assert accepted_parameters("toy", mod) == ["checkpoint", "gain"]
    out = call_method("toy", mod, _inputs(), {"checkpoint": str(tiny_checkpoint), "gain": 2.0})
    model = seen["model"]
    assert isinstance(model, LoadedModel) and not model.net.training
    assert model.voxel_size_a == 1.25 and model.resolution_range_a == (2.5, 12.0)
    assert model.path == str(tiny_checkpoint) and np.all(out.resolution_a == 5.0)
    # no checkpoint given: the module's default_checkpoint(inputs) is loaded
    call_method("toy", _model_method(tiny_checkpoint, seen), _inputs(), {"checkpoint": None})
    assert seen["model"].path == str(tiny_checkpoint)
    with pytest.raises(LocresError, match="shipped toy model .*missing.pt is missing"):
        call_method("toy", mod, _inputs(), {})


def test_deepres_chooses_its_default_from_the_inputs():
    deepres = get_method("deepres")
    assert deepres.NEEDS_MODEL is True
    assert deepres.default_checkpoint(_inputs()) == deepres.DEFAULT_CHECKPOINT
    assert "checkpoint" not in inspect.signature(deepres.run).parameters  # the method never reads files


def test_run_method_refuses_before_running(monkeypatch):
    calls = []

    def run(inputs, level_a: float = 4.0):
        calls.append(level_a)
        return _constant_run(inputs, level_a)

    monkeypatch.setitem(sys.modules, "locres.methods.toy", _module(run))
    monkeypatch.setattr(registry, "METHOD_NAMES", (*registry.METHOD_NAMES, "toy"))
    inputs = _inputs()
    loaded = LoadedInputs(reference=None, inputs=inputs)
    with pytest.raises(LocresError, match="method toy has no parameter 'levle_a'"):
        run_method("toy", loaded, {"levle_a": 3.0})
    assert calls == []
    measured = run_method("toy", loaded, {"level_a": 3.0})
    assert calls == [3.0] and measured.seconds >= 0 and measured.peak_memory_mb > 0
    assert np.all(measured.value.resolution_a == 3.0)


def test_measure_times_the_call():
    import time

    m = measure(lambda: time.sleep(0.05) or 7)
    assert m.value == 7 and 0.04 < m.seconds < 2.0


@pytest.mark.parametrize("path", METHOD_CONFIGS, ids=[p.stem for p in METHOD_CONFIGS])
def test_method_config_binds_to_run_signature(path):
    """Every key of configs/method/NAME.yaml is a parameter of NAME's run (name excepted); a run that
    takes **params forwards them to estimate_NAME, whose signature the keys must then fit."""
    keys = [k for k in OmegaConf.to_container(OmegaConf.load(path)) if k != "name"]
    name = OmegaConf.load(path).name
    assert name == path.stem
    module = get_method(name)
    params = inspect.signature(module.run).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        target = getattr(module, f"estimate_{name}")
        takes = inspect.signature(target).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in takes.values()), target
    else:
        takes = dict(params)
        if getattr(module, "NEEDS_MODEL", False):
            assert "model" in takes
            takes["checkpoint"] = None
    missing = [k for k in keys if k not in takes]
    assert not missing, f"{path.name}: {missing} are not parameters of {name}"
    check_parameters(name, module, dict.fromkeys(keys))  # the pipeline accepts its own defaults


def test_infer_refuses_an_unknown_method_parameter_end_to_end(tmp_path, capsys):
    """``+method.foo=1`` reaches the pipeline (Hydra's struct check is bypassed) and is refused there."""
    from locres.pipeline import infer_from_config

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as ex:
        run_cli(lambda cfg: infer_from_config(cfg, REPO / "configs"), "infer", REPO / "configs",
                argv=["+method.foo=1", f"output.dir={out}"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert ex.value.code == 1 and len(err) == 1, err
    assert err[0].startswith("error: method deepres has no parameter 'foo' (it takes: checkpoint, mask_")
    assert not out.exists()


def test_method_all_refuses_a_bad_override_before_running(monkeypatch, tmp_path):
    from locres.core.maps import MapGeometry
    from locres.io.maps import write_map
    from locres.pipeline import run_infer

    calls = []

    def run(inputs, level_a: float = 4.0):
        calls.append(level_a)
        return _constant_run(inputs, level_a)

    monkeypatch.setitem(sys.modules, "locres.methods.toy", _module(run))
    monkeypatch.setattr(registry, "METHOD_NAMES", (*registry.METHOD_NAMES, "toy"))
    write_map(tmp_path / "m.mrc", _inputs((10, 10, 10)).map, MapGeometry.new((10, 10, 10), 1.0))
    out = tmp_path / "out"
    with pytest.raises(LocresError, match="method toy has no parameter 'bogus'"):
        run_infer("all", {"toy": {"bogus": 1}}, out, map_path=str(tmp_path / "m.mrc"), only=["toy"])
    assert calls == [] and not out.exists()
    result = run_infer("all", {"toy": {"level_a": 5.0}}, out, map_path=str(tmp_path / "m.mrc"), only=["toy"])
    assert calls == [5.0] and result["summaries"][0]["median_a"] == 5.0 and "toy" in result["table"]
