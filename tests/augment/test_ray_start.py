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


def test_a_dashboard_address_is_named_as_one_not_taken_for_an_unknown_host():
    """`ray job submit` takes http://host:8265; moon run said 'Name or service not known: start it'."""
    for address in ("http://127.0.0.1:8265", "https://ray.example:443"):
        with pytest.raises(moon_ray.RayUnreachable, match=rf"^{address} is a Ray dashboard's address, which `ray job "
                                                          r"submit` takes: moon joins a cluster at its control store, "
                                                          r"host:port \(6379"):
            moon_ray.reachable(address)


def test_a_cluster_that_answers_and_refuses_to_be_joined_names_the_token(monkeypatch, tmp_path):
    """Ray 2.60 turns token authentication on by default; Ray's own error names a failed connection only."""
    import ray

    monkeypatch.setattr(moon_ray, "reachable", lambda address: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6379")

    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(moon_ray.RayUnreachable, match=r"^Failed to connect to Ray cluster at 192\.0\.2\.2:6379: if "
                                                      r"the cluster uses token authentication \(Ray's default\), this "
                                                      r"machine has no token: copy the cluster's ~/\.ray/auth_token"):
        moon_ray.init_ray("192.0.2.2:6379")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 32)
    with pytest.raises(moon_ray.RayUnreachable, match=r"check that this machine's token \(\$RAY_AUTH_TOKEN\) is "
                                                      r"the cluster's"):
        moon_ray.init_ray("192.0.2.2:6379")


CREATION_FAILURE = (
    "The actor died because of an error raised in its creation task, \x1b[36mray::MapWorker(MapBatches(StageChain))"
    ".__init__()\x1b[39m (pid=1, ip=192.0.2.2, actor_id=a1, repr=MapWorker(MapBatches(StageChain)))\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "/x/ray/data/_internal/execution/util.py", line 115, in __init__\n'
    "    super().__init__(*args, **kwargs)\n"
    "OSError: Error no file named model.safetensors found in directory /models/clip.\n")


def test_a_stage_that_cannot_start_on_ray_is_named_with_its_cause_and_no_futile_advice():
    """The run's last line kept only the first line of Ray's error: colour codes, an actor id, no cause, and the
    advice to run the same command again, which fails the same way."""
    from ray.exceptions import ActorDiedError, RayTaskError

    from augment.runner import ray_failure

    class Died(ActorDiedError):
        def __str__(self):
            return CREATION_FAILURE

    assert ray_failure(Died()) == (
        "a stage could not start on the Ray workers: OSError: Error no file named model.safetensors found in "
        "directory /models/clip.; the shards committed so far are kept: fix the stage's options (model paths, "
        "devices) and run the same command again")

    class Failed(RayTaskError):
        def __init__(self):
            pass

        def __str__(self):
            return "ray::Task failed\n  File \"x.py\", line 1\nValueError: bad batch"

    assert ray_failure(Failed()) == (
        "the stages failed on Ray (Failed: ray::Task failed; raised: ValueError: bad batch); the shards committed "
        "so far are kept: run the same command again to resume")


def test_a_stage_that_raised_on_a_worker_is_named_by_its_own_exception_not_ray_datas_wrapper():
    """An image store outage on Ray ended as '... raised: ray.exceptions.UserCodeException: UDF failed to process
    a data block.', which names neither the store nor the image."""
    from ray.exceptions import RayTaskError

    from augment.runner import ray_failure

    class Failed(RayTaskError):
        def __init__(self):
            pass

        def __str__(self):
            return ("ray::MapWorker(MapBatches(StageChain)).submit() (pid=1, ip=192.0.2.2)\n"
                    '  File "/x/augment/imaging/untrusted.py", line 90, in load_image_bytes\n'
                    "augment.core.storage.StorageUnavailable: cannot fetch the image s3://shop/3.jpg now (AWS Error "
                    "NETWORK_CONNECTION during HeadObject operation)\n\nThe above exception was the direct cause of "
                    "the following exception:\n\nray::MapWorker(MapBatches(StageChain)).submit()\n"
                    "ray.exceptions.UserCodeException: UDF failed to process a data block.")

    assert ray_failure(Failed()).endswith(
        "raised: augment.core.storage.StorageUnavailable: cannot fetch the image s3://shop/3.jpg now (AWS Error "
        "NETWORK_CONNECTION during HeadObject operation)); the shards committed so far are kept: run the same command "
        "again to resume")
