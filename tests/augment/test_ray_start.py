"""Starting Ray: worker lines copied to a log or a pipe carry no terminal colour codes."""
import io

import pytest

from augment.core import ray as moon_ray


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdout, stderr, expected", [
    (io.StringIO(), io.StringIO(), "0"), (Terminal(), io.StringIO(), "0"), (Terminal(), Terminal(), None)])
def test_colour_codes_only_on_a_terminal(monkeypatch, stdout, stderr, expected):
    monkeypatch.setenv("RAY_COLOR_PREFIX", "")  # restored (unset) after the test
    monkeypatch.delenv("RAY_COLOR_PREFIX")
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    moon_ray.plain_worker_lines()
    assert moon_ray.os.environ.get("RAY_COLOR_PREFIX") == expected


def test_a_colour_choice_of_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")
    monkeypatch.setattr("sys.stdout", io.StringIO())
    moon_ray.plain_worker_lines()
    assert moon_ray.os.environ["RAY_COLOR_PREFIX"] == "1"
