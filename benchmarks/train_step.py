"""Steps per second of the lossviz trainer against its strongest peers and against the machine's floor, side by side.

    python benchmarks/train_step.py [--steps 2000] [--batch-size 32] [--rounds 5] [--parts] [--sharpness-only]

For the dense net (sparse-penalty, 3x100, loss from logits) and for policy-value (conv, two heads), all in one
process, interleaved round by round (each round times every entry once, in turn), each entry warmed first (its
compile, its batch size, the trainer's first measurements):

- ``model.fit`` at Keras' defaults (numpy arrays, ``batch_size``);
- ``model.fit`` at Keras' fastest: a ``tf.data`` pipeline, ``steps_per_execution`` equal to lossviz's chunk (40)
  and ``jit_compile=True``;
- the floor: a bare fused loop of the same model, loss and optimizer with no probe at all, compiled as lossviz
  compiles its step (40 steps a call in a ``tf.while_loop``, XLA), returning only the losses;
- the trainer (``Trainer.advance``: the records go to the run's log, as a page's run trains) with the per-term
  probe off, at its default and at every step, the metrics at their default (every-50) and at every-10 (the default
  until issue 31).

It prints the best of the rounds with their spread (min-max), and each ratio to the floor and to Keras at its
fastest. Aims (issue 31, 2 cores): dense net, default settings >= 0.8x the floor and >= 2.5x Keras at its fastest,
probe off >= 0.9x the floor; policy-value, default settings >= 0.75x its floor.

``--parts``: where the trainer spends beyond the floor, per part: each part is taken out of the step in turn (the
held-out metrics, the non-finite counts and their place, the per-layer norms) and the step timed without it; the
records' share is the time of a chunk spent outside the compiled call (building the records, the batch order, the
snapshot). Then the two-branch weighting modes, trainer only, and the cost of the sharpness probe (``sharpness``
off, every-50, every-10; aims, issue 29: every-50 at most 10% slower than off, every-10 at most 35%).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import demos, losses, models, optimizers, settings as config, step  # noqa: E402  (first: TF's env)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from lossviz.demos.demo import Context  # noqa: E402
from lossviz.training import Trainer  # noqa: E402

CHUNK = step.CHUNK
Timed = Callable[[int], int]  # trains about n steps (whole epochs, whole chunks); returns how many it trained


# ----------------------------------------------------------------------------- the entries


def keras_default(model: keras.Model, loss, inputs, targets, batch: int) -> Timed:
    """``model.fit`` on numpy arrays at Keras' defaults."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    n = len(next(iter(inputs.values())))

    per_epoch = n // batch

    def train(steps: int) -> int:
        epochs = max(steps // per_epoch, 1)
        model.fit(inputs, targets, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
        return epochs * per_epoch
    return train


def keras_fastest(model: keras.Model, loss, inputs, targets, batch: int) -> Timed:
    """``model.fit`` on a shuffled, repeated ``tf.data`` pipeline, ``steps_per_execution=CHUNK``, XLA."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, steps_per_execution=CHUNK, jit_compile=True)
    n = len(next(iter(inputs.values())))
    dataset = (tf.data.Dataset.from_tensor_slices((inputs, targets)).shuffle(n, seed=0).repeat()
               .batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

    def train(steps: int) -> int:
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return steps
    return train


def floor(demo_name: str, settings: dict, seed: int = 0) -> Timed:
    """The bare fused loop: the demo's model and loss (its terms, summed), lossviz's optimizer (Keras' Adam math),
    CHUNK steps a call under XLA, called as the trainer calls its step (a concrete function, flat tensors), the state
    as a list of tensors, the losses out; no probe, norm, count or record."""
    demo = demos.get_demo(demo_name)
    with Trainer(demo_name, settings, seed=seed) as t:
        s, data, batch = t.settings, t.data, t.batch
        trained0, fixed0, _, _ = t.compiled.initial_state(seed).parts()
    model = demo.build(s)
    trained_vars, fixed_vars = list(model.trainable_weights), list(model.non_trainable_weights)
    optimizer = optimizers.OPTIMIZERS[s["optimizer"]]
    hp = {k: tf.constant(v, tf.float32) for k, v in demo.hyperparameters(s).items()}
    inputs = {k: tf.constant(v, tf.float32) for k, v in data.inputs.items()}
    targets = {k: tf.constant(v, tf.float32) for k, v in data.targets.items()}
    fixed = [tf.constant(v) for v in fixed0[:len(fixed_vars)]]
    lr = tf.constant(config.effective_lr(demo_name, s), tf.float32)

    def run(trained, slots, idx, first):
        losses_out = tf.TensorArray(tf.float32, size=CHUNK)

        def body(i, trained, slots, losses_out):
            batch_in = {k: tf.gather(v, idx[i]) for k, v in inputs.items()}
            batch_targets = {k: tf.gather(v, idx[i]) for k, v in targets.items()}
            with tf.GradientTape() as tape:
                tape.watch(trained)
                with keras.StatelessScope(state_mapping=list(zip(trained_vars, trained)) + list(zip(fixed_vars, fixed))):
                    out = demo.forward(model, batch_in, True)
                    _, loss = demo.terms(Context(model, out, batch_in, batch_targets, hp, {}, s))
            grads = tape.gradient(loss, trained)
            trained, slots = optimizer.update(grads, trained, slots, lr, first + i - 1)
            return i + 1, list(trained), list(slots), losses_out.write(i, loss)

        _, trained, slots, losses_out = tf.while_loop(lambda i, *_: i < CHUNK, body,
                                                      (0, list(trained), list(slots), losses_out),
                                                      parallel_iterations=1)
        return trained, slots, losses_out.stack()

    specs = [tf.TensorSpec(v.shape, tf.float32) for v in trained_vars]
    compiled = tf.function(run, jit_compile=True).get_concrete_function(
        specs, specs * optimizer.slots_per_variable, tf.TensorSpec((CHUNK, batch), tf.int32),
        tf.TensorSpec((), tf.int32))

    def call(trained, slots, idx, first):  # as the trainer calls its step: flat tensors, no signature matching
        out = compiled._call_flat([*trained, *slots, tf.convert_to_tensor(idx), tf.convert_to_tensor(first)],
                                  compiled.captured_inputs)
        return out[0], out[1], out[2]

    order = np.random.default_rng([seed, 1])
    n = len(data)
    queue = np.empty(0, np.int64)

    def batches():  # shuffled epochs, drop-last, as the trainer draws them
        nonlocal queue
        while len(queue) < CHUNK * batch:
            queue = np.concatenate([queue, order.permutation(n)[: n // batch * batch]])
        idx, queue = queue[:CHUNK * batch], queue[CHUNK * batch:]
        return idx.reshape(CHUNK, batch).astype(np.int32)

    state = {"trained": [tf.constant(v) for v in trained0[:len(trained_vars)]],
             "slots": [tf.constant(v) for v in optimizer.init([tuple(v.shape) for v in trained_vars])], "step": 1}

    def train(steps: int) -> int:
        for _ in range(steps // CHUNK):
            state["trained"], state["slots"], found = call(state["trained"], state["slots"], batches(),
                                                           np.int32(state["step"]))
            state["step"] += CHUNK
            found.numpy()
        return steps // CHUNK * CHUNK
    return train


def on_step(t: Trainer, compiled: step.Step) -> Trainer:
    """The run ``t`` on ``compiled`` instead of the process's step of its structure, from its seed's start."""
    t._compiled = compiled
    t.state = compiled.initial_state(t.seed)
    t.records.configure(compiled.layout.columns, compiled.layout.place)
    return t


def trainer(demo: str, settings: dict, compiled: step.Step | None = None) -> Timed:
    """``Trainer.advance`` of a run, on the process's step of its structure or on ``compiled``."""
    t = Trainer(demo, settings, seed=0)
    if compiled is not None:
        on_step(t, compiled)
    return lambda steps: t.advance(steps)


# ----------------------------------------------------------------------------- the step without one part


class Without(step.Step):
    """The step with one part taken out (``part``): what that part costs is the difference."""

    def __init__(self, demo, settings, part: str):
        super().__init__(demo, settings)
        self.part = part

    def _norms(self, sums):
        if self.part != "norms":
            return super()._norms(sums)
        return tf.constant(0.0), {name: tf.constant(0.0) for name in self.groups}

    def _nonfinite(self, taken, sums, trained):
        if self.part != "nonfinite":
            return super()._nonfinite(taken, sums, trained)
        return tf.constant(0), tf.constant(0)

    def _after_update(self, inp, taken, trained):
        if self.part != "metrics":
            return super()._after_update(inp, taken, trained)
        return step.Carried.unpack(inp.carry.carried, self.layout).metrics, []


def python_share(advance: Timed, compiled: step.Step, steps: int) -> float:
    """The share of ``advance(steps)`` spent outside the compiled call (the records, the batch order, the snapshot)."""
    inner = compiled._fn
    spent = [0.0]

    def timed(*args):
        start = time.perf_counter()
        out = inner(*args)
        out[0].numpy()
        spent[0] += time.perf_counter() - start
        return out
    compiled._fn = timed
    try:
        start = time.perf_counter()
        advance(steps)
        return 1 - spent[0] / (time.perf_counter() - start)
    finally:
        compiled._fn = inner


# ----------------------------------------------------------------------------- measuring


def rounds(entries: dict[str, Timed], steps: int, repeats: int, warm: int = 2 * CHUNK) -> dict[str, list[float]]:
    """Steps per second of each entry, one figure a round; each entry is warmed first (``warm`` steps twice: its
    compile, its batch size, a first measurement of every probe)."""
    for train in entries.values():
        train(warm)
        train(warm)
    rates: dict[str, list[float]] = {name: [] for name in entries}
    for _ in range(repeats):
        for name, train in entries.items():
            start = time.perf_counter()
            done = train(steps)
            rates[name].append(done / (time.perf_counter() - start))
    return rates


def line(name: str, found: list[float], *ratios: tuple[str, list[float]]) -> str:
    best = max(found)
    text = f"  {name:44s} best {best:7.0f} steps/s (spread {min(found):.0f}-{best:.0f})"
    for label, other in ratios:
        text += f"   {best / max(other):5.2f}x {label}"
    return text


def dense_net(batch: int) -> tuple[str, dict, Callable[[], tuple]]:
    settings = {"variant": "logits", "batch_size": batch}

    def peers():
        with Trainer("sparse-penalty", settings, seed=0) as t:
            x, y = t.data.inputs, t.data.targets["y"]
        net = models.sparse_penalty()
        models.initialize(net, 0)
        single = keras.Model(net.inputs, net.get_layer("logit").output)  # the same layers, the logit out
        return single, losses.SparsePenaltyBCE(10.0, 1e-7, from_logits=True), x, y
    return "sparse-penalty", settings, peers


def policy_value(batch: int) -> tuple[str, dict, Callable[[], tuple]]:
    settings = {"batch_size": batch}

    def peers():
        with Trainer("policy-value", settings, seed=0) as t:
            data = t.data
        net = models.policy_value(masked=True)
        models.initialize(net, 0)
        return (net, {"policy": losses.MaskedPolicyCrossEntropy(), "value": "mse"}, data.inputs,
                {"policy": data.targets["pi"], "value": data.targets["z"]})
    return "policy-value", settings, peers


def against_peers(title: str, spec, args) -> None:
    demo, settings, peers = spec
    entries: dict[str, Timed] = {}
    for label, make in (("model.fit, Keras defaults", keras_default), ("model.fit, Keras at its fastest", keras_fastest)):
        model, loss, x, y = peers()
        entries[label] = make(model, loss, x, y, args.batch_size)
    entries["floor: a bare fused XLA loop"] = floor(demo, settings)
    probes = ("off", "every-10", "every")
    for probe in probes:
        entries[f"lossviz, term_grads={probe}"] = trainer(demo, {**settings, "term_grads": probe})
    if "metrics" in config.resolve(demo, settings):  # the held-out metrics' previous default, beside the new one
        for probe in ("off", "every-10"):
            entries[f"lossviz, term_grads={probe}, metrics=every-10"] = trainer(
                demo, {**settings, "term_grads": probe, "metrics": "every-10"})
    rates = rounds(entries, args.steps, args.rounds)
    print(f"{title}: best of {args.rounds} interleaved rounds of {args.steps} steps")
    fastest, bottom = rates["model.fit, Keras at its fastest"], rates["floor: a bare fused XLA loop"]
    for name, found in rates.items():
        if name.startswith("lossviz"):
            print(line(name, found, ("the floor", bottom), ("Keras at its fastest", fastest)))
        else:
            print(line(name, found, ("the floor", bottom)))


def parts(args) -> None:
    """Each part's cost: the step without it, against the whole step, in interleaved rounds."""
    for demo, settings in (("sparse-penalty", {"variant": "logits", "batch_size": args.batch_size, "term_grads": "off"}),
                           ("policy-value", {"batch_size": args.batch_size, "term_grads": "off"})):
        resolved = config.resolve(demo, settings)
        entries = {"the whole step (term_grads=off)": trainer(demo, settings)}
        whole = step.get(demos.get_demo(demo), resolved)
        for part, words in (("metrics", "without the metrics"), ("nonfinite", "without the non-finite counts, place"),
                            ("norms", "without the per-layer norms")):
            if part == "metrics" and not demos.get_demo(demo).metrics_on_eval:
                continue
            entries[words] = trainer(demo, settings, Without(demos.get_demo(demo), resolved, part))
        entries["floor: a bare fused XLA loop"] = floor(demo, settings)
        rates = rounds(entries, args.steps, args.rounds)
        print(f"{demo}, where the step spends beyond the floor (best of {args.rounds} rounds):")
        base = max(rates["the whole step (term_grads=off)"])
        for name, found in rates.items():
            cost = "" if name.startswith(("the whole", "floor")) else f"   the part costs {base and max(found) / base - 1:+.0%}"
            print(line(name, found, ("the floor", rates["floor: a bare fused XLA loop"])) + cost)
        share = python_share(entries["the whole step (term_grads=off)"], whole, args.steps)
        print(f"  {'the records (Python, between calls)':44s} {share:.0%} of the whole step's time")


def compile_times(demo: str) -> str:
    """Seconds to build and compile a fresh step of the demo's default structure, with XLA and plain."""
    times = []
    for xla in (True, False):
        with Trainer(demo, {}, seed=0) as t:
            fresh = step.Step(demos.get_demo(demo), t.settings)  # not the process's cached one
            fresh.xla = xla
            times.append(on_step(t, fresh).warm())
    return f"{demo}: compile with XLA {times[0]:.1f} s, plain trace {times[1]:.1f} s"


SHARPNESS = ("off", "every-50", "every-10")


def print_sharpness_cost(args) -> None:
    print(f"sharpness probe (best of {args.rounds} interleaved rounds; cost: the best's slowdown against off):")
    for demo, settings in (("sparse-penalty", {"variant": "logits", "batch_size": args.batch_size}),
                           ("policy-value", {"batch_size": args.batch_size}),
                           ("edge-of-stability", {"batch_size": "full", "optimizer": "sgd"})):
        entries = {p: trainer(demo, {**settings, "sharpness": p}) for p in SHARPNESS}
        rates = rounds(entries, args.steps, args.rounds, warm=60)  # past the first two measurements
        off = max(rates["off"])
        for p, found in rates.items():
            cost = "" if p == "off" else f"   cost {off / max(found) - 1:+.0%}"
            print(line(f"{demo} sharpness={p}", found) + cost)


def arguments(parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """``--steps``, ``--batch-size`` and ``--rounds`` (and what ``parser`` adds), printed with the machine's cores
    (shared with ``your_code.py``)."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    args.steps = max(args.steps // CHUNK, 1) * CHUNK  # whole chunks, for every entry alike
    print(f"CPU cores: {os.cpu_count()}, batch {args.batch_size}, {args.steps} timed steps an entry a round")
    return args


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sharpness-only", action="store_true", help="only the sharpness probe's cost")
    parser.add_argument("--parts", action="store_true", help="also each part's cost, the weighting modes, the sharpness")
    args = arguments(parser)
    if args.sharpness_only:
        print_sharpness_cost(args)
        return
    against_peers("sparse-penalty (3x100 dense, Adam, from logits)", dense_net(args.batch_size), args)
    against_peers("policy-value (conv, two heads, Adam)", policy_value(args.batch_size), args)
    print(compile_times("sparse-penalty") + "; " + compile_times("policy-value"))
    if not args.parts:
        return
    parts(args)
    print("two-branch, trainer only (term_grads=every-10):")
    modes = {f"alpha={a}": trainer("two-branch", {"alpha": a, "batch_size": args.batch_size})
             for a in (0.5, "trainable", "uncertainty", "gradnorm", "pcgrad")}
    for name, found in rounds(modes, args.steps, args.rounds).items():
        print(line(name, found))
    print_sharpness_cost(args)


if __name__ == "__main__":
    main()
