"""One registry class behind every pluggable family (models, datasets, losses, pruners, attacks).

Design notes (docs/architecture.md): explicit registration with a decorator, a duplicate name is
an error, a miss lists the valid names, and third-party entries are discovered from an
entry-point group per family (``prunekit.models``, ``prunekit.datasets``, ``prunekit.losses``,
``prunekit.pruners``) instead of wildcard-import side effects (the timm pitfall). A builder's
keyword options are its signature: :meth:`Registry.params` reads it, :meth:`Registry.build`
rejects an option the builder cannot take with one line naming it and the valid ones.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Generic, Iterable, TypeVar

__all__ = ["Registry", "RegistryError", "OptionError", "Params", "builder_params", "MODELS",
           "DATASETS", "LOSSES", "ATTACKS", "PRUNERS", "SEARCHERS", "CERTIFIERS"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name. ``str()`` gives a single readable line."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class OptionError(ValueError):
    """Keyword options a builder cannot take (unknown or missing); ``str()`` is one line naming
    the bad option and the valid ones."""


@dataclass(frozen=True)
class Params:
    """The keyword parameters of a builder: ``names`` in signature order (positional-only and
    ``*args`` excluded), ``required`` (no default), ``var_keyword`` (takes ``**kwargs``)."""

    names: tuple[str, ...]
    required: tuple[str, ...]
    var_keyword: bool

    def accepts(self, option: str) -> bool:
        return option in self.names or self.var_keyword

    def problems(self, given: Iterable[str]) -> tuple[list[str], list[str]]:
        """``(unknown, missing)``: given names the builder cannot take, required ones not given."""
        given = list(given)
        unknown = [] if self.var_keyword else [g for g in given if g not in self.names]
        return unknown, [r for r in self.required if r not in given]


def builder_params(obj: Callable[..., Any]) -> Params:
    """:class:`Params` of a function or class (its ``__init__``); honours ``__signature__``."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature: accept anything
        return Params((), (), True)
    names, required, var_kw = [], [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return Params(tuple(names), tuple(required), var_kw)


class Registry(Generic[T]):
    """Name -> builder mapping.

    Example::

        MODELS = Registry("model")

        @MODELS.register("vgg16")
        def vgg16(num_classes: int = 10, **kw) -> nn.Module: ...

        MODELS.build("vgg16", num_classes=10)

    Args:
        kind: what the entries are ("model", "pruner", ...), used in error messages.
        entry_point_group: if given, installed distributions that declare entry points in this
            group are loaded (once, lazily) before any lookup; each entry point's *name* is the
            registry name and its object the builder (or a module that registers itself).

    Two hooks a family may set (``prunekit.models`` sets both):

    * ``adapter(name, obj) -> builder``: applied to every entry-point object before it is
      registered (models: wrap a plain ``nn.Module`` factory with prunekit's Normalize / spec);
    * ``resolver(name) -> builder | None``: consulted for a name that is not registered (models:
      ``torchvision:<name>``); a builder it returns is kept under that name but not listed by
      :meth:`names`. ``resolver_hint`` is appended to the unknown-name error.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Callable[..., T]] = {}
        self._aliases: dict[str, str] = {}
        self._resolved: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = entry_point_group is None
        self._loading = False
        self.adapter: Callable[[str, Any], Callable[..., T]] | None = None
        self.resolver: Callable[[str], Callable[..., T] | None] | None = None
        self.resolver_hint = ""

    # -- registration -------------------------------------------------------------------------
    def register(
        self, name: str, *, aliases: tuple[str, ...] = ()
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``obj`` under ``name`` (and optional aliases)."""

        def deco(obj: Callable[..., T]) -> Callable[..., T]:
            self.add(name, obj, aliases=aliases)
            return obj

        return deco

    def add(self, name: str, obj: Callable[..., T], *, aliases: tuple[str, ...] = ()) -> None:
        """Register ``obj`` imperatively; raises :class:`RegistryError` on a duplicate name."""
        for key in (name, *aliases):
            if not key or not isinstance(key, str):
                raise RegistryError(f"invalid {self.kind} name {key!r}")
            existing = self._entries.get(key) or self._entries.get(self._aliases.get(key, ""))
            if existing is not None and existing is not obj:
                raise RegistryError(f"duplicate {self.kind} name {key!r}: already registered "
                                    f"by {_qualname(existing)}")
        self._entries[name] = obj
        for alias in aliases:
            self._aliases[alias] = name
        # let an object know its canonical name (used in CSV rows and logs)
        try:
            if getattr(obj, "registry_name", None) in (None, ""):
                setattr(obj, "registry_name", name)
        except (AttributeError, TypeError):
            pass

    def remove(self, name: str) -> None:
        """Unregister ``name`` and its aliases (for tests that register temporary entries)."""
        canon = self.canonical(name)
        if self._resolved.pop(canon, None) is not None:
            return
        del self._entries[canon]
        for alias in [a for a, c in self._aliases.items() if c == canon]:
            del self._aliases[alias]

    # -- lookup -------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded or self._loading:
            return
        self._loading = True
        try:
            eps = metadata.entry_points(group=self.entry_point_group)
            for ep in sorted(eps, key=lambda e: e.name):
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken plug-in must not break the toolkit
                    log.warning("could not load %s plug-in %r (%s): %s", self.kind, ep.name,
                                ep.value, exc)
                    continue
                if ep.name in self._entries or ep.name in self._aliases:
                    # already registered by the module import itself (decorator); fine if same
                    if self.get(ep.name) is not obj and callable(obj) and not _is_module(obj):
                        raise RegistryError(f"duplicate {self.kind} name {ep.name!r}: entry point "
                                            f"{ep.value} clashes with {_qualname(self.get(ep.name))}")
                    continue
                if _is_module(obj):
                    continue  # importing the module registered its entries
                self.add(ep.name, self.adapter(ep.name, obj) if self.adapter else obj)
            self._plugins_loaded = True
        finally:
            self._loading = False

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` (resolving aliases); raises on an unknown name."""
        self._load_plugins()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if self._resolve(name) is not None:
            return name
        valid = ", ".join(self.names(aliases=True))
        raise RegistryError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}"
                            f"{self.resolver_hint}")

    def _resolve(self, name: str) -> Callable[..., T] | None:
        if name not in self._resolved and self.resolver is not None and isinstance(name, str):
            obj = self.resolver(name)
            if obj is not None:
                self._resolved[name] = obj
        return self._resolved.get(name)

    def get(self, name: str) -> Callable[..., T]:
        """The registered builder for ``name`` (or an alias)."""
        canon = self.canonical(name)
        return self._entries[canon] if canon in self._entries else self._resolved[canon]

    def params(self, name: str) -> Params:
        """The keyword parameters of ``name``'s builder (its options)."""
        return builder_params(self.get(name))

    def check_options(self, name: str, options: Iterable[str]) -> None:
        """Raise :class:`OptionError` if ``name``'s builder cannot be called with these keyword
        options (an unknown one, or a required one missing)."""
        params = self.params(name)
        options = list(options)
        unknown, missing = params.problems(options)
        valid = ", ".join(params.names) or "(none)"
        if unknown:
            raise OptionError(f"{self.kind} {name!r} has no option(s) {', '.join(unknown)}; "
                              f"valid: {valid}")
        if missing:
            raise OptionError(f"{self.kind} {name!r} needs option(s) {', '.join(missing)}; "
                              f"valid: {valid}")

    def build(self, name: str, /, **kwargs: Any) -> T:
        """Call the builder registered as ``name`` with ``kwargs`` (checked against its
        signature first: :class:`OptionError` instead of a ``TypeError``)."""
        self.check_options(name, kwargs)
        return self.get(name)(**kwargs)

    def names(self, aliases: bool = False) -> list[str]:
        """Sorted canonical names (plus aliases if asked)."""
        self._load_plugins()
        out = sorted(self._entries)
        if aliases:
            out = sorted(out + list(self._aliases))
        return out

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        if name in self._entries or name in self._aliases:
            return True
        try:
            return isinstance(name, str) and self._resolve(name) is not None
        except (RegistryError, OptionError):
            return False

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _is_module(obj: object) -> bool:
    import types

    return isinstance(obj, types.ModuleType)


def _qualname(obj: object) -> str:
    mod = getattr(obj, "__module__", "?")
    return f"{mod}.{getattr(obj, '__qualname__', repr(obj))}"


# The public registries (also exported as ``prunekit.MODELS`` etc.). Entries register themselves
# when their module is imported; ``prunekit/__init__.py`` imports every built-in module
# explicitly, and third-party entries arrive through the families' entry-point groups.
MODELS: Registry = Registry("model", entry_point_group="prunekit.models")
DATASETS: Registry = Registry("dataset", entry_point_group="prunekit.datasets")
LOSSES: Registry = Registry("loss", entry_point_group="prunekit.losses")
ATTACKS: Registry = Registry("attack", entry_point_group="prunekit.attacks")
PRUNERS: Registry = Registry("pruner", entry_point_group="prunekit.pruners")
#: architecture-search methods (prunekit.search.Searcher), e.g. lrnas; plug-ins arrive through
#: the ``prunekit.searchers`` entry-point group exactly as pruners do
SEARCHERS: Registry = Registry("searcher", entry_point_group="prunekit.searchers")
#: certification methods (prunekit.certify.Certifier): ibp, crown-ibp, smoothing; plug-ins
#: through the ``prunekit.certifiers`` entry-point group
CERTIFIERS: Registry = Registry("certifier", entry_point_group="prunekit.certifiers")
