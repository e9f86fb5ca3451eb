"""Local paths and s3:// URIs behind one small API, with atomic object writes.

Everything the pipeline reads or writes goes through here, so local runs and S3 runs share one code path and
one set of guarantees:
- `write_atomic` makes an object visible whole or not at all: locally a temp file in the same directory
  (`.name.tmp-*`, ignored by pyarrow and Ray readers) that is fsynced and renamed; on S3 a single PUT (or a
  completed multipart upload), which S3 exposes atomically.
- `append_line` appends one record with O_APPEND under a POSIX record lock (local), the commit point of the
  manifest: writers on several machines sharing the folder over NFS append whole lines, one after another.
- S3 credentials come only from the standard AWS chain (environment, profile, instance role); an endpoint
  override comes from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. Nothing here logs or stores a credential.
- Transient S3 errors (503 SlowDown, resets) are retried by the AWS SDK's standard retry strategy.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import posixpath
import re
import shutil
import socket
import stat
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pyarrow.fs as pafs

S3_RETRY_ATTEMPTS = 8

log = logging.getLogger(__name__)


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(base: str, *parts: str) -> str:
    """`parts` under `base`. An s3:// base must name a bucket: `s3://` alone is a ValueError, never the local
    path `s3:/...` that joining it as a path would give."""
    if is_s3(base):
        if not base[len("s3://"):].partition("/")[0]:
            raise ValueError(f"not an s3 URI: {base!r} names no bucket")
        return base.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return f"s3://{bucket}/{posixpath.dirname(key)}".rstrip("/")
    return str(Path(uri).parent)


class AddressError(ValueError):
    """An s3:// address moon cannot take as written (a `?` or `#` in it, an empty path component): one line."""


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; a ValueError when it is not one or names no bucket (`s3://`, `s3:///key`), an
    AddressError when its key holds `?` or `#` (a URL parser cuts the key there: every file of a run went to one
    object) or an empty path component (`runs//x`, which Arrow refuses)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3 URI: {uri!r}" + (" names no bucket" if parsed.scheme == "s3" else ""))
    if "?" in uri or "#" in uri:
        raise AddressError(f"{uri}: a '?' or '#' in an s3:// address is not supported (it would be taken for a URL "
                           "query or fragment); name the prefix without them")
    key = parsed.path.lstrip("/")
    if "//" in key.rstrip("/"):
        raise AddressError(f"{uri}: an empty path component ('//') in an s3:// address is not supported; name the "
                           "prefix without it")
    return parsed.netloc, key


@functools.lru_cache(maxsize=4)
def _s3_filesystem(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    # allow_delayed_open: an object closed before its first part is full goes up as one PutObject (commit records,
    # cache entries, variant images), not a multipart upload's three requests; a write's errors come at its close.
    kwargs = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_RETRY_ATTEMPTS),
              "allow_delayed_open": True}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        kwargs["scheme"] = urlparse(endpoint).scheme or "https"
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


# The cached S3 filesystems go before pyarrow finalizes its S3 support at exit: an S3 client destroyed after that
# may crash the interpreter on its way out. atexit runs handlers last-registered first, and pyarrow.fs registered
# its finalizer when this module imported it.
atexit.register(_s3_filesystem.cache_clear)


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class StorageUnavailable(OSError):
    """A store that could not be reached, or that answered it cannot serve now, after the retries (storage
    .unavailable): the work that needed it stops, to be done again, instead of recording good data as bad (an image
    that could not be fetched quarantined as unreadable for good)."""


# Arrow's words for an S3 request that failed for want of the store, not for what was asked: the network, a store
# that is overloaded or failing (HTTP 5xx).
_UNAVAILABLE = re.compile(r"AWS Error (NETWORK_CONNECTION|SLOW_DOWN|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|"
                          r"REQUEST_TIMEOUT|THROTTLING)|HTTP status 5\d\d")
