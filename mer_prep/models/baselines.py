"""The field's reference baselines on onset -> apex optical flow, registered beside the five
papers' models: STSTNet, OFF-ApexNet and HTNet (docs/models.md, "Baselines").

Each declares the recipe it reads (``ststnet28``: u, v, strain at 28x28; ``htnet56``: the same
at 56x56), the paper's training settings as its preset and the input its paper used.
"""

from __future__ import annotations

from mer_prep.models.htnet import HTNetConfig, build_htnet
from mer_prep.models.offapexnet import OFFApexNetConfig, build_offapexnet
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import ArrayNeed, ModelSpec, TrainingPreset, VariantPreset
from mer_prep.models.ststnet import STSTNetConfig, build_ststnet

_TORCH_EPS = 1e-8  # the three papers' code is PyTorch / TensorFlow: Adam's eps 1e-8 in both


def _apex_flow_needs(config: STSTNetConfig | OFFApexNetConfig | HTNetConfig
                     ) -> tuple[ArrayNeed, ...]:
    """Onset and apex flow (the last frame is the apex), plus strain when a channel."""
    flow = ArrayNeed("flow", ("frame", "y", "x", "uv"), sizes=(("uv", 2),),
                     minimum=(("frame", 2), ("y", 6), ("x", 6)))
    if "strain" not in getattr(config, "channels", ()):
        return (flow,)
    return flow, ArrayNeed("strain", ("frame", "y", "x"), same_grid_as="flow")


def baseline_specs() -> list[ModelSpec]:
    """The field's reference baselines on onset -> apex flow (docs/models.md, "Baselines")."""
    one = {"plain": VariantPreset(description="the paper's network and input")}
    return [
        ModelSpec(
            name="ststnet", paper="STSTNet (Liong et al. 2019)", family="ststnet",
            recipe="ststnet28",
            description="Three shallow streams (3, 5, 8 filters) over apex strain, u, v.",
            config_cls=STSTNetConfig, builder=build_ststnet, needs=_apex_flow_needs,
            paper_input=PaperInput("flow", (28, 28), min_frames=2,
                                   source="STSTNet Sec. III: 28x28x3"),
            training=TrainingPreset(lr=5e-5, eps=_TORCH_EPS, epochs=500, batch_size=256),
            variants=one, default_variant="plain"),
        ModelSpec(
            name="offapexnet", paper="OFF-ApexNet (Gan et al. 2019)", family="offapexnet",
            recipe="ststnet28",
            description="Two CNN streams over apex u and v, two dense 1024 layers.",
            config_cls=OFFApexNetConfig, builder=build_offapexnet, needs=_apex_flow_needs,
            paper_input=PaperInput("flow", (28, 28), min_frames=2,
                                   source="OFF-ApexNet: 28x28 u and v"),
            training=TrainingPreset(lr=1e-4, eps=_TORCH_EPS, epochs=3000, batch_size=256),
            variants=one, default_variant="plain"),
        ModelSpec(
            name="htnet", paper="HTNet (Wang et al. 2024)", family="htnet", recipe="htnet56",
            description="Hierarchical transformer: local attention in four facial areas, "
                        "then global.",
            config_cls=HTNetConfig, builder=build_htnet, needs=_apex_flow_needs,
            paper_input=PaperInput("flow", (56, 56), min_frames=2,
                                   source="HTNet: four 28x28 areas tiled 56x56"),
            training=TrainingPreset(lr=5e-5, eps=_TORCH_EPS, epochs=800, batch_size=256),
            variants=one, default_variant="plain"),
    ]
