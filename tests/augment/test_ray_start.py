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


def test_an_address_where_nothing_listens_is_refused_at_once():
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        moon_ray.reachable(f"127.0.0.1:{port}")
        moon_ray.reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(moon_ray.RayUnreachable, match=f"^cannot reach the Ray cluster at 127.0.0.1:{port} "
                                                      r"\(Connection refused\): start it"):
        moon_ray.reachable(f"127.0.0.1:{port}")
    for left_to_ray in ("auto", "local"):
        moon_ray.reachable(left_to_ray)