_UNAVAILABLE_ERRNOS = frozenset({errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH,
                                 errno.ENETUNREACH, errno.ENETDOWN, errno.ESTALE})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the store could not serve the request now (the network, an overloaded or failing S3, a
    stale NFS handle), rather than what is at the address (missing, forbidden, damaged)."""
    return isinstance(exc, OSError) and (exc.errno in _UNAVAILABLE_ERRNOS or bool(_UNAVAILABLE.search(str(exc))))


def unreachable_hint(exc: BaseException) -> str:
    """What to check when `exc` is Arrow's S3 error for a store that could not be reached (after its retries),
    else ''. Arrow names the key and the curl error, not the endpoint it tried."""
    if "AWS Error NETWORK_CONNECTION" not in str(exc):
        return ""
    where = s3_endpoint() or "AWS S3 (no AWS_ENDPOINT_URL set)"
    return f"; S3 at {where} could not be reached: check the endpoint, the network and any proxy"


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or s3:// URI."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        fs = _s3_filesystem(s3_endpoint(), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
        return fs, f"{bucket}/{key}".rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).absolute())


def not_a_folder(uri: str) -> str | None:
    """Why a local `uri` cannot be a folder, to follow its name in a message ("is a file", "is under the file
    /x"), or None when it can be one (file_in_the_way)."""
    blocking = file_in_the_way(uri)
    if blocking is None:
        return None
    return "is a file" if blocking == Path(uri) else f"is under the file {blocking}"


def file_in_the_way(uri: str) -> Path | None:
    """The file that stands where a local folder `uri` should be: `uri` itself or one of its parents (the nearest
    existing one decides). None when there is none, when it cannot be told, and for s3:// (prefixes are not files)."""
    if is_s3(uri):
        return None
    path = Path(uri)
    for folder in (path, *path.parents):
        try:
            if folder.is_file():
                return folder
            if folder.is_dir():
                return None
        except OSError:  # unreadable: whatever writes there says why
            return None
    return None


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def holds(folder: str, uri: str) -> bool:
    """Whether `uri` is the folder `folder` or lies under it (local paths resolved through symlinks)."""
    if is_s3(folder) != is_s3(uri):
        return False
    if is_s3(folder):
        outer, inner = folder[len("s3://"):].rstrip("/"), uri[len("s3://"):].rstrip("/")
    else:
        outer, inner = os.path.realpath(folder), os.path.realpath(uri)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def size(uri: str) -> int:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).size


BODY_READ_ATTEMPTS = 3  # an S3 object whose body is cut off mid-read (the SDK retries requests, not bodies)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    for attempt in range(1, BODY_READ_ATTEMPTS + 1):
        try:
            with fs.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            raise
        except OSError:
            if not is_s3(uri) or attempt == BODY_READ_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # the last attempt returns or raises


def sha256(uri: str) -> str:
    """The sha256 hex digest of a file's bytes, read a chunk at a time (a shard of any size, local or on S3)."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Files directly under a directory/prefix, sorted, skipping hidden and underscore names."""
    return [join(uri, name) for name in list_names(uri, suffix)]


def list_names(uri: str, suffix: str = "") -> list[str]:
    """The names (not URIs) of `list_files`: a folder of 100,000s of files listed without a path object each."""
    return sorted(list_sizes(uri, suffix))


def list_sizes(uri: str, suffix: str = "") -> dict[str, int]:
    """The size of each file of `list_names`, by name: one listing (on S3, a LIST request per 1,000 objects)."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    sizes = {}
    for entry in info:
        base = posixpath.basename(entry.path)
        if entry.type == pafs.FileType.File and base.endswith(suffix) and not base.startswith((".", "_")):
            sizes[base] = entry.size
    return sizes


def makedirs(uri: str) -> None:
    if not is_s3(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)


def create_exclusive(uri: str, data: bytes) -> bool:
    """Write `data` at `uri` only if nothing is there, as one step that two writers cannot both win: True when this
    call made it, False when it was there already. Locally a fsynced temp file hard-linked into place; on S3 a
    conditional PUT (If-None-Match, through boto3). A filesystem without hard links, or an S3 store (or an install
    without boto3) that cannot put conditionally, is checked first and written (two writers at the same moment
    can then both write: the last one stands)."""
    if is_s3(uri):
        conditional = _s3_put_if_absent(uri, data)
        if conditional is not None:
            return conditional
        if exists(uri):
            return False
        write_atomic(uri, data)
        return True
    target = local_target(uri)
    tmp = temp_path_for(uri)
    try:
        _write_synced(tmp, data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if target.exists():  # no hard links here
                return False
            os.replace(tmp, target)
        return True
    except OSError as exc:
        raise naming_error(exc, target) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _s3_put_if_absent(uri: str, data: bytes) -> bool | None:
    """A conditional PUT of `data` (If-None-Match: *): True when made, False when the object exists, None when it
    cannot be asked (no boto3, a store that does not implement it)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return None
    bucket, key = split_s3(uri)
    client = _boto3_s3(s3_endpoint(), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        if code in ("NotImplemented", "InvalidArgument"):
            return None
        raise OSError(f"{uri}: {exc}") from exc
    except BotoCoreError as exc:  # the endpoint could not be reached, credentials not found: an OSError, one line
        raise OSError(f"{uri}: {exc}") from exc
    log.debug("created %s (%d bytes)", uri, len(data))
    return True


@functools.lru_cache(maxsize=4)
def _boto3_s3(endpoint: str | None, region: str | None):
    """A boto3 S3 client for the requests Arrow cannot make (conditional PUTs), once per endpoint and region, as
    _s3_filesystem; boto3's and botocore's DEBUG lines (moon -v) hold the request's credentials, so they stay off."""
    import boto3

    for name in ("boto3", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).getEffectiveLevel(), logging.INFO))
    return boto3.client("s3", endpoint_url=endpoint, region_name=region)


