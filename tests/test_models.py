"""The model families (mer_prep.models): shapes, training signal, sizes, registry and inputs."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError
from torch_or_skip import torch

from mer_prep.errors import MerPrepError
from mer_prep.models import (
    MODELS,
    ModelInputError,
    UnknownModelError,
    check_inputs,
    get_model,
    list_models,
)
from mer_prep.recipes.model import builtin_recipes

F = torch.nn.functional
NAMES = ["mbcc", "broadbent", "dp3dnet", "ha3dnet", "se3dnet", "ha3dsenet", "msres3d", "mer3dcnn"]
BASELINES = ["ststnet", "offapexnet", "htnet"]  # tests/test_baselines.py
HALVES = {"upper": (8, 16, 32), "lower": (8, 16, 32)}
# Tiny configs (dropout 0 so that one fixed batch gives a deterministic training signal) and
# small per-sample shapes: 8 frames of 32x32 where the architecture allows.
TINY = {
    "mbcc": ({"dropout": 0.0, "inputs": "onset_apex"}, {"frames": (2, 32, 32)}),
    "broadbent": ({"dropout": 0.0}, {"frames": (1, 32, 32)}),
    "dp3dnet": ({"head": "gap", "filters": 8, "dropout": 0.0}, HALVES),
    "ha3dnet": ({"head": "flatten", "filters": 4, "dense": 16, "dropout": 0.0}, HALVES),
    "se3dnet": ({"head": "gap", "filters": 16, "dropout": 0.0}, HALVES),
    "ha3dsenet": ({"head": "gap", "filters": 8, "dropout": 0.0}, HALVES),
    "msres3d": (
        {
            "block": "basic",
            "width": 0.125,
            "depth": (1, 1, 1, 1),
            "strain": True,
            "head_dropout": 0.0,
        },
        {"flow": (8, 32, 32, 2), "strain": (8, 32, 32)},
    ),
    "mer3dcnn": (
        {"head": "flatten", "filters": 4, "dense": 16, "dropout": 0.0},
        {"frames": (8, 32, 32)},
    ),
}
K = 3


def _tiny_msres3d(batch, seed):
    """The tiny msres3d (initialised with torch seed ``seed``) in eval mode, and a random batch
    of ``batch`` inputs for it (``_batch``, same seed)."""
    config, shapes = TINY["msres3d"]
    torch.manual_seed(seed)
    model = get_model("msres3d").build(config, K, shapes).eval()
    return model, _batch(shapes, batch=batch, seed=seed)


def _batch(shapes, batch=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        name: torch.rand(batch, *shape, generator=generator) for name, shape in shapes.items()
    }
    targets = torch.arange(batch) % K
    return inputs, targets


def _recipe_arrays(recipe):
    return {
        name: (dims, shape)
        for name, (dims, shape, _) in builtin_recipes()[recipe].array_specs().items()
    }


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_five_papers():
    assert list_models() == NAMES + BASELINES
    assert [get_model(n).paper[:3] for n in NAMES] == ["000", "001"] + ["002"] * 4 + ["003", "004"]
    for name in NAMES:
        spec = get_model(name)
        assert spec.default_variant in spec.variants
        with pytest.raises(ValidationError):
            spec.config_cls(no_such_switch=1)
        eps = 1e-8 if name == "msres3d" else 1e-7
        assert spec.training.optimizer == "adam" and spec.training.eps == eps
        for variant in spec.variants:
            assert isinstance(spec.config(variant=variant), spec.config_cls)
    assert get_model("broadbent").training.epochs == 25
    msres3d = get_model("msres3d").training
    assert msres3d.lr == 1e-5 and msres3d.batch_size == 8 and msres3d.epochs == 100
    assert get_model("ha3dnet").training.batch_size == 80
    assert get_model("ha3dnet").variants["augmented"].recipe == "ha3d_aug"
    assert get_model("mer3dcnn").training.selection == "last_epoch"
    v = get_model("mer3dcnn").variants
    assert (
        v["scb"].smote,
        v["dacwb"].augmented,
        v["dacwb"].class_weights,
        v["da"].class_weights,
    ) == (True, True, True, False)


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(UnknownModelError) as caught:
        get_model("resnet")
    assert isinstance(caught.value, MerPrepError)
    assert "resnet" in str(caught.value) and all(n in str(caught.value) for n in NAMES)


def test_units():
    assert get_model("broadbent").unit() == "frame"
    assert get_model("mbcc").unit() == "clip"
    assert get_model("mbcc").unit({"unit": "frame"}) == "frame"
    assert get_model("mbcc").unit(get_model("mbcc").config(variant="frames")) == "frame"
    assert all(get_model(n).unit() == "clip" for n in NAMES[2:])
    with pytest.raises(ValidationError):
        get_model("mbcc").config({"unit": "frame", "inputs": "difference"})


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_shapes_and_training(name):
    config, shapes = TINY[name]
    torch.manual_seed(0)
    model = get_model(name).build(config, K, shapes)
    inputs, targets = _batch(shapes)
    model.fit_input_statistics(inputs)
    model.train()
    logits = model(inputs)
    assert logits.shape == (4, K) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(6):
        optimiser.zero_grad()
        loss = model.loss(inputs, targets)
        loss.backward()
        optimiser.step()
        first = loss.item() if first is None else first
    with torch.no_grad():
        assert model.loss(inputs, targets).item() < first


@pytest.mark.parametrize(
    "name, config, shapes",
    [
        ("mbcc", {}, {"frames": (2, 64, 64)}),
        ("mbcc", {"unit": "frame"}, {"frames": (1, 64, 64)}),
        ("broadbent", {}, {"frames": (1, 64, 64)}),
        ("ha3dsenet", {"head": "gap"}, {"upper": (16, 64, 128), "lower": (16, 64, 128)}),
        ("mer3dcnn", {"head": "gap"}, {"frames": (16, 128, 128)}),
    ],
)
def test_real_recipe_shapes(name, config, shapes):
    model = get_model(name).build(config, 5, shapes).eval()
    inputs = {k: torch.rand(2, *s, dtype=torch.float16) for k, s in shapes.items()}  # store dtype
    with torch.no_grad():
        assert model(inputs).shape == (2, 5)


def _meta_params(name, config, shapes, k):
    with torch.device("meta"):
        return _params(get_model(name).build(config, k, shapes))


def test_literal_parameter_counts():
    real = {
        name: {n: s for n, (_, s) in _recipe_arrays(get_model(name).recipe).items()}
        for name in NAMES
    }
    assert _meta_params("mbcc", {}, real["mbcc"], 5) == pytest.approx(4.3e6, rel=0.03)
    assert _meta_params("broadbent", {}, real["broadbent"], 8) == pytest.approx(30e3, rel=0.05)
    for name in ("dp3dnet", "ha3dnet", "se3dnet", "ha3dsenet", "mer3dcnn"):
        assert _meta_params(name, {}, real[name], 5) == pytest.approx(268e6, rel=0.01)
        assert _meta_params(name, {"head": "gap"}, real[name], 5) < 1e5
    # docs/models.md: ~77-129 M, from bottleneck + kernel-2 deconvolutions up to kernel 3.
    assert 70e6 < _meta_params("msres3d", {}, real["msres3d"], 5) < 85e6
    assert 120e6 < _meta_params("msres3d", {"deconv_kernel": 3}, real["msres3d"], 5) < 135e6
    assert 60e6 < _meta_params("msres3d", {"block": "basic"}, real["msres3d"], 5) < 75e6


def test_sizes_follow_the_store_shapes():
    big = _meta_params("mer3dcnn", {}, {"frames": (16, 128, 128)}, 3)
    small = _meta_params("mer3dcnn", {}, {"frames": (8, 32, 32)}, 3)
    assert big - small == 64 * (8 * 64 * 64 - 4 * 16 * 16) * 128


def test_same_seed_same_weights():
    for name in ("mbcc", "msres3d"):
        config, shapes = TINY[name]
        states = []
        for seed in (7, 7, 8):
            torch.manual_seed(seed)
            states.append(get_model(name).build(config, K, shapes).state_dict())
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
        assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_keras_init_is_glorot_uniform_with_zero_bias():
    model = get_model("mbcc").build({}, K, {"frames": (2, 32, 32)})
    conv = model.branch5[3]  # 32 -> 64, 5x5
    limit = math.sqrt(6 / (32 * 25 + 64 * 25))
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.9 * limit
    assert all(
        m.bias.abs().sum() == 0
        for m in model.modules()
        if hasattr(m, "bias") and isinstance(m.bias, torch.Tensor)
    )
    torch_init = get_model("mbcc").build({"init": "torch"}, K, {"frames": (2, 32, 32)})
    assert torch_init.branch5[0].bias.abs().sum() > 0


@pytest.mark.slow  # 5-10 s: four forward passes of the (tiny) multi-scale 3-D ResNet
def test_msres3d_prediction_is_the_mean_of_the_head_softmaxes():
    model, (inputs, targets) = _tiny_msres3d(batch=3, seed=1)
    with torch.no_grad():
        heads = model.forward_heads(inputs)
        mean = torch.stack([F.softmax(h, dim=1) for h in heads]).mean(0)
        assert len(heads) == 4
        torch.testing.assert_close(model(inputs).exp(), mean)
        expected = sum(F.cross_entropy(h, targets) for h in heads)
        torch.testing.assert_close(model.loss(inputs, targets), expected)
        weight = torch.tensor([1.0, 2.0, 3.0])
        expected = sum(F.cross_entropy(h, targets, weight=weight) for h in heads)
        torch.testing.assert_close(model.loss(inputs, targets, weight), expected)


@pytest.mark.slow  # 5-6 s: two forward passes of the (tiny) multi-scale 3-D ResNet
def test_msres3d_normalises_by_the_training_std():
    model, (inputs, _) = _tiny_msres3d(batch=2, seed=2)
    model.fit_input_statistics(inputs)
    assert model.flow_scale.item() == pytest.approx(inputs["flow"].double().std().item())
    assert "flow_scale" in model.state_dict() and "strain_scale" in model.state_dict()
    with torch.no_grad():
        before = model(inputs)
        scaled = {k: v * 5.0 for k, v in inputs.items()}
        model.fit_input_statistics(scaled)
        torch.testing.assert_close(model(scaled), before)


def test_frames_as_samples_take_one_frame():
    model = get_model("broadbent").build({}, K, {"frames": (8, 32, 32)})
    with pytest.raises(ValueError, match="one frame per row"):
        model({"frames": torch.rand(2, 8, 32, 32)})
    assert model({"frames": torch.rand(2, 1, 32, 32)}).shape == (2, K)


def test_check_inputs_accepts_equal_user_recipes_and_refuses_others():
    for name in NAMES:
        spec = get_model(name)
        arrays = _recipe_arrays(spec.recipe)
        check_inputs(spec, spec.recipe, arrays)
        check_inputs(spec, "my_recipe", arrays)  # same arrays, any name
    check_inputs(get_model("msres3d"), "msres3d", _recipe_arrays("msres3d"), {"strain": True})
    small = {"frames": (("frame", "y", "x"), (8, 32, 32)), "landmarks": (("point", "xy"), (68, 2))}
    check_inputs(get_model("mer3dcnn"), "tiny32", small)

    with pytest.raises(ModelInputError) as caught:
        check_inputs(get_model("ha3dnet"), "mbcc64", _recipe_arrays("mbcc64"))
    message = str(caught.value)
    assert isinstance(caught.value, MerPrepError) and "\n" not in message
    assert message.startswith("model ha3dnet needs arrays upper (frame, y_half, x)")
    assert "recipe mbcc64 has frames (frame, y, x)" in message and "landmarks" in message

    bad_flow = _recipe_arrays("msres3d")
    bad_flow["flow"] = (("frame", "y", "x", "uv"), (16, 134, 134, 3))
    with pytest.raises(ModelInputError, match="uv = 2.*recipe odd has.*flow has uv = 3"):
        check_inputs(get_model("msres3d"), "odd", bad_flow)
    no_strain = {"flow": bad_flow["flow"][:1] + ((16, 134, 134, 2),)}
    with pytest.raises(ModelInputError, match="no strain"):
        check_inputs(get_model("msres3d"), "flowonly", no_strain, {"strain": True})
    with pytest.raises(ModelInputError, match="frame >= 2"):
        check_inputs(
            get_model("mbcc"),
            "apexonly",
            {"frames": (("frame", "y", "x"), (1, 64, 64))},
            {"inputs": "difference"},
        )


def test_build_refuses_missing_arrays():
    with pytest.raises(ModelInputError, match="model dp3dnet needs arrays upper"):
        get_model("dp3dnet").build({"head": "gap"}, K, {"frames": (16, 128, 128)})
    assert set(MODELS) == set(NAMES + BASELINES)


@pytest.mark.parametrize("name", NAMES)
def test_literal_models_run_on_their_recipe_shapes(name):
    """The literal (GPU-sized) configs, shape-checked on the meta device without any compute."""
    spec = get_model(name)
    shapes = {n: s for n, (_, s) in _recipe_arrays(spec.recipe).items()}
    if spec.unit() == "frame":
        shapes["frames"] = (1, *shapes["frames"][1:])
    configs = [{}]
    if name == "msres3d":
        configs += [{"strain": True, "deconv_kernel": 3, "fusion": "top_down"}, {"block": "basic"}]
    for config in configs:
        with torch.device("meta"):
            model = spec.build(config, 5, shapes)
            inputs = {n: torch.empty(8, *s) for n, s in shapes.items()}
            assert model(inputs).shape == (8, 5)
            assert model.loss(inputs, torch.zeros(8, dtype=torch.long)).shape == ()


def test_specs_and_variants_pickle():
    import pickle

    spec = get_model("mer3dcnn")
    assert pickle.loads(pickle.dumps(spec)) is spec
    variant = pickle.loads(pickle.dumps(spec.variants["dacwb"]))
    assert variant == spec.variants["dacwb"]


def test_each_family_registers_itself_and_the_registry_imports_none():
    """torchvision's way: a family's module calls ``register_model`` at import; the registry
    lists the family modules (imported by the package, in paper order) and imports none of them,
    so there is no import circle; a name registered twice is refused."""
    import ast
    from pathlib import Path

    from module_imports import imports_of

    import mer_prep.models.registry as registry

    package = Path(registry.__file__).parent
    registering = sorted(
        f"mer_prep.models.{path.stem}"
        for path in package.glob("*.py")
        if any(
            isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_model"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert registering == sorted(registry.FAMILY_MODULES)
    imported = {
        i.module
        for i in imports_of(Path(registry.__file__).read_text(), "mer_prep.models.registry")
    }
    assert not imported & set(registry.FAMILY_MODULES)
    for family in registry.FAMILY_MODULES:  # nor does a family import another (order, circles)
        path = package / f"{family.rsplit('.', 1)[1]}.py"
        assert not {i.module for i in imports_of(path.read_text(), family)} & (
            set(registry.FAMILY_MODULES) - {family}
        ), family
    # the families register in the order the registry lists them: paper order
    families = list(dict.fromkeys(MODELS[name].builder.__module__ for name in list_models()))
    assert families == list(registry.FAMILY_MODULES)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model(get_model("mbcc"))
    assert list_models() == NAMES + BASELINES


def test_one_classifier_head_shape_for_the_dense_families():
    """``classifier_head``: dense (ReLU, dropout) per hidden width, then K logits; the families
    whose head has that shape use it (same layers, same state-dict keys as before)."""
    from torch import nn

    from mer_prep.models.layers import classifier_head

    head = classifier_head(10, 3, (7, 5), 0.25)
    kinds = [type(layer) for layer in head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)] == [
        (10, 7),
        (7, 5),
        (5, 3),
    ]
    assert head[2].p == 0.25 and _params(head) == 10 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3
    mbcc = get_model("mbcc").build({"filters": (4, 8), "dense": 16}, 5, {"frames": (2, 16, 16)})
    assert [type(layer) for layer in mbcc.classifier] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [k for k in mbcc.state_dict() if k.startswith("classifier.")] == [
        "classifier.0.weight",
        "classifier.0.bias",
        "classifier.3.weight",
        "classifier.3.bias",
    ]
    assert mbcc.classifier[0].in_features == 2 * 8 * 4 * 4
