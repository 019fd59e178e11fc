"""What a demo declares: one object holding everything the rest of lossviz asks of a loss family.

Its knobs (with their ranges, kinds and effect), terms and metrics; its model, data and loss; its page (texts,
formula, address, the extra view); its scenarios, the likely cause of a NaN and the check-up's fixes; its curves.
The four built-in families, the formula (``custom``) and a file of your own code are all :class:`Demo` values,
registered in :mod:`lossviz.demos`; nothing else tests a demo's name.

Loss and metric callbacks take one :class:`Context`, inside the compiled step, and return scalars. Nothing here
imports TensorFlow: a family module imports Keras lazily (``lossviz.lazy``), so ``settings`` answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..knobs import Param, TRAINING_KEYS

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """A batch as the loss sees it: the model and its outputs (a flat dict), the batch's inputs and targets, the
    numeric knobs as tensors (``hp``), the loss's own variables (``extra``: alpha, log-variances, GradNorm's
    weights) and the graph-shaping settings."""

    model: Any
    out: Mapping[str, Any]
    inputs: Mapping[str, Any]
    targets: Mapping[str, Any]
    hp: Mapping[str, Any]
    extra: Mapping[str, Any]
    settings: Settings


@dataclass(frozen=True)
class View:
    """The page's extra view below the live charts: ``kind`` names how the dashboard draws it (``board``,
    ``histogram``, ``scatter``, ``trajectory``), over the run's whole data."""

    kind: str
    title: str


@dataclass(frozen=True)
class Page:
    """A demo's page: its heading and texts, and where the navigation lists it (a file of ``pages/`` under a title,
    an icon and an address). ``header`` names a section the dashboard draws above the scenarios (``formula``)."""

    title: str
    problem: str
    latex: str = ""
    nav_title: str = ""
    icon: str = ""
    address: str = ""
    file: str = ""
    view: View | Callable[[Settings], View] | None = None
    header: str | None = None
    diagnosis: str = "Where it was born"  # what the NaN panel calls the demo's own diagnosis
    card: bool = True  # the home page draws its loss's curve in a card of its own (else a link)
    link: str = ""  # the home page's link to it (default: "Open <title>")

    def view_of(self, settings: Settings) -> View | None:
        return self.view(settings) if callable(self.view) else self.view


@dataclass(frozen=True)
class Demo:
    """A loss family, the formula or a file of your own code (see the module's docstring)."""

    name: str
    build: Callable[[Settings], Any]  # the model of the graph-shaping settings
    make_data: Callable[[Settings, int], Any]  # the run's data of a seed (a ``data.Dataset``)
    terms: Callable[[Context], tuple[dict, Any]]  # (dict of scalar terms, total loss)
    metrics: Callable[[Context], dict]  # name -> scalar
    term_names: tuple[str, ...] = ()
    metric_names: tuple[str, ...] | Callable[[Settings], tuple[str, ...]] = ()
    # the settings: knobs (or a function of the settings giving them), the metric a stability map reports by
    # default, the setting a comparison changes first (with B's value), keys resolved before the others
    params: tuple[Param, ...] | Callable[[Settings], tuple[Param, ...]] = ()
    main_metric: str | Callable[[Settings], str] = "loss"
    compare: tuple[str, dict[str, Any]] = ("lr", {})
    first_keys: tuple[str, ...] = ()
    always_written: tuple[str, ...] = ()  # keys a reproducing command and an address always carry
    note: str = ""  # what of the loss is not a knob, and why (an unknown key's message says it)
    numeric_keys: tuple[str, ...] | Callable[[Settings], tuple[str, ...]] | None = None  # default: the live knobs
    metrics_on_eval: bool = False  # metrics on a fixed evaluation sample instead of the batch
    extra_variables: Callable[[Settings], dict[str, float]] = lambda s: {}  # trained with the model
    extra_state: Callable[[Settings], dict[str, float]] = lambda s: {}  # kept by the step, not trained
    alpha: Callable[[Context], Any] | None = None  # the weight of branch 1, recorded as ``alpha``
    # the addends of the total loss, named as the terms (default: the terms themselves); their gradients are what
    # the per-term gradient probe measures, and they sum to the total loss
    parts: Callable[[Mapping[str, Any], Context], dict] | None = None
    shared_layer: str | None = None  # the last layer all terms pass through (GradNorm's W)
    make_eval: Callable[[Settings, int], Any] = lambda s, seed: None  # validation data (None: a data sample)
    call: Callable | None = None  # the model on a flat dict of inputs, giving a flat dict of outputs
    own_initializers: bool = False  # weights from the layers' own initialisers (a file's model)
    symbolic_outputs: Callable[[Any], dict | None] | None = None  # a model's outputs as the loss names them
    learning_rate: Callable[[Settings], float] | None = None  # the optimizer's lr (default: the lr knob)
    # teaching and diagnosis
    page: Page | None = None
    scenarios: tuple = ()  # ``scenarios.Scenario`` values
    cause: Callable[[Settings], str | None] | None = None  # the likely cause of a NaN that these settings explain
    fixes: Mapping[str, tuple[str, dict[str, Any]]] | Callable[[Settings], Mapping] = field(default_factory=dict)
    drowning: tuple[str, str] | None = None  # (term, sentence): said when that term carries every layer's gradient
    diagnose: Callable[[Any, dict], str | None] | None = None  # (run, its first NaN record) -> in the loss's terms
    curves: Callable[[Settings], list] | None = None  # the loss over its own input, and its derivative
    surface: Callable[[Settings], Any] | None = None  # a 2-D surface over two of its inputs
    presets: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # formula presets: name -> (task, text)
    warm: bool = True  # a starting server compiles its default structure
    module: str = ""  # the module that declared it (a sweep's worker imports it to find the demo)

    # -- the graph --------------------------------------------------------------------------------------------

    def forward(self, model, inputs, training: bool):
        """The model's outputs, as a dict of tensors, on a dict of input tensors."""
        return self.call(model, inputs, training) if self.call is not None else model(inputs, training=training)

    def parts_of(self, terms, ctx: Context):
        return self.parts(terms, ctx) if self.parts is not None else dict(terms)

    def metrics_of(self, settings: Settings) -> tuple[str, ...]:
        return self.metric_names(settings) if callable(self.metric_names) else self.metric_names

    def params_of(self, settings: Settings | None) -> tuple[Param, ...]:
        return self.params(settings or {}) if callable(self.params) else self.params

    def hyperparameter_keys(self, settings: Settings) -> tuple[str, ...]:
        """The numbers the loss reads, fed to the compiled step as tensors in this order: the live numeric knobs of
        the run that are not training settings (or the demo's own list)."""
        if self.numeric_keys is not None:
            return self.numeric_keys(settings) if callable(self.numeric_keys) else self.numeric_keys
        return tuple(p.key for p in self.params_of(settings)
                     if p.numeric and p.effect == "live" and p.key not in TRAINING_KEYS and p.when(settings))

    def hyperparameters(self, settings: Settings) -> dict[str, float]:
        """The numbers the loss reads; a knob the run does not have (alpha under a mode) at its default, unread."""
        default = {p.key: p.default for p in self.params_of(settings)}
        return {k: float(settings.get(k, default.get(k, 0.0))) for k in self.hyperparameter_keys(settings)}

    def main_metric_of(self, settings: Settings | None) -> str:
        return self.main_metric(settings or {}) if callable(self.main_metric) else self.main_metric

    def fixes_of(self, settings: Settings) -> Mapping[str, tuple[str, dict[str, Any]]]:
        return self.fixes(settings) if callable(self.fixes) else self.fixes
