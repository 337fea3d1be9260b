"""Issue 22's speed-ups change how the maths is computed, not the maths: STSTNet's fused streams
give the three separate streams' outputs and gradients (to float rounding, ties included) under
the same state dict, the engine's fused Adam makes the default Adam's update, and the flow
baselines' registration helper registers what the papers fix."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from torch_or_skip import torch

from mer_prep.models import get_model
from mer_prep.models.apex_flow import ApexFlowBuilder
from mer_prep.train.data import StoreData, build_fold
from mer_prep.train.engine import adam, train_fold

FLOW28 = {"flow": (2, 28, 28, 2), "strain": (2, 28, 28)}


def _streams_one_by_one(model, x):
    return torch.cat([stream(x) for stream in model.streams], dim=1)


def _inputs(kind: str, batch: int = 16) -> dict:
    torch.manual_seed(3)
    flow, strain = torch.randn(batch, *FLOW28["flow"]), torch.rand(batch, *FLOW28["strain"])
    if kind == "sparse":  # exact zeros over most of the face: ties in many pooling windows
        keep = torch.rand(batch, 1, 28, 28) < 0.1
        flow = flow * keep[..., None]
        strain = strain * keep
    return {"flow": flow, "strain": strain}


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_ststnet_fused_streams_equal_the_three_streams(kind):
    torch.manual_seed(0)
    model = get_model("ststnet").build({}, 3, FLOW28)
    inputs = _inputs(kind)
    model.fit_input_statistics(inputs)
    x = model.apex_map(inputs)
    fused = model.fused_streams(x)
    streams = _streams_one_by_one(model, x)
    assert fused.shape == streams.shape == (16, 16, 10, 10)
    torch.testing.assert_close(fused, streams, rtol=1e-5, atol=1e-6)
    # gradients of every parameter through the whole model: the fused path vs the streams
    targets = torch.arange(16) % 3
    grads = []
    for path in (model.fused_streams, lambda x: _streams_one_by_one(model, x)):
        model.zero_grad(set_to_none=True)
        features = path(model.apex_map(inputs))
        logits = model.classifier(model.pool(features).flatten(1))
        torch.nn.functional.cross_entropy(logits, targets).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)
    # forward() takes the fused path without batch norm
    model.eval()
    with torch.no_grad():
        logits = model.classifier(model.pool(streams).flatten(1))
        torch.testing.assert_close(model(inputs), logits, rtol=1e-5, atol=1e-6)


def test_ststnet_keeps_its_state_dict_and_runs_streams_with_batchnorm():
    model = get_model("ststnet").build({}, 3, FLOW28)
    assert list(model.state_dict()) == [
        "input.flow_scale",
        "input.strain_scale",
        *(f"streams.{i}.0.{p}" for i in range(3) for p in ("weight", "bias")),
        "classifier.weight",
        "classifier.bias",
    ]
    torch.manual_seed(0)
    normed = get_model("ststnet").build({"batchnorm": True}, 3, FLOW28).eval()
    inputs = _inputs("dense", 4)
    with torch.no_grad():
        x = normed.apex_map(inputs)
        expected = normed.classifier(normed.pool(_streams_one_by_one(normed, x)).flatten(1))
        torch.testing.assert_close(normed(inputs), expected)


def test_the_engines_fused_adam_makes_the_default_adams_update():
    torch.manual_seed(0)
    model = get_model("offapexnet").build({}, 3, FLOW28)
    twin = copy.deepcopy(model)
    preset = dataclasses.replace(get_model("offapexnet").training, weight_decay=1e-4)
    fused = adam(model, preset)
    assert fused.defaults["fused"] is True
    assert fused.defaults["lr"] == preset.lr and fused.defaults["eps"] == preset.eps
    default = torch.optim.Adam(
        twin.parameters(), lr=preset.lr, eps=preset.eps, betas=preset.betas, weight_decay=1e-4
    )
    for step in range(5):
        torch.manual_seed(step)
        for a, b in zip(model.parameters(), twin.parameters(), strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        fused.step()
        default.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_flow_baselines_are_registered_with_their_papers_settings():
    expected = {
        "ststnet": (28, 5e-5, 500, "STSTNet Sec. III: 28x28x3"),
        "offapexnet": (28, 1e-4, 3000, "OFF-ApexNet: 28x28 u and v"),
        "htnet": (56, 5e-5, 800, "HTNet: four 28x28 areas tiled 56x56"),
    }
    for name, (size, lr, epochs, source) in expected.items():
        spec = get_model(name)
        assert isinstance(spec.builder, ApexFlowBuilder)
        assert spec.paper_input is not None and spec.paper_input.source == source
        assert tuple(spec.paper_input.size) == (size, size)
        training = spec.training
        assert (training.lr, training.eps, training.epochs, training.batch_size) == (
            lr,
            1e-8,
            epochs,
            256,
        )
        assert list(spec.variants) == ["plain"]
        assert [need.name for need in spec.inputs] == (
            ["flow"] if name == "offapexnet" else ["flow", "strain"]
        )


def test_a_fold_trained_twice_with_one_seed_predicts_the_same():
    """Deterministic mode without the memory fill: the same seed, the same probabilities."""
    rng = np.random.default_rng(0)
    n = 24
    data = StoreData(
        arrays={
            "flow": rng.standard_normal((n, *FLOW28["flow"])).astype(np.float32),
            "strain": rng.random((n, *FLOW28["strain"])).astype(np.float32),
        },
        labels=np.arange(n) % 3,
        subjects=np.array([f"s{i % 6}" for i in range(n)]),
        sample_ids=np.array([f"c{i}" for i in range(n)]),
        parents=np.full(n, -1, np.int64),
        class_names=("a", "b", "c"),
        dims={"flow": ("frame", "y", "x", "uv"), "strain": ("frame", "y", "x")},
    )
    held = data.subjects == "s0"
    plain = {"unit": "clip", "augmented": False, "weighted": False, "validation": False}
    fold = build_fold(data, 0, "s0", np.flatnonzero(~held), np.flatnonzero(held), **plain, seed=0)
    spec = get_model("ststnet")
    preset = dataclasses.replace(spec.training, epochs=3, batch_size=8, lr=1e-2)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    first, second = (train_fold(fold, spec, spec.config({}), preset, 7) for _ in range(2))
    assert np.array_equal(first.proba, second.proba)
    assert first.timings["deterministic"] is True
    assert torch.utils.deterministic.fill_uninitialized_memory == fill  # restored after the fold