def write_atomic(uri: str, data: bytes, content_type: str | None = None) -> None:
    """Write `data` so that readers see either nothing or the whole object. `content_type` sets the S3 object's
    Content-Type (so that a report served from a bucket opens as a page); local files ignore it."""
    if is_s3(uri):
        fs, path = filesystem(uri)
        with fs.open_output_stream(path, metadata={"Content-Type": content_type} if content_type else None) as f:
            f.write(data)
        log.debug("wrote %s (%d bytes)", uri, len(data))
        return
    target = local_target(uri)
    if _special(target):  # a device or a pipe (/dev/null, /dev/stdout): written to, never renamed over
        with open(target, "wb") as f:
            f.write(data)
        return
    tmp = temp_path_for(uri)
    try:
        _write_synced(tmp, data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise naming_error(exc, target) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    log.debug("wrote %s (%d bytes)", uri, len(data))


def write_file_atomic(uri: str, local_file: str | Path) -> None:
    """Publish a finished local file at `uri` atomically (rename locally, one upload on S3)."""
    if is_s3(uri):
        fs, path = filesystem(uri)
        with open(local_file, "rb") as src, fs.open_output_stream(path) as dst:
            while chunk := src.read(8 << 20):
                dst.write(chunk)
        log.debug("uploaded %s -> %s", local_file, uri)
        return
    target = local_target(uri)
    if _special(target):  # a device or a pipe: its bytes are copied in, and the local file goes as a rename's would
        with open(local_file, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        Path(local_file).unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(local_file, "rb+") as f:  # its bytes on disk before the rename makes it visible
        os.fsync(f.fileno())
    os.replace(local_file, target)
    _fsync_dir(target.parent)


def local_target(uri: str) -> Path:
    """The file a local write lands in: a symbolic link's target (the rename of an atomic write replaces the file,
    never the link), else the path itself."""
    path = Path(uri)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _special(path: Path) -> bool:
    """Whether `path` is a device, a pipe or a socket (/dev/null, /dev/stdout, a FIFO): a rename over it would
    replace it with a plain file (as root, /dev/null for every process)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def publishing(uri: str) -> Iterator[Path]:
    """A hidden local temp file to write (next to a local target; in the temp folder for S3), published at `uri`
    with `write_file_atomic` when the block ends without error, and removed in every case."""
    if is_s3(uri):
        fd, name = tempfile.mkstemp(prefix=".moon-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = temp_path_for(uri)
    try:
        yield tmp
        write_file_atomic(uri, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def temp_path_for(uri: str) -> Path:
    """A hidden temp file next to a local target, or to a link's target (same filesystem, so the final rename is
    atomic), named with its writer: `.<name>.tmp-<host>-<pid>-<random>` (temp_owner)."""
    target = local_target(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_owner(path: Path) -> tuple[str, int] | None:
    """(host, pid) of the writer of a temp file named by temp_path_for; None for another name."""
    owner = path.name.rpartition(".tmp-")[2].rsplit("-", 2)
    return (owner[0], int(owner[1])) if len(owner) == 3 and owner[1].isdigit() else None


def temp_abandoned(path: Path, stale_after: float = 3600.0) -> bool:
    """Whether a temp file's writer is gone: a process of this host that no longer runs, or (a writer elsewhere, a
    name without its writer) no change for `stale_after` seconds. A live writer's file is never taken."""
    owner = temp_owner(path)
    if owner is not None and owner[0] == socket.gethostname():
        try:
            os.kill(owner[1], 0)  # PermissionError: a process of another user, which runs
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False
    try:
        return time.time() - path.stat().st_mtime > stale_after
    except FileNotFoundError:
        return False


