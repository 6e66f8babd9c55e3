"""Batch normalisation whose training step is one fused kernel on TensorFlow.

Keras 3's ``BatchNormalization`` computes the batch moments and the normalisation with a dozen
small ops (means, squares, sums, the tiles of their gradients, and casts around them in mixed
precision): a third of the course CNN's op time in bfloat16 on a CPU
(``docs/records/tf_op_profile_cnn_bn_bf16_keras_bn.txt``). TensorFlow has one kernel for all of it and its
gradient, ``FusedBatchNormV3`` (oneDNN's on CPUs, cuDNN's on GPUs), which Keras 3 no longer uses.
"""

from __future__ import annotations

import keras

# FusedBatchNormV3 refuses a smaller epsilon (cuDNN's limit); such layers keep Keras's ops.
_MIN_FUSED_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="keraszoo")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization``, same options, weights and results, whose training step on
    TensorFlow is ``FusedBatchNormV3`` (the course CNN's bfloat16 step: 3,547 -> 4,563-4,746 images/s,
    docs/performance.md).

    The fused kernel serves 4-D channels-last inputs in training, on one replica (or unsynchronized),
    without mask or renorm; everything else, inference included, is Keras's own code. Moving
    statistics follow Keras's rule, with Keras's biased batch variance (the kernel returns the
    unbiased one).
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        one = tf.ones(inputs.shape[-1:], "float32")
        gamma = tf.cast(self.gamma, "float32") if self.scale else one
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros_like(one)
        # bfloat16 / float16 inputs stay so: the kernel accumulates its statistics in float32.
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // tf.cast(tf.shape(inputs)[-1], tf.int64), "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # unbiased -> biased, as Keras keeps it
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)

    def _fused(self, inputs, training, mask) -> bool:
        if not (training and self.trainable) or mask is not None or self.renorm:
            return False
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return False
        if self.epsilon < _MIN_FUSED_EPSILON:
            return False
        if self.synchronized:  # several replicas need the global batch's moments: Keras's all-reduce
            import tensorflow as tf

            context = tf.distribute.get_replica_context()
            return context is not None and context.num_replicas_in_sync == 1
        return True
