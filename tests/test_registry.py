"""Registry: names, module:Class, entry points, did-you-mean."""

import pytest

from harness import registry
from harness.errors import UserError


def test_builtins_resolve_and_build():
    for name in ("pop", "random", "itemknn", "ease", "als", "bpr"):
        cls = registry.resolve(name)
        model = registry.build(name, {}, seed=3)
        assert isinstance(model, cls) and model.seed == 3


def test_entry_points_are_listed():
    # the project registers its baselines under the entry-point group as well
    from importlib.metadata import entry_points
    names = {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"pop", "ease", "bpr"} <= names
    assert set(names) <= set(registry.available())


def test_unknown_name_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'itemknn'"):
        registry.resolve("itemkn")


def test_module_class_and_params():
    m = registry.build("tests.plugins:CountingPop", {"bonus": 2.0}, seed=1)
    assert m.bonus == 2.0 and m.seed == 1
    with pytest.raises(UserError, match="did you mean 'bonus'"):
        registry.build("tests.plugins:CountingPop", {"bonu": 2.0})
    with pytest.raises(UserError, match="cannot import module"):
        registry.resolve("no_such_module_xyz:Thing")
    with pytest.raises(UserError, match="lacks fit"):
        registry.resolve("harness.errors:UserError")
