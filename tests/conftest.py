import pytest

from harness.data import load_dataset


@pytest.fixture(scope="session")
def ml100k():
    return load_dataset("ml-100k")


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite TOML to tmp_path and return its path."""
    def _write(text: str, name: str = "s.toml"):
        p = tmp_path / name
        p.write_text(text)
        return p
    return _write


SMALL = """
[suite]
name = "small"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 120
n_items = 80
n_interactions = 2000
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [5, 10]
"""


@pytest.fixture
def small_suite_text():
    return SMALL
