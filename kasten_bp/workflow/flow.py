"""Steps with typed inputs and outputs, deferred actions, and the flow that checks their
wiring when it is built.

Kanister's model: a function declares the arguments it requires and the outputs it gives;
a missing input is an error when the flow is built, not a KeyError mid-backup. TaskFlow's:
`undo` receives the failure. Kanister's deferPhase: what puts the mirror back is a
*deferred action*, registered (and journaled) by the step that took the mirror down, and it
runs whatever happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from kasten_bp.errors import KastenBpError

if TYPE_CHECKING:
    from kasten_bp.workflow.engine import RunContext


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Nothing(Model):
    """A step that needs, plans or gives nothing."""


N = TypeVar("N", bound=BaseModel)
P = TypeVar("P", bound=BaseModel)
G = TypeVar("G", bound=BaseModel)
A = TypeVar("A", bound=BaseModel)


class Deferral(Model):
    """A deferred action a step registers before it acts: its name and arguments."""

    action: str
    args: dict[str, Any]


class Step(Generic[N, P, G]):
    """One step of a run.

    `plan` computes what `undo` and the deferred actions need; it is journaled before `do`
    acts, so a crash in the middle of `do` can still be cleaned up. Fields of `plans` and
    `gives` become inputs of later steps, by name. `Step[Needs, Plans, Gives]` sets the
    three models.
    """

    name: ClassVar[str]
    needs: type[N]
    plans: type[P]
    gives: type[G]
    # Names of the deferred actions `defer` may register (checked when the flow is built).
    defers: ClassVar[tuple[str, ...]] = ()
    # Once this step is done, the backup is kept whatever fails later.
    keeps_backup: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        models = _models_of(cls, Step)
        if models:
            cls.needs, cls.plans, cls.gives = models

    def plan(self, ctx: RunContext, needs: N) -> P:
        return self.plans()

    def defer(self, needs: N, plan: P) -> list[Deferral]:
        return []

    def do(self, ctx: RunContext, needs: N, plan: P) -> G:
        raise NotImplementedError(f"step {self.name} does nothing")

    def undo(self, ctx: RunContext, needs: N, plan: P, failure: BaseException | None) -> None:
        """Undo destructive partial work only (idempotent); `failure` is what went wrong,
        None when a crashed run is rolled back."""
        return None


class DeferredAction(Generic[A]):
    """Puts something back; always runs (success, failure, crash recovery). Idempotent."""

    name: ClassVar[str]
    args: type[A]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        models = _models_of(cls, DeferredAction)
        if models:
            (cls.args,) = models

    def run(self, ctx: RunContext, args: A) -> None:
        raise NotImplementedError(f"deferred action {self.name} does nothing")


AnyStep = Step[Any, Any, Any]


def _models_of(cls: type, generic: type) -> tuple[Any, ...]:
    """The models a subclass names in `Step[...]` / `DeferredAction[...]`, if concrete."""
    for base in getattr(cls, "__orig_bases__", ()):
        if get_origin(base) is generic:
            args = get_args(base)
            if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
                return args
    return ()


class FlowError(KastenBpError):
    """A flow whose steps are wired wrongly: a bug, found when the flow is built."""

    exit_code = 3


def required_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if info.is_required()}


@dataclass
class Flow:
    """The steps of one kind of run, then (after the deferred actions) its checks."""

    inputs: type[BaseModel]
    steps: Sequence[AnyStep]
    checks: Sequence[AnyStep] = ()
    deferred: Sequence[DeferredAction[Any]] = ()
    by_name: dict[str, AnyStep] = field(init=False)
    actions: dict[str, DeferredAction[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.all_steps}
        self.actions = {a.name: a for a in self.deferred}
        if len(self.by_name) != len(self.all_steps):
            raise FlowError("a flow names a step twice")
        given: dict[str, str] = {name: "the run's inputs" for name in self.inputs.model_fields}
        for step in self.all_steps:
            missing = sorted(required_fields(step.needs) - set(given))
            if missing:
                raise FlowError(
                    f"step {step.name} needs {', '.join(missing)}, which no earlier step gives"
                )
            for action in step.defers:
                if action not in self.actions:
                    raise FlowError(f"step {step.name} defers unknown action {action}")
            for model in (step.plans, step.gives):
                for name in model.model_fields:
                    if name in given:
                        raise FlowError(
                            f"step {step.name} gives {name}, already given by {given[name]}"
                        )
                    given[name] = f"step {step.name}"

    @property
    def all_steps(self) -> list[AnyStep]:
        return [*self.steps, *self.checks]

    def step(self, name: str) -> AnyStep:
        return self.by_name[name]
