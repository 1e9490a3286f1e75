"""The storage backends: one interface over a local folder (`file://`) and S3 (`s3://`).

Bulk data (Parquet, uploads) go through a `pyarrow.fs.FileSystem` so both backends share one
code path. Small JSON records need two atomic primitives pyarrow does not offer, create-if-absent
and compare-and-swap; they use exclusive create + rename locally, and conditional writes
(`If-None-Match: *`, `If-Match: <etag>`) on S3.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

__all__ = ["StoreConfig", "Backend", "LocalBackend", "S3Backend", "open_backend", "s3_filesystem",
           "PreconditionFailed"]


class PreconditionFailed(Exception):
    """A conditional write lost: the key exists (create) or changed (compare-and-swap)."""


@dataclass(frozen=True)
class StoreConfig:
    """Where the store lives. `uri` is `file:///abs/path` or `s3://bucket[/prefix]`.

    `endpoint_url` points S3 at another server (MinIO, moto); it defaults to `AWS_ENDPOINT_URL`.
    """

    uri: str
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, uri: str | None = None, *, default_uri: str = "") -> StoreConfig:
        """`uri`, else `TAGREC_STORE`, else `default_uri`; S3 endpoint and region from env."""
        uri = uri or os.environ.get("TAGREC_STORE") or default_uri
        if not uri:
            raise ValueError("no store given: pass a uri or set TAGREC_STORE")
        return cls(
            uri=uri,
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
        )

    def as_dict(self) -> dict[str, str | None]:
        return {"uri": self.uri, "endpoint_url": self.endpoint_url, "region": self.region}


class Backend:
    """Keys are `/`-separated relative paths below the store root."""

    filesystem: pafs.FileSystem

    def path(self, key: str) -> str:
        """The path of `key` in `self.filesystem`."""
        raise NotImplementedError

    def open_output(self, key: str) -> Any:
        """A pyarrow output stream writing `key` (visible once closed)."""
        return self.filesystem.open_output_stream(self.path(key))

    def get(self, key: str) -> tuple[bytes, str]:
        """Content and etag; FileNotFoundError if absent."""
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> str:
        """Write only if absent (PreconditionFailed otherwise); returns the etag."""
        raise NotImplementedError

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """Write only if the current etag is `etag` (PreconditionFailed otherwise)."""
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        """Unconditional whole-object write (readers see the old or the new content)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Delete one key; absent keys are fine."""
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[str]:
        """Keys below `prefix/` (recursive), sorted; lock and temporary files are skipped."""
        for key in self._list_all(prefix):
            name = key.rsplit("/", 1)[-1]
            if not (name.endswith(".lock") or name.startswith(".tmp-")):
                yield key

    def _list_all(self, prefix: str, recursive: bool = True,
                  type_: pafs.FileType = pafs.FileType.File) -> list[str]:
        """Every entry of `type_` below `prefix/`, lock and temporary files included, sorted."""
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.path(prefix), recursive=recursive,
                                                                allow_not_found=True))
        root = self.path("")
        found = sorted(i.path for i in infos if i.type == type_)
        return [p[len(root):].strip("/") for p in found]

    def children(self, prefix: str) -> tuple[list[str], list[str]]:
        """The files and the folders directly below `prefix/` (one level, as keys)."""
        files = [k for k in self._list_all(prefix, recursive=False)
                 if not k.rsplit("/", 1)[-1].endswith(".lock") and ".tmp-" not in k]
        return files, self._list_all(prefix, recursive=False, type_=pafs.FileType.Directory)

    def delete_prefix(self, prefix: str) -> None:
        """Delete everything below `prefix/` (retried while concurrent writers add files)."""
        for attempt in range(20):
            try:
                self.filesystem.delete_dir(self.path(prefix))
                return
            except FileNotFoundError:
                return
            except OSError:  # "directory not empty": something was written meanwhile
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def exists(self, key: str) -> bool:
        return self.filesystem.get_file_info(self.path(key)).type == pafs.FileType.File


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.filesystem = pafs.LocalFileSystem()

    def path(self, key: str) -> str:
        return str(self.root / key) if key else str(self.root)

    def open_output(self, key: str) -> Any:
        Path(self.path(key)).parent.mkdir(parents=True, exist_ok=True)
        return super().open_output(key)

    def get(self, key: str) -> tuple[bytes, str]:
        data = Path(self.path(key)).read_bytes()
        return data, _etag(data)

    @staticmethod
    def _write_temp(directory: Path, data: bytes) -> str:
        """Write `data` durably to a new temporary file in `directory`; returns its path."""
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def _write_atomic(self, target: Path, data: bytes) -> None:
        for attempt in range(5):
            tmp = self._temp_in(target, data)
            try:
                os.replace(tmp, target)
                return
            except FileNotFoundError:  # the folder was deleted under us: make it again
                if attempt == 4:
                    raise
            finally:
                Path(tmp).unlink(missing_ok=True)

    def _temp_in(self, target: Path, data: bytes) -> str:
        """A durable temporary file beside `target` (its folder re-made if a delete races)."""
        for attempt in range(5):
            try:  # a concurrent delete can remove a folder between mkdir's steps, too
                target.parent.mkdir(parents=True, exist_ok=True)
                return self._write_temp(target.parent, data)
            except FileNotFoundError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def create(self, key: str, data: bytes) -> str:
        target = Path(self.path(key))
        for attempt in range(5):
            tmp = self._temp_in(target, data)
            try:
                # link() fails if the target exists: an atomic, complete, exclusive create.
                os.link(tmp, target)
                return _etag(data)
            except FileExistsError:
                raise PreconditionFailed(key) from None
            except FileNotFoundError:  # the folder was deleted under us: make it again
                if attempt == 4:
                    raise
            finally:
                Path(tmp).unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def replace(self, key: str, data: bytes, etag: str) -> str:
        target = Path(self.path(key))
        lock_path = target.with_name(target.name + ".lock")
        try:
            lock = open(lock_path, "a+b")  # closed by the with below
        except FileNotFoundError:  # not even its folder exists
            raise PreconditionFailed(key) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if we die
            try:
                current = target.read_bytes()
            except FileNotFoundError:
                raise PreconditionFailed(key) from None
            if _etag(current) != etag:
                raise PreconditionFailed(key)
            # Never re-make a folder here: a record deleted meanwhile must stay deleted.
            try:
                tmp = self._write_temp(target.parent, data)
            except FileNotFoundError:
                raise PreconditionFailed(key) from None
            try:
                os.replace(tmp, target)
            except FileNotFoundError:
                raise PreconditionFailed(key) from None
            finally:
                Path(tmp).unlink(missing_ok=True)
        return _etag(data)

    def put(self, key: str, data: bytes) -> None:
        target = Path(self.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        self._write_atomic(target, data)

    def delete(self, key: str) -> None:
        Path(self.path(key)).unlink(missing_ok=True)
        Path(self.path(key) + ".lock").unlink(missing_ok=True)


class S3Backend(Backend):
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, region: str | None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        self.filesystem = s3_filesystem(endpoint_url, region)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def path(self, key: str) -> str:
        return f"{self.bucket}/{self._key(key)}".rstrip("/")

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(key) from None
        return obj["Body"].read(), obj["ETag"].strip('"')

    def _conditional_put(self, key: str, data: bytes, **cond: str) -> str:
        from botocore.exceptions import ClientError

        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **cond)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            lost = code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")
            if lost or status in (409, 412):
                raise PreconditionFailed(key) from None
            raise
        return out["ETag"].strip('"')

    def create(self, key: str, data: bytes) -> str:
        return self._conditional_put(key, data, IfNoneMatch="*")

    def replace(self, key: str, data: bytes, etag: str) -> str:
        return self._conditional_put(key, data, IfMatch=f'"{etag}"')

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self._list_all(prefix)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})


def s3_filesystem(endpoint_url: str | None, region: str | None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem; writes go out as they are made (memory stays bounded even when
    the server is slower than the writer, which background writes would buffer without limit)."""
    kwargs: dict[str, Any] = {"background_writes": False}
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_backend(config: StoreConfig) -> Backend:
    """The backend for `config.uri`; ValueError for anything but file:// and s3://."""
    parsed = urlparse(config.uri)
    if parsed.scheme == "file":
        return LocalBackend(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"store uri {config.uri!r} has no bucket")
        return S3Backend(parsed.netloc, parsed.path, config.endpoint_url, config.region)
    raise ValueError(f"store uri must start with file:// or s3://, got {config.uri!r}")
