"""The demo models, and seeded (re-)initialisation of their weights from a numpy generator.

Keras' own initialisers draw from a process-wide seed; Streamlit serves every browser session from one
process, so lossviz initialises weights itself with ``np.random.default_rng(seed)`` (Glorot-uniform
kernels, zero biases), which is thread-safe and lets one built model be reused for many runs.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers

from . import data
from .losses import LegalMoveMask


def policy_value(masked: bool = True) -> keras.Model:
    """The small AlphaGo Zero network of the question: conv 10@2x2, 2x2 max-pool, then a policy head
    (the flat features joined with the legal-move mask, 2x100 ReLU, 32 logits) and a value head
    (2x100 ReLU, tanh). With ``masked`` the policy logits pass through :class:`LegalMoveMask`."""
    board = keras.Input(shape=data.BOARD, name="board")
    mask = keras.Input(shape=(data.MOVES,), name="mask")
    x = layers.Conv2D(10, 2, activation="relu", name="conv")(board)
    x = layers.MaxPooling2D(2, name="pool")(x)
    flat = layers.Flatten(name="flatten")(x)
    h = layers.Concatenate(name="join_mask")([flat, mask])
    h = layers.Dense(100, activation="relu", name="policy_1")(h)
    h = layers.Dense(100, activation="relu", name="policy_2")(h)
    logits = layers.Dense(data.MOVES, name="policy_logits")(h)
    if masked:
        logits = LegalMoveMask(name="policy")([logits, mask])
    else:
        logits = layers.Identity(name="policy")(logits)
    v = layers.Dense(100, activation="relu", name="value_1")(flat)
    v = layers.Dense(100, activation="relu", name="value_2")(v)
    v = layers.Dense(1, activation="tanh", name="value")(v)
    return keras.Model({"board": board, "mask": mask}, {"policy": logits, "value": v}, name="policy_value")


def two_branch() -> keras.Model:
    """One input, a shared trunk, a 1-unit regression head and a 2-unit (softmax) classification head."""
    x_in = keras.Input(shape=(data.TWO_BRANCH_FEATURES,), name="x")
    h = layers.Dense(32, activation="relu", name="trunk")(x_in)
    r = layers.Dense(16, activation="relu", name="regression_hidden")(h)
    r = layers.Dense(1, name="regression")(r)
    c = layers.Dense(16, activation="relu", name="classification_hidden")(h)
    c = layers.Dense(2, activation="softmax", name="classification")(c)
    return keras.Model({"x": x_in}, {"regression": r, "classification": c}, name="two_branch")


def sparse_penalty(features: int = 15) -> keras.Model:
    """The question's 3x100 ReLU net with a sigmoid output; the pre-activation is an output too, for the
    loss computed from logits."""
    x_in = keras.Input(shape=(features,), name="x")
    h = x_in
    for i in range(3):
        h = layers.Dense(100, activation="relu", name=f"dense_{i + 1}")(h)
    logit = layers.Dense(1, name="logit")(h)
    p = layers.Activation("sigmoid", name="probability")(logit)
    return keras.Model({"x": x_in}, {"logit": logit, "probability": p}, name="sparse_penalty")


def max_mse(features: int = data.MAX_MSE_FEATURES) -> keras.Model:
    """The question's generator: Dense(50, sigmoid) then Dense(1, sigmoid)."""
    x_in = keras.Input(shape=(features,), name="x")
    h = layers.Dense(50, activation="sigmoid", name="hidden")(x_in)
    y = layers.Dense(1, activation="sigmoid", name="output")(h)
    return keras.Model({"x": x_in}, {"y": y}, name="generator")


def glorot_uniform(rng: np.random.Generator, shape) -> np.ndarray:
    """Glorot & Bengio (2010) uniform: limit sqrt(6 / (fan_in + fan_out)), conv kernels included."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in = (shape[-2] if len(shape) > 1 else shape[-1]) * receptive
    fan_out = shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_values(model: keras.Model, seed: int, own: bool = False) -> list[np.ndarray]:
    """New values of ``model.weights``, in order: every kernel Glorot-uniform and every bias zero, drawn from
    ``default_rng(seed)`` in layer order (the model's variables are not touched). With ``own`` (a model of your
    own code), each weight from its layer's own initialiser (``kernel_initializer``, ``gamma_initializer``,
    ``moving_variance_initializer``, ...) seeded by ``seed`` and the weight's place, where the layer has one."""
    if own:
        owners = {id(v): layer for layer in model._flatten_layers(include_self=True)
                  for v in layer._trainable_variables + layer._non_trainable_variables}
        return [_own_initial(w, owners.get(id(w)), seed, i) for i, w in enumerate(model.weights)]
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        values.append(glorot_uniform(rng, shape) if w.path.endswith("kernel") else np.zeros(shape, np.float32))
    return values


def _own_initial(variable, layer, seed: int, index: int) -> np.ndarray:
    """A weight's start from its layer's initialiser, with a seed of its own (stateless: thread-safe); without
    one, Glorot-uniform kernels, ones for gamma and a moving variance, zeros for the rest."""
    shape = tuple(variable.shape)
    name = variable.name
    found = getattr(layer, f"{name}_initializer", None) if layer is not None else None
    if found is None:
        rng = np.random.default_rng([seed, index])
        if name in ("kernel", "embeddings", "recurrent_kernel") or name.endswith("kernel"):
            return glorot_uniform(rng, shape)
        return (np.ones(shape, np.float32) if name in ("gamma", "moving_variance") else np.zeros(shape, np.float32))
    config = found.get_config()
    if "seed" in config:  # a random initialiser: its own seed (a constant one draws nothing)
        found = type(found).from_config({**config, "seed": int(seed) * 1000 + index})
    return np.asarray(found(shape, dtype="float32"), np.float32)


def initialize(model: keras.Model, seed: int) -> None:
    """Assign :func:`initial_values` to the model's own weights (for ``model.fit`` beside the trainer)."""
    for w, value in zip(model.weights, initial_values(model, seed)):
        w.assign(value)


def layer_of(variable) -> str:
    """The layer name of a weight: ``"policy_1/kernel"`` -> ``"policy_1"``."""
    return variable.path.split("/")[0]