def append_line(uri: str, line: str) -> None:
    """Append one line durably (local files only; S3 callers write one object per record instead).

    The write happens under an exclusive POSIX lock of the file (`fcntl.lockf`, released on close). On one machine
    O_APPEND alone keeps concurrent lines whole; on NFS it does not (each client computes the end of the file
    itself), and the lock is what makes a client see the other clients' lines and write after them. A
    filesystem without locks (some FUSE mounts) appends unlocked, with one warning per process."""
    if is_s3(uri):
        raise ValueError("append_line is local only")
    data = (line.rstrip("\n") + "\n").encode()
    try:
        fd = os.open(uri, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise naming_error(exc, uri) from exc
    try:
        _lock(fd, uri)
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            data = b"\n" + data  # a torn line left by a crash or a full disk: keep this record on a line of its own
        view = memoryview(data)
        while view:
            # A short write (the disk filled up) leaves a torn line, which readers skip; writing the rest raises
            # the real error (ENOSPC, EFBIG).
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        raise naming_error(exc, uri) from exc
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def exclusive(folder: str, name: str = ".lock") -> Iterator[None]:
    """Hold the exclusive lock of `folder`/`name` (made when missing) while the block runs: one writer of a local
    folder at a time, waiting for the one before it, whether in another process or in a thread of this one (a
    `flock` of its own open file; Linux's NFS client maps it to a lock the server holds). On S3, a lock object
    (s3_lease); on a filesystem that refuses locks, the block runs unlocked."""
    if is_s3(folder):
        with s3_lease(join(folder, name)):
            yield
        return
    makedirs(folder)
    uri = join(folder, name)
    try:
        fd = os.open(uri, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise naming_error(exc, uri) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise naming_error(exc, uri) from exc
            log.warning("%s: the filesystem refuses file locks (%s); going on without one", uri,
                        os.strerror(exc.errno))
        yield
    finally:
        os.close(fd)  # releases the lock


LEASE_SECONDS = 600.0  # an S3 lock object unchanged this long is a crashed holder's
LEASE_RENEW_SECONDS = 60.0
LEASE_POLL_SECONDS = 1.0


@contextlib.contextmanager
def s3_lease(uri: str) -> Iterator[None]:
    """Hold the S3 lock object `uri` while the block runs: made by a conditional PUT (create_exclusive), renewed
    every LEASE_RENEW_SECONDS from a thread, deleted at the end. One held by another writer is waited for, and one
    unchanged for LEASE_SECONDS (its holder crashed) is taken over. Where the store cannot put conditionally
    (create_exclusive then checks and writes), two writers at the same moment may both hold it."""
    import threading

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}".encode()
    waited = False
    while not create_exclusive(uri, owner):
        fs, path = filesystem(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            continue  # released meanwhile
        age = time.time() - info.mtime.timestamp() if info.mtime else 0.0
        if age > LEASE_SECONDS:
            log.warning("%s: taking over a lock unchanged for %.0f s (its holder is gone)", uri, age)
            delete(uri)
            continue
        if not waited:
            log.info("%s: waiting for the writer that holds it", uri)
            waited = True
        time.sleep(LEASE_POLL_SECONDS)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LEASE_RENEW_SECONDS):
            try:
                write_atomic(uri, owner)
            except OSError as exc:  # the next renewal tries again; the work goes on
                log.warning("%s: could not renew the lock: %s", uri, exc)

    renewer = threading.Thread(target=renew, name="moon-s3-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        try:
            delete(uri)
        except OSError as exc:  # left behind, it is taken over once stale
            log.warning("%s: could not release the lock: %s", uri, exc)


_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_unlocked_warned: set[str] = set()


def _lock(fd: int, uri: str) -> None:
    """Wait for the exclusive lock of an open file; go on without one where the filesystem has none."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise
        if uri not in _unlocked_warned:
            _unlocked_warned.add(uri)
            log.warning("%s: the filesystem refuses file locks (%s); appending without one, which is safe only "
                        "while one machine writes this run", uri, os.strerror(exc.errno))


def delete(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def delete_dir(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass


def naming_error(exc: OSError, uri: str | Path) -> OSError:
    """The same error naming the file the caller meant (not a hidden temp file next to it), with the OS's reason
    (pyarrow's messages wrap it in their own words and name no file)."""
    if exc.errno:
        return OSError(exc.errno, os.strerror(exc.errno), str(uri))  # OSError() picks the subclass from errno
    return OSError(f"{uri}: {exc}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
