"""The constructor preamble shared by the method families (:class:`~prunekit.pruning.Pruner`,
:class:`~prunekit.search.Searcher`): the arguments captured as given at construction, one-line
validation of unknown or malformed hyperparameters, and a ``repr`` from :meth:`hparams`.

Capturing the arguments in ``__new__`` (before any ``__init__`` runs) is what lets a pruner
report the hyperparameters it was configured with even when it changes an attribute of the same
name during training (ADMM's ``rho``), without every subclass having to store them.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping

__all__ = ["Hyperparameters"]


class Hyperparameters:
    """Mixin: ``_init_args`` (the constructor arguments as given), :meth:`constructor_arguments`,
    the one-line checks :meth:`_reject_unknown`, :meth:`_number`, :meth:`_check`, and
    ``repr`` = ``Class(k=v, ...)`` over :meth:`hparams`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        # the constructor arguments, as given (hparams() reads them, never the evolving state)
        self._init_args = (args, dict(kwargs))
        return self

    def hparams(self) -> dict[str, Any]:
        """Hyperparameters as plain values (for logs and provenance); default: the constructor
        arguments as given, defaults filled in."""
        return self.constructor_arguments()

    def constructor_arguments(self, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The constructor's named arguments as given at construction, defaults filled in, plain
        values only (others as their ``repr``), without the names in ``skip``. Arguments a
        subclass forwards through ``**kwargs`` are resolved against the parent constructors."""
        args, kwargs = getattr(self, "_init_args", ((), {}))
        inits = [k.__dict__["__init__"] for k in type(self).__mro__
                 if "__init__" in k.__dict__ and k is not object]
        return {k: _plain(v) for k, v in _bind(inits, args, kwargs).items() if k not in skip}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"

    def _reject_unknown(self, hparams: Mapping[str, Any]) -> None:
        """``TypeError`` naming the keyword arguments no constructor took."""
        if hparams:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameter(s) "
                            f"{', '.join(sorted(hparams))}")

    @staticmethod
    def _number(value: Any, message: str) -> float:
        """``float(value)``, or ``ValueError(message)`` if it is not a number."""
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(message) from None

    @staticmethod
    def _check(cond: bool, message: str) -> None:
        """Raise ``ValueError(message)`` unless ``cond`` (one-line hyperparameter errors)."""
        if not cond:
            raise ValueError(message)


def _bind(inits: list[Any], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Named arguments of ``inits[0]`` bound to ``args``/``kwargs`` with defaults; its
    ``**kwargs`` are bound the same way against the next constructors (``inits[1:]``)."""
    if not inits:
        return dict(kwargs)
    try:
        sig = inspect.signature(inits[0])
        bound = sig.bind_partial(None, *args, **kwargs)
    except (TypeError, ValueError):
        return dict(kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out = {**_bind(inits[1:], (), dict(value)), **out}
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            out[name] = value
    return out


def _plain(v: Any) -> Any:
    """``v`` if it is a plain JSON value (or a list/dict of them), else its ``repr``."""
    if isinstance(v, (int, float, str, bool, type(None))):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    return repr(v)
