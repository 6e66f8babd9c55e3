"""The loss of an untrained classifier (course Q.17): a sanity check before training.

With small random weights the logits are nearly equal, the softmax is nearly
uniform, and the cross-entropy is -log(1/C) = ln(C): 2.303 for 10 classes, with
accuracy near 1/C. A first loss far above ln(C) means badly scaled inputs or
initialisation; far below, a bug such as labels leaking into the inputs.
"""

from __future__ import annotations

import math

import keras

# How far the initial loss may stray from ln(C) before we warn.
RELATIVE_TOLERANCE = 0.25


def chance_level(num_classes: int) -> dict:
    """Loss and accuracy of a classifier that knows nothing: ln(C) and 1/C."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    return {"loss": math.log(num_classes), "accuracy": 1.0 / num_classes}


def chance_level_report(loss: float, accuracy: float, num_classes: int) -> dict:
    """Compares a measured initial loss/accuracy with chance level; ``ok`` says whether it is close."""
    expected = chance_level(num_classes)
    ratio = loss / expected["loss"]
    return {
        "initial_loss": float(loss),
        "initial_accuracy": float(accuracy),
        "chance_loss": expected["loss"],
        "chance_accuracy": expected["accuracy"],
        "loss_ratio": ratio,
        "ok": abs(ratio - 1.0) <= RELATIVE_TOLERANCE,
    }


def evaluate_chance_level(model: keras.Model, dataset) -> dict:
    """Evaluates the (untrained) ``model`` on ``dataset`` batches of (images, labels) against chance."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    total_loss, count = 0.0, 0
    for images, labels in dataset:
        logits = model(images, training=False)
        n = int(labels.shape[0])
        total_loss += float(loss_fn(labels, logits)) * n
        count += n
        accuracy.update_state(labels, logits)
    if not count:
        raise ValueError("the dataset is empty.")
    return chance_level_report(total_loss / count, float(accuracy.result()), int(model.output_shape[-1]))


def format_report(report: dict) -> str:
    verdict = "as expected" if report["ok"] else "FAR FROM CHANCE LEVEL: check input scaling and initialisation"
    return (
        f"untrained loss {report['initial_loss']:.4f} vs ln(C) = {report['chance_loss']:.4f} "
        f"(ratio {report['loss_ratio']:.2f}), accuracy {report['initial_accuracy']:.4f} vs "
        f"1/C = {report['chance_accuracy']:.4f}: {verdict}"
    )
