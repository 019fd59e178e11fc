"""The Keras loss classes: compile, fit, and save/load with no custom_objects."""

import numpy as np
import keras
import pytest

from lossviz import losses as L
from lossviz import models


def _tiny_regression(out_activation):
    x = keras.Input((3,), name="x")
    y = keras.layers.Dense(1, activation=out_activation, name="out")(x)
    return keras.Model(x, y)


@pytest.mark.parametrize("loss, activation", [
    (L.SparsePenaltyBCE(penalty=5.0, epsilon=1e-6), "sigmoid"),
    (L.SparsePenaltyBCE(penalty=5.0, from_logits=True), None),
    (L.NaiveSparsePenaltyBCE(penalty=3.0), "sigmoid"),
    (L.BatchSwitchPenaltyBCE(penalty=4.0, epsilon=1e-6), "sigmoid"),
    (L.NegativeMSE(), "sigmoid"),
    (L.InverseMSE(epsilon=1e-3), "sigmoid"),
    (L.WeightedBranchLoss("mse", alpha=0.3, branch=2), None),
])
def test_compile_fit_save_load(tmp_path, loss, activation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype("float32")
    y = (rng.random((16, 1)) < 0.3).astype("float32")
    model = _tiny_regression(activation)
    models.initialize(model, 0)
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    expected = float(np.mean(loss.call(y, model(x))))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0, batch_size=16), expected, rtol=1e-5)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0, batch_size=16), expected, rtol=1e-5)


def test_policy_value_model_compiles_with_masked_loss_and_round_trips(tmp_path):
    from lossviz import data

    ds = data.policy_value(seed=1, n=32)
    model = models.policy_value(masked=True)
    models.initialize(model, 0)
    model.compile(optimizer="adam", loss={"policy": L.MaskedPolicyCrossEntropy(), "value": "mse"})
    model.fit(ds.inputs, {"policy": ds.targets["pi"], "value": ds.targets["z"]}, epochs=1, batch_size=16, verbose=0)
    out = model.predict(ds.inputs, verbose=0)
    illegal = ds.inputs["mask"] == 0
    assert np.all(out["policy"][illegal] == -np.inf)
    p = np.asarray(L.masked_softmax(out["policy"], ds.inputs["mask"]))
    assert np.all(p[illegal] == 0.0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / "pv.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(ds.inputs, verbose=0)["value"], out["value"], rtol=1e-6)


def test_weighted_branch_losses_sum_to_the_weighted_loss():
    from lossviz import data

    ds = data.two_branch(seed=0, n=32)
    model = models.two_branch()
    models.initialize(model, 0)
    alpha = 0.3
    model.compile(optimizer="sgd", loss={
        "regression": L.WeightedBranchLoss("mse", alpha, 1),
        "classification": L.WeightedBranchLoss("categorical_crossentropy", alpha, 2)})
    got = model.evaluate(ds.inputs, ds.targets, verbose=0, batch_size=32, return_dict=True)["loss"]
    out = model(ds.inputs)
    l1 = np.asarray(L.mse(ds.targets["regression"], out["regression"]))
    l2 = np.asarray(keras.losses.categorical_crossentropy(ds.targets["classification"], out["classification"]))
    np.testing.assert_allclose(got, np.mean(np.asarray(L.weighted_two_branch(l1, l2, alpha))), rtol=1e-5)
    with pytest.raises(ValueError):
        L.WeightedBranchLoss("mse", alpha=1.2)
