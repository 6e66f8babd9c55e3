"""The course's 2-layer MLP with its forward and backward passes written by hand (part 1).

Forward, for a batch x of shape (B, n_x) and one-hot targets y of shape (B, n_y):

    h~ = x W_h^T + b_h        h = tanh(h~)                 (B, n_h)
    y~ = h W_y^T + b_y        y^ = softmax(y~)             (B, n_y)
    L  = -(1/B) sum_i sum_k y_ik log y^_ik                 (log-softmax via log-sum-exp)

Backward (softmax and cross-entropy simplify to y^ - y):

    delta_y = (y^ - y) / B                                  (B, n_y)
    grad W_y = delta_y^T h        grad b_y = sum_i delta_y
    delta_h = (delta_y W_y) * (1 - h^2)                     (B, n_h)
    grad W_h = delta_h^T x        grad b_h = sum_i delta_h

and plain SGD: theta <- theta - lr * grad theta. The optional squared-error loss
L = (1/B) sum_i ||y^_i - y_i||^2 (course Q.8-Q.9) keeps the softmax Jacobian:
delta_y = y^ * (g - sum_k g_k y^_k) with g = 2 (y^ - y) / B. The optional linear hidden
layer (h = h~, course Q.3: why a non-linearity) has derivative 1 in place of 1 - h^2.

``ManualMLP`` is a Keras model whose ``train_step`` applies these gradients, so it
trains with ``fit`` (progress bar, callbacks, the shared trainer's resume and record)
while autodiff is never used.
"""

from __future__ import annotations

import keras
import tensorflow as tf

LOSSES = ("cross_entropy", "squared_error")
ACTIVATIONS = ("tanh", "linear")


