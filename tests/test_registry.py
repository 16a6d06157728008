"""Registry contract: register / build / names, duplicate and unknown-name errors, plug-ins."""
from __future__ import annotations

import sys
import textwrap

import pytest

import prunekit
from plugin_util import fake_dist
from prunekit.registry import Registry, RegistryError


def test_register_build_names_and_alias() -> None:
    reg: Registry = Registry("widget")

    @reg.register("b", aliases=("bee",))
    def make_b(x: int = 1) -> int:
        return x * 2

    reg.add("a", lambda: "a")
    assert reg.names() == ["a", "b"]
    assert reg.names(aliases=True) == ["a", "b", "bee"]
    assert reg.build("b", x=3) == 6
    assert reg.build("bee", x=4) == 8
    assert reg.canonical("bee") == "b"
    assert "bee" in reg and "c" not in reg
    assert make_b.registry_name == "b"


def test_duplicate_name_is_an_error() -> None:
    reg: Registry = Registry("widget")
    reg.add("a", lambda: 1)
    with pytest.raises(RegistryError, match="duplicate widget name 'a'"):
        reg.add("a", lambda: 2)
    with pytest.raises(RegistryError, match="duplicate"):
        reg.add("z", lambda: 3, aliases=("a",))


def test_unknown_name_lists_valid_names() -> None:
    reg: Registry = Registry("widget")
    reg.add("alpha", lambda: 1)
    reg.add("beta", lambda: 2)
    with pytest.raises(RegistryError) as info:
        reg.build("gamma")
    msg = str(info.value)
    assert "unknown widget 'gamma'" in msg and "alpha, beta" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("registry", ["MODELS", "DATASETS", "LOSSES", "PRUNERS", "ATTACKS"])
def test_public_registries_reject_unknown_names(registry: str) -> None:
    reg = getattr(prunekit, registry)
    with pytest.raises(RegistryError, match="valid"):
        reg.build("no-such-entry")


def test_public_registry_contents() -> None:
    assert {"vgg16", "resnet18", "wrn-28-4", "wrn-34-10"} <= set(prunekit.MODELS.names())
    assert {"cifar10", "cifar100", "svhn", "tinyimagenet", "fashion_mnist", "imagefolder",
            "synthetic"} <= set(prunekit.DATASETS.names())
    assert {"pgd_at", "trades", "mart"} <= set(prunekit.LOSSES.names())
    assert {"d2bc", "dense", "hydra", "hydra-channel", "admm"} <= set(prunekit.PRUNERS.names())
    assert "anas-p" in prunekit.PRUNERS.names(aliases=True)


def test_entry_point_plugins_are_discovered(tmp_path, monkeypatch) -> None:
    """A distribution declaring an entry point in the group is loaded on first lookup."""
    pkg = tmp_path / "my_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        def make():
            return "built by plug-in"
    """))
    fake_dist(tmp_path, "my-plugin-pkg",
              {"test.prunekit.widgets": {"my-widget": "my_plugin_pkg:make"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", entry_point_group="test.prunekit.widgets")
    assert "my-widget" in reg.names()
    assert reg.build("my-widget") == "built by plug-in"
    sys.modules.pop("my_plugin_pkg", None)


def test_broken_plugin_does_not_break_registry(tmp_path, monkeypatch, caplog) -> None:
    fake_dist(tmp_path, "broken", {"test.prunekit.broken": {"bad": "no_such_module:thing"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", entry_point_group="test.prunekit.broken")
    reg.add("ok", lambda: 1)
    assert reg.names() == ["ok"]
    assert "could not load widget plug-in 'bad'" in caplog.text


def test_remove_unregisters_name_and_aliases() -> None:
    reg: Registry = Registry("widget")
    reg.add("a", lambda: 1, aliases=("aa",))
    reg.remove("aa")
    assert reg.names(aliases=True) == []
    with pytest.raises(RegistryError):
        reg.remove("a")


def test_every_family_has_its_entry_point_group() -> None:
    groups = {name: getattr(prunekit, name).entry_point_group
              for name in ("MODELS", "DATASETS", "LOSSES", "PRUNERS")}
    assert groups == {"MODELS": "prunekit.models", "DATASETS": "prunekit.datasets",
                      "LOSSES": "prunekit.losses", "PRUNERS": "prunekit.pruners"}


def test_entry_point_adapter_and_build_checks_options(tmp_path, monkeypatch) -> None:
    """The adapter hook sees every entry-point object (models wrap plain factories with it);
    ``build`` rejects an option the builder cannot take with one line, before calling it."""
    (tmp_path / "widget_pkg.py").write_text("def make(size=1):\n    return ['w'] * size\n")
    fake_dist(tmp_path, "widget-pkg", {"test.prunekit.adapted": {"w": "widget_pkg:make"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", entry_point_group="test.prunekit.adapted")
    seen = []
    reg.adapter = lambda name, obj: seen.append(name) or obj
    assert reg.build("w", size=2) == ["w", "w"] and seen == ["w"]
    assert reg.params("w").names == ("size",)
    with pytest.raises(prunekit.registry.OptionError, match=r"^widget 'w' has no option\(s\) "
                                                            r"sise; valid: size$"):
        reg.build("w", sise=2)
    sys.modules.pop("widget_pkg", None)


def test_resolver_names_are_buildable_but_not_listed() -> None:
    reg: Registry = Registry("widget")
    reg.resolver = lambda name: (lambda: name.upper()) if name.startswith("x:") else None
    reg.resolver_hint = "; or x:<anything>"
    assert "x:a" in reg and reg.build("x:a") == "X:A" and reg.names() == []
    with pytest.raises(RegistryError, match="or x:<anything>"):
        reg.build("y:a")
