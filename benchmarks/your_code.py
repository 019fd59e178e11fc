"""Steps per second of a file of your own code against the built-in demo it copies, and against ``model.fit``.

    python benchmarks/your_code.py [--steps 2000] [--batch-size 32]

The file (``benchmarks/sparse_logits_file.py``) holds the sparse-penalty loss from logits, with lossviz's net and
data as its ``model`` and ``data``. Printed: the file's run, ``sparse-penalty --set variant=logits`` (both with the
per-term probe off: the file's loss has no terms), and ``model.fit`` on the same net, data and batch with the same
loss (aims, issue 17: >= 0.9x the built-in, >= 1.5x ``model.fit``). Each figure is the best of the interleaved
rounds (``--rounds``), with their spread.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import models  # noqa: E402  (first: it sets TensorFlow's environment)
import keras  # noqa: E402
from keras import ops  # noqa: E402
from lossviz.training import Trainer  # noqa: E402

from train_step import arguments, keras_default, line, rounds, trainer  # noqa: E402

FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sparse_logits_file.py")


def main() -> None:
    args = arguments()
    with Trainer("sparse-penalty", {}, seed=0) as t:
        x, y = t.data.inputs, t.data.targets["y"]
    net = models.sparse_penalty()
    models.initialize(net, 0)
    single = keras.Model(net.inputs, net.get_layer("logit").output)

    def from_logits(y_true, z):
        return -ops.mean(10.0 * y_true * ops.log_sigmoid(z) + (1.0 - y_true) * ops.log_sigmoid(-z), axis=-1)

    rates = rounds({
        f"file ({os.path.basename(FILE)})": trainer(FILE, {"batch_size": args.batch_size}),
        "built-in sparse-penalty, logits": trainer(
            "sparse-penalty", {"variant": "logits", "term_grads": "off", "batch_size": args.batch_size}),
        "model.fit, same net and loss": keras_default(single, from_logits, x, y, args.batch_size),
    }, args.steps, args.rounds)
    (file_label, file_rate), (builtin_label, builtin), (fit_label, fit) = rates.items()
    print(line(file_label, file_rate))
    print(line(builtin_label, builtin) + f"   file / built-in {max(file_rate) / max(builtin):.2f}x")
    print(line(fit_label, fit) + f"   file / model.fit {max(file_rate) / max(fit):.2f}x")


if __name__ == "__main__":
    main()