@keras.saving.register_keras_serializable(package="keraszoo")
class ManualMLP(keras.Model):
    """tanh hidden layer, softmax output; parameters named as in the course (W_h, b_h, W_y, b_y)."""

    def __init__(
        self,
        *,
        input_dim: int,
        hidden_dim: int,
        num_classes: int,
        loss: str = "cross_entropy",
        input_scale: float = 1.0,
        activation: str = "tanh",
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError("ManualMLP's forward and hand-written backward passes are TensorFlow code: run it with "
                             "KERAS_BACKEND=tensorflow (the Keras MLP, --implementation keras, runs on any backend).")
        super().__init__(**kwargs)
        if keras.config.dtype_policy().compute_dtype != "float32" and "dtype" not in kwargs:
            raise ValueError("ManualMLP's hand-written gradients are float32 (or float64) math: "
                             "run it without --mixed-precision.")
        if min(input_dim, hidden_dim) < 1 or num_classes < 2:
            raise ValueError("input_dim and hidden_dim must be >= 1 and num_classes >= 2.")
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {LOSSES}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: expected one of {ACTIVATIONS}.")
        self.input_dim, self.hidden_dim, self.num_classes = input_dim, hidden_dim, num_classes
        self.loss_name, self.input_scale, self.activation = loss, input_scale, activation

    def build(self, input_shape=None):
        # One example's raw shape, e.g. (28, 28, 1) for uint8 digits: what as_functional takes.
        self.example_shape = tuple(input_shape[1:]) if input_shape is not None else (self.input_dim,)
        glorot = keras.initializers.GlorotUniform  # the same default as keras.layers.Dense
        self.W_h = self.add_weight(shape=(self.hidden_dim, self.input_dim), initializer=glorot(), name="W_h")
        self.b_h = self.add_weight(shape=(self.hidden_dim,), initializer="zeros", name="b_h")
        self.W_y = self.add_weight(shape=(self.num_classes, self.hidden_dim), initializer=glorot(), name="W_y")
        self.b_y = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="b_y")
        super().build(input_shape)

    def as_functional(self, name: str | None = None) -> keras.Model:
        """This model as a functional one (raw input -> logits, the same weights): what export and the
        analysis tools take. Images (rank 3) come in as uint8, points as float32 ``features``."""
        if not self.built:
            raise ValueError("build the ManualMLP first (model.build((None, *example_shape))).")
        is_image = len(self.example_shape) == 3
        inputs = keras.Input(self.example_shape, dtype="uint8" if is_image else "float32",
                             name="images" if is_image else "features")
        return keras.Model(inputs, self(inputs), name=name or self.name)

    @property
    def parameters(self) -> list:
        return [self.W_h, self.b_h, self.W_y, self.b_y]

    def features(self, inputs):
        """Raw inputs (e.g. uint8 digits) -> (B, input_dim) floats in the model's dtype."""
        x = tf.cast(inputs, self.compute_dtype) * tf.cast(self.input_scale, self.compute_dtype)
        return tf.reshape(x, (-1, self.input_dim))

    def forward(self, x):
        h = tf.matmul(x, self.W_h, transpose_b=True) + self.b_h  # (B, n_h)
        if self.activation == "tanh":
            h = tf.tanh(h)
        logits = tf.matmul(h, self.W_y, transpose_b=True) + self.b_y  # (B, n_y)
        return h, logits

    def call(self, inputs, training=False):
        return self.forward(self.features(inputs))[1]

    def loss_from_logits(self, logits, y_onehot):
        batch = tf.cast(tf.shape(logits)[0], logits.dtype)
        if self.loss_name == "cross_entropy":
            # log y^ = y~ - logsumexp(y~): no exp overflow, no log(0).
            log_probabilities = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
            return -tf.reduce_sum(y_onehot * log_probabilities) / batch
        return tf.reduce_sum(tf.square(tf.nn.softmax(logits) - y_onehot)) / batch

    def loss_and_gradients(self, x, y_onehot):
        """Mean loss, [grad W_h, grad b_h, grad W_y, grad b_y] and logits, by the equations above."""
        h, logits = self.forward(x)
        y_hat = tf.nn.softmax(logits)
        batch = tf.cast(tf.shape(x)[0], x.dtype)
        if self.loss_name == "cross_entropy":
            delta_y = (y_hat - y_onehot) / batch
        else:
            g = 2.0 * (y_hat - y_onehot) / batch
            delta_y = y_hat * (g - tf.reduce_sum(g * y_hat, axis=1, keepdims=True))
        grad_W_y = tf.matmul(delta_y, h, transpose_a=True)  # (n_y, n_h)
        grad_b_y = tf.reduce_sum(delta_y, axis=0)
        delta_h = tf.matmul(delta_y, self.W_y)  # (B, n_h)
        if self.activation == "tanh":
            delta_h = delta_h * (1.0 - tf.square(h))
        grad_W_h = tf.matmul(delta_h, x, transpose_a=True)  # (n_h, n_x)
        grad_b_h = tf.reduce_sum(delta_h, axis=0)
        loss = self.loss_from_logits(logits, y_onehot)
        return loss, [grad_W_h, grad_b_h, grad_W_y, grad_b_y], logits

    def _update_metrics(self, loss, labels, logits):
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(labels, logits)
        return self.get_metrics_result()

    def train_step(self, data):
        inputs, labels = data[:2]
        if not isinstance(self.optimizer, keras.optimizers.SGD) or self.optimizer.momentum:
            raise ValueError("ManualMLP implements plain SGD by hand: compile it with "
                             "keras.optimizers.SGD(learning_rate) and no momentum.")
        x = self.features(inputs)
        y_onehot = tf.one_hot(labels, self.num_classes, dtype=x.dtype)
        loss, gradients, logits = self.loss_and_gradients(x, y_onehot)
        # The SGD step p <- p - lr * grad, through the optimizer (plain SGD does exactly that) so that
        # under a tf.distribute strategy the replicas' gradients are reduced before it: the optimizer
        # sums them, and each replica's gradient is the mean over its share of the global batch,
        # hence the division by the number of replicas (Keras scales its own losses the same way).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # The updates must wait for every read of the parameters in the backward pass (W_y in
        # delta_h is read again there): without this TensorFlow sometimes ran an assignment first
        # and the step used the new W_y (2-7 of 40 identical 100-step float64 runs ended up to 6e-4
        # off the Keras MLP; 0 of 40 with it: benchmarks/manual_mlp_determinism.py, in git at 47341c5).
        with tf.control_dependencies([loss, logits, *gradients]):
            self.optimizer.apply_gradients(
                [(gradient / replicas, parameter) for gradient, parameter in zip(gradients, self.parameters)])
        return self._update_metrics(loss, labels, logits)

    def test_step(self, data):
        inputs, labels = data[:2]
        x = self.features(inputs)
        logits = self.forward(x)[1]
        loss = self.loss_from_logits(logits, tf.one_hot(labels, self.num_classes, dtype=x.dtype))
        return self._update_metrics(loss, labels, logits)

    def set_from_keras(self, mlp: keras.Model) -> None:
        """Copies the weights of ``build_mlp``'s model (Keras stores the transposed kernels)."""
        hidden, logits = mlp.get_layer("hidden"), mlp.get_layer("logits")
        kernel_h, bias_h = hidden.get_weights()
        kernel_y, bias_y = logits.get_weights()
        for parameter, value in zip(self.parameters, (kernel_h.T, bias_h, kernel_y.T, bias_y)):
            parameter.assign(value)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "num_classes": self.num_classes,
            "loss": self.loss_name,
            "input_scale": self.input_scale,
            "activation": self.activation,
        }



def build_manual_mlp(*, example_shape: tuple[int, ...], hidden_dim: int, num_classes: int,
                     loss: str = "cross_entropy", name: str = "manual_mlp") -> keras.Model:
    """The hand-written MLP as a functional model: raw uint8 images (pixels scaled by 1/255 inside)
    or float feature vectors in, logits out. Train ``model.get_layer(name)``, the ManualMLP."""
    input_dim = 1
    for size in example_shape:
        input_dim *= size
    mlp = ManualMLP(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=num_classes, loss=loss,
                    input_scale=1 / 255 if len(example_shape) == 3 else 1.0, name=name)
    mlp.build((None, *example_shape))
    return mlp.as_functional(name=name)
