"""Model builders: keyword-only functions returning uncompiled Keras models that output logits.

``MODEL_BUILDERS`` registers every family the recipes train, each with its recipe's defaults
(``keraszoo models`` lists them); ``build_model(name, **kwargs)`` builds one, with a clear error
for unknown names, and ``build_model(name, tiny=True)`` a few-parameter variant of the same
code (the contract tests build, save, reload and export every family that way).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from keraszoo.models.airbench import build_airbench94, build_airbench96
from keraszoo.models.tta import with_flip_tta  # its layers registered: exports holding flip TTA load
from keraszoo.models.batch_norm import FusedBatchNormalization
from keraszoo.models.classifier import ModelPair, build_classifier_pair, build_image_classifier, pixel_scaling
from keraszoo.models.course_cnn import build_course_cnn
from keraszoo.models import preprocessing  # noqa: F401 - its layers registered: run folders holding them load
from keraszoo.models.mlp import build_mlp
from keraszoo.models.pretrained import VIT_PRESETS, build_vit_preset
from keraszoo.models.speedrun_net import build_speedrun_net
from keraszoo.models.vit import build_vit


def build_manual_mlp(**kwargs):
    """keraszoo.models.manual_mlp.build_manual_mlp, imported on use (its training step is TensorFlow code)."""
    from keraszoo.models.manual_mlp import build_manual_mlp as build

    return build(**kwargs)


@dataclass(frozen=True)
class RegisteredModel:
    builder: callable
    defaults: dict = field(default_factory=dict)  # the recipe's model
    tiny: dict = field(default_factory=dict)  # a few-parameter variant, for tests

    def __call__(self, *, tiny: bool = False, **kwargs):
        return self.builder(**{**self.defaults, **(self.tiny if tiny else {}), **kwargs})


MNIST_VIT = dict(image_shape=(28, 28, 1), patch_size=7, hidden_dim=64, num_layers=6, num_heads=4, mlp_dim=128,
                 num_classes=10)
MODEL_BUILDERS = {
    "cifar_cnn": RegisteredModel(build_course_cnn, tiny=dict(filters=(4, 4, 4), fc_units=8)),  # the course's CNN
    "cifar_airbench94": RegisteredModel(build_airbench94, dict(widths=(64, 256, 256)), dict(widths=(8, 8, 8))),
    "cifar_airbench96": RegisteredModel(build_airbench96, dict(widths=(128, 384, 512)), dict(widths=(8, 8, 8))),
    "cifar_speedrun": RegisteredModel(build_speedrun_net, dict(image_shape=(32, 32, 3), num_classes=10,
                                                               widths=(32, 64, 128)), dict(widths=(4, 4, 4))),
    "mnist_vit": RegisteredModel(build_vit, MNIST_VIT, dict(hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=8)),
    "mnist_mlp": RegisteredModel(build_mlp, dict(input_dim=784, hidden_dim=100, num_classes=10), dict(hidden_dim=4)),
    "circles_mlp": RegisteredModel(build_mlp, dict(input_dim=2, hidden_dim=10, num_classes=2), dict(hidden_dim=3)),
    "mnist_manual_mlp": RegisteredModel(build_manual_mlp, dict(example_shape=(28, 28, 1), hidden_dim=100,
                                                               num_classes=10), dict(hidden_dim=4)),
    # Standard ViT sizes with the layout of pretrained checkpoints (keraszoo.models.pretrained).
    **{name: RegisteredModel(functools.partial(build_vit_preset, name), tiny=dict(image_size=32, num_layers=1,
                                                                                   num_classes=10))
       for name in VIT_PRESETS},
}


def build_model(name: str, *, tiny: bool = False, **kwargs):
    try:
        registered = MODEL_BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {sorted(MODEL_BUILDERS)}"
        ) from None
    return registered(tiny=tiny, **kwargs)


__all__ = ["FusedBatchNormalization", "build_airbench94", "build_airbench96", "with_flip_tta", "MODEL_BUILDERS", "ModelPair", "RegisteredModel", "build_classifier_pair",
           "build_course_cnn", "build_image_classifier", "build_manual_mlp", "build_mlp", "build_model",
           "build_speedrun_net", "build_vit", "pixel_scaling"]
