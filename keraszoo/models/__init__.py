"""Model builders: keyword-only functions returning uncompiled Keras models that output logits.

``MODEL_BUILDERS`` maps registered names to builders; ``build_model(name, **kwargs)``
looks one up with a clear error for unknown names.
"""

import functools

from keraszoo.models.classifier import build_image_classifier, pixel_scaling
from keraszoo.models.course_cnn import build_course_cnn
from keraszoo.models.mlp import build_mlp
from keraszoo.models.pretrained import VIT_PRESETS, build_vit_preset

MODEL_BUILDERS = {
    "cifar_cnn": build_course_cnn,  # the course's CIFAR-10 CNN
    "mnist_mlp": functools.partial(build_mlp, input_dim=784, hidden_dim=100, num_classes=10),
    "circles_mlp": functools.partial(build_mlp, input_dim=2, hidden_dim=10, num_classes=2),
    # Standard ViT sizes with the layout of pretrained checkpoints (keraszoo.models.pretrained).
    **{name: functools.partial(build_vit_preset, name) for name in VIT_PRESETS},
}


def build_model(name: str, **kwargs):
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {sorted(MODEL_BUILDERS)}"
        ) from None
    return builder(**kwargs)


__all__ = ["MODEL_BUILDERS", "build_course_cnn", "build_image_classifier", "build_mlp", "build_model",
           "pixel_scaling"]
