"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"), as a factory: gamma and alpha are knobs.

    python -m lossviz train examples/focal.py --set gamma=5 --steps 300 --out focal.csv
    streamlit run app.py -- examples/focal.py

Without ``model`` and ``data`` the file runs on lossviz's sparse-event series (2% positives) and its 3x100 net:
y_pred is the predicted probability.
"""

from keras import ops


def loss(gamma=2.0, alpha=0.25):
    def focal(y_true, y_pred):
        pt = ops.where(y_true > 0.5, y_pred, 1.0 - y_pred)  # the probability of the true class
        weight = ops.where(y_true > 0.5, alpha, 1.0 - alpha)
        return -weight * (1.0 - pt) ** gamma * ops.log(pt)  # unguarded log: NaN once pt reaches 0

    return focal
