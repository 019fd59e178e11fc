"""Seeded demo data sets, one generator per demo, drawn from ``np.random.default_rng(seed)`` only.

Each returns a :class:`Dataset`: dicts of float32 arrays keyed like the model's inputs and targets, all
with the same first axis. The data have a learnable structure (a hidden "teacher"), not pure noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOARD = (5, 5, 6)
MOVES = 32
TWO_BRANCH_FEATURES = 8
MAX_MSE_FEATURES = 15


@dataclass(frozen=True)
class Dataset:
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, index) -> "Dataset":
        pick = lambda d: {k: v[index] for k, v in d.items()}  # noqa: E731
        return Dataset(pick(self.inputs), pick(self.targets))


def _softmax_rows(scores: np.ndarray, legal: np.ndarray) -> np.ndarray:
    scores = np.where(legal, scores, -np.inf)
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.where(legal, np.exp(scores), 0.0)
    return e / e.sum(axis=1, keepdims=True)


def policy_value(seed: int = 0, n: int = 512, one_hot_share: float = 0.25) -> Dataset:
    """Small AlphaGo Zero-style positions: a 5x5 board with 6 planes, 32 moves, legal-move masks.

    Planes: 0 own stones, 1 opponent stones, 2 last move, 3 to-play, 4-5 random context. Moves 0-24 place a
    stone on an empty cell; moves 25-31 are special moves, each legal on about half of the positions.
    The target ``pi`` is a softmax of a hidden score (own neighbours, centre bonus) over the legal moves,
    spread over several moves as MCTS visit counts are; ``one_hot_share`` of the positions get a one-hot
    ``pi`` (a decisive search). ``z`` in [-1, 1] follows the stone balance.
    """
    rng = np.random.default_rng(seed)
    board = np.zeros((n,) + BOARD, dtype=np.float32)
    cells = rng.random((n, 5, 5))
    board[..., 0] = cells < 0.25
    board[..., 1] = (cells >= 0.25) & (cells < 0.5)
    last = rng.integers(0, 25, size=n)
    board[np.arange(n), last // 5, last % 5, 2] = 1.0
    board[..., 3] = rng.integers(0, 2, size=(n, 1, 1))
    board[..., 4:] = rng.random((n, 5, 5, 2)) < 0.3

    empty = (board[..., 0] + board[..., 1]) == 0
    special = rng.random((n, MOVES - 25)) < 0.5
    legal = np.concatenate([empty.reshape(n, 25), special], axis=1)

    own = np.pad(board[..., 0], ((0, 0), (1, 1), (1, 1)))
    neighbours = own[:, :-2, 1:-1] + own[:, 2:, 1:-1] + own[:, 1:-1, :-2] + own[:, 1:-1, 2:]
    yy, xx = np.mgrid[0:5, 0:5]
    centre = 1.0 - (np.abs(yy - 2) + np.abs(xx - 2)) / 4.0
    cell_score = 1.2 * neighbours + 1.0 * centre + 0.8 * board[..., 4]
    special_score = 0.5 * board[..., 5].sum(axis=(1, 2), keepdims=False)[:, None] / 5.0 - 1.0
    scores = np.concatenate([cell_score.reshape(n, 25), np.repeat(special_score, MOVES - 25, axis=1)], axis=1)
    pi = _softmax_rows(scores, legal)
    one_hot = rng.random(n) < one_hot_share
    best = np.argmax(np.where(legal, scores, -np.inf), axis=1)
    pi[one_hot] = 0.0
    pi[one_hot, best[one_hot]] = 1.0

    balance = board[..., 0].sum(axis=(1, 2)) - board[..., 1].sum(axis=(1, 2))
    z = np.tanh(0.4 * balance + 0.3 * rng.standard_normal(n))
    return Dataset(
        inputs={"board": board, "mask": legal.astype(np.float32)},
        targets={"pi": pi.astype(np.float32), "z": z.astype(np.float32)[:, None]},
    )


def two_branch(seed: int = 0, n: int = 512) -> Dataset:
    """One input, two targets of different shapes: a (n, 1) regression target and a (n, 2) one-hot class."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, TWO_BRANCH_FEATURES)).astype(np.float32)
    w_reg = rng.standard_normal(TWO_BRANCH_FEATURES)
    w_cls = rng.standard_normal(TWO_BRANCH_FEATURES)
    regression = np.sin(x @ w_reg / 2.0) * 2.0 + 0.1 * rng.standard_normal(n)
    label = (x @ w_cls + 0.3 * rng.standard_normal(n)) > 0
    classes = np.stack([~label, label], axis=1)
    return Dataset(
        inputs={"x": x},
        targets={"regression": regression.astype(np.float32)[:, None], "classification": classes.astype(np.float32)},
    )


def _calibrated_offset(shape_logit: np.ndarray, rate: float) -> float:
    """The offset b with mean(sigmoid(shape_logit + b)) == rate (bisection; the mean is monotone in b)."""
    low, high = -40.0, 40.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if np.mean(1.0 / (1.0 + np.exp(-(shape_logit + mid)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def sparse_events(seed: int = 0, n: int = 4096, positive_rate: float = 0.02) -> Dataset:
    """An hourly series of an idle system that gets requests at some hours: ``n`` hours, about
    ``positive_rate`` of them with an event. Events cluster on working-day mornings and afternoons.

    Features (standardised): sin/cos of hour and weekday, a weekend flag, the load of the previous hour
    (noisy) and 9 noise channels, 15 in all as in the question's set-up.
    """
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate must be in (0, 1), got {positive_rate!r}")
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    hour, day = t % 24, (t // 24) % 7
    weekend = (day >= 5).astype(float)
    bumps = np.exp(-0.5 * ((hour - 10) / 1.5) ** 2) + 0.8 * np.exp(-0.5 * ((hour - 15) / 1.5) ** 2)
    shape_logit = 6.0 * bumps * (1.0 - 0.8 * weekend)
    offset = _calibrated_offset(shape_logit, positive_rate)
    events = rng.random(n) < 1.0 / (1.0 + np.exp(-(shape_logit + offset)))
    load = np.roll(bumps, 1) + 0.3 * rng.standard_normal(n)
    features = np.column_stack([
        np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
        np.sin(2 * np.pi * day / 7), np.cos(2 * np.pi * day / 7), weekend, load,
        rng.standard_normal((n, 9)),
    ])
    features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-8)
    return Dataset(inputs={"x": features.astype(np.float32)}, targets={"y": events.astype(np.float32)[:, None]})


def max_mse(seed: int = 0, n: int = 512) -> Dataset:
    """Inputs in R^15 and targets in (0, 1) that a discriminator-like model could fit; the generator is
    trained to move its (sigmoid) output away from them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, MAX_MSE_FEATURES)).astype(np.float32)
    w = rng.standard_normal(MAX_MSE_FEATURES) / np.sqrt(MAX_MSE_FEATURES)
    y = 1.0 / (1.0 + np.exp(-2.0 * (x @ w)))
    return Dataset(inputs={"x": x}, targets={"y": y.astype(np.float32)[:, None]})
