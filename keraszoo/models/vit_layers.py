"""Vision Transformer layers written from the course's equations (part 3).

Self-attention for a sequence X (batch, tokens, dim) and one head:

    Q = X W_q,  K = X W_k,  V = X W_v              (batch, tokens, d_k)
    A = softmax(Q K^T / sqrt(d_k))                 (batch, tokens, tokens)
    head = A V

Multi-head attention runs ``num_heads`` heads side by side (d_k = dim / heads),
concatenates them and applies the output projection W_o. The weights are laid
out as in ``keras.layers.MultiHeadAttention`` (query/key/value kernels of shape
(dim, heads, d_k), output kernel (heads, d_k, dim)) so the two can swap weights.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keraszoo")
class PatchEmbedding(layers.Layer):
    """Cuts the image into patch_size x patch_size patches and projects each to hidden_dim.

    A convolution with kernel = stride = patch_size does both at once. When the patch size
    does not divide the image, the last rows and columns that do not fill a whole patch are
    dropped ("valid" padding): 28x28 with patch 11 gives 2x2 patches covering 22x22 pixels.
    """

    def __init__(self, patch_size: int, hidden_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.hidden_dim = patch_size, hidden_dim
        self.projection = layers.Conv2D(hidden_dim, patch_size, strides=patch_size, padding="valid",
                                        name="projection")

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, images):
        patches = self.projection(images)  # (batch, rows, cols, hidden_dim)
        return ops.reshape(patches, (ops.shape(patches)[0], -1, self.hidden_dim))  # (batch, tokens, dim)

    def compute_output_shape(self, input_shape):
        rows, cols = input_shape[1] // self.patch_size, input_shape[2] // self.patch_size
        return (input_shape[0], rows * cols, self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "hidden_dim": self.hidden_dim}


@keras.saving.register_keras_serializable(package="keraszoo")
class ClassTokenPosition(layers.Layer):
    """Prepends a learned class token and adds learned positional embeddings (one per token).

    ``class_token=False`` or ``position_embedding=False`` leave either out: the ablations of
    docs/vit_mnist.md (without positions, attention cannot tell the patches' places apart).
    """

    def __init__(self, class_token: bool = True, position_embedding: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_class_token, self.use_position_embedding = class_token, position_embedding

    def build(self, input_shape):
        tokens, dim = input_shape[1], input_shape[2]
        if self.use_class_token:
            self.class_token = self.add_weight(shape=(1, 1, dim), initializer="zeros", name="class_token")
        if self.use_position_embedding:
            self.position_embedding = self.add_weight(
                shape=(1, tokens + int(self.use_class_token), dim),
                initializer=keras.initializers.RandomNormal(stddev=0.02), name="position_embedding")

    def call(self, patches):
        x = patches
        if self.use_class_token:
            class_tokens = ops.broadcast_to(self.class_token, (ops.shape(patches)[0], 1, ops.shape(patches)[2]))
            x = ops.concatenate([class_tokens, patches], axis=1)
        return x + self.position_embedding if self.use_position_embedding else x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + int(self.use_class_token), input_shape[2])

    def get_config(self):
        return {**super().get_config(), "class_token": self.use_class_token,
                "position_embedding": self.use_position_embedding}


@keras.saving.register_keras_serializable(package="keraszoo")
class MultiHeadSelfAttention(layers.Layer):
    """softmax(Q K^T / sqrt(d_k)) V per head, heads concatenated, then the output projection."""

    def __init__(self, num_heads: int, key_dim: int, dropout_rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.dropout_rate = num_heads, key_dim, dropout_rate
        self.dropout = layers.Dropout(dropout_rate)

    def build(self, input_shape):
        dim = input_shape[-1]
        glorot = keras.initializers.GlorotUniform
        for name in ("query", "key", "value"):
            setattr(self, f"{name}_kernel", self.add_weight(shape=(dim, self.num_heads, self.key_dim),
                                                            initializer=glorot(), name=f"{name}_kernel"))
            setattr(self, f"{name}_bias", self.add_weight(shape=(self.num_heads, self.key_dim),
                                                          initializer="zeros", name=f"{name}_bias"))
        self.output_kernel = self.add_weight(shape=(self.num_heads, self.key_dim, dim), initializer=glorot(),
                                             name="output_kernel")
        self.output_bias = self.add_weight(shape=(dim,), initializer="zeros", name="output_bias")

    def call(self, x, training=False, return_attention_scores=False):
        # (batch, tokens, dim) x (dim, heads, d_k) -> (batch, tokens, heads, d_k)
        q = ops.einsum("btd,dhk->bthk", x, self.query_kernel) + self.query_bias
        k = ops.einsum("btd,dhk->bthk", x, self.key_kernel) + self.key_bias
        v = ops.einsum("btd,dhk->bthk", x, self.value_kernel) + self.value_bias
        scores = ops.einsum("bqhk,bshk->bhqs", q, k) / math.sqrt(self.key_dim)  # (batch, heads, tokens, tokens)
        attention = ops.softmax(scores, axis=-1)
        heads = ops.einsum("bhqs,bshk->bqhk", self.dropout(attention, training=training), v)
        output = ops.einsum("bqhk,hkd->bqd", heads, self.output_kernel) + self.output_bias  # concat + W_o
        return (output, attention) if return_attention_scores else output

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "dropout_rate": self.dropout_rate}


@keras.saving.register_keras_serializable(package="keraszoo")
class TransformerEncoderBlock(layers.Layer):
    """Pre-norm block: x + MHSA(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""

    def __init__(self, num_heads: int, mlp_dim: int, dropout_rate: float = 0.0,
                 layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.mlp_dim = num_heads, mlp_dim
        self.dropout_rate, self.layer_norm_epsilon = dropout_rate, layer_norm_epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {self.num_heads}.")
        self.norm_attention = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm_attention")
        self.attention = MultiHeadSelfAttention(self.num_heads, dim // self.num_heads, self.dropout_rate,
                                                name="attention")
        self.norm_mlp = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm_mlp")
        self.mlp_hidden = layers.Dense(self.mlp_dim, activation="gelu", name="mlp_hidden")
        self.mlp_output = layers.Dense(dim, name="mlp_output")
        self.dropout = layers.Dropout(self.dropout_rate)
        for layer in (self.norm_attention, self.attention, self.norm_mlp):
            layer.build(input_shape)
        self.mlp_hidden.build(input_shape)
        self.mlp_output.build((*input_shape[:-1], self.mlp_dim))

    def call(self, x, training=False, return_attention_scores=False):
        attended, attention = self.attention(self.norm_attention(x), training=training,
                                             return_attention_scores=True)
        x = x + self.dropout(attended, training=training)
        hidden = self.dropout(self.mlp_hidden(self.norm_mlp(x)), training=training)
        x = x + self.dropout(self.mlp_output(hidden), training=training)
        return (x, attention) if return_attention_scores else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate, "layer_norm_epsilon": self.layer_norm_epsilon}
