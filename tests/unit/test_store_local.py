"""The local-folder backend's atomic primitives, including against a process killed mid-write.

`LocalBackend.create` writes a temporary file, fsyncs it and hard-links it to the key (link fails
if the key exists), so the key is either absent or complete whatever happens to the writer.
`replace` swaps under an flock (released by the kernel if the holder dies) with a rename.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.fs import LocalBackend, PreconditionFailed, _etag
from store.registry import Registry

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20

# A writer process: prints "ready", then creates `key` holding `mib` MiB (a known pattern).
# With hook "fsync", it stops for good once the data is written but before it is made visible.
_WRITER = """
import os, sys, time
from pathlib import Path
from store.fs import LocalBackend
root, key, mib, hook = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
payload = bytes(range(256)) * 4096 * mib
backend = LocalBackend(Path(root))
if hook == "fsync":
    def fsync(fd):
        print("written", flush=True)
        time.sleep(600)
    os.fsync = fsync
print("ready", flush=True)
backend.create(key, payload)
print("done", flush=True)
"""


def payload(mib: int) -> bytes:
    return bytes(range(256)) * 4096 * mib


def start_writer(root: Path, key: str, mib: int, hook: str = "none") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), key, str(mib), hook],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def tmp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "store")


# --- create --------------------------------------------------------------------------------------


def test_create_killed_after_writing_before_link_leaves_the_key_absent(
        backend: LocalBackend) -> None:
    proc = start_writer(backend.root, "a/big.bin", 8, hook="fsync")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    kill(proc)
    target = backend.root / "a" / "big.bin"
    assert not target.exists()
    assert not backend.exists("a/big.bin")
    with pytest.raises(FileNotFoundError):
        backend.get("a/big.bin")
    # The orphaned temporary file is never listed, and does not block a later create.
    assert len(tmp_files(backend.root)) == 1
    assert list(backend.list("a")) == []
    etag = backend.create("a/big.bin", b"after")
    assert backend.get("a/big.bin") == (b"after", etag)


# On this machine the early delays kill the writer with a partial temporary file and no key,
# the later ones after the link; either way the key is absent or complete.
@pytest.mark.parametrize("delay", [0.0, 0.03, 0.3])
def test_create_killed_at_any_moment_leaves_the_key_absent_or_complete(
        backend: LocalBackend, delay: float) -> None:
    mib = 48
    proc = start_writer(backend.root, "a/big.bin", mib)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    target = backend.root / "a" / "big.bin"
    if target.exists():  # the link happened: the content must be all there
        assert target.stat().st_size == mib * MIB
        assert target.read_bytes() == payload(mib)
        assert list(backend.list("a")) == ["a/big.bin"]
        with pytest.raises(PreconditionFailed):
            backend.create("a/big.bin", b"second")
    else:
        assert list(backend.list("a")) == []
        backend.create("a/big.bin", b"second")
    assert all(p.name != "big.bin" for p in tmp_files(backend.root))


def test_create_completes_when_not_killed(backend: LocalBackend) -> None:
    proc = start_writer(backend.root, "a/big.bin", 4)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "done"
    assert backend.get("a/big.bin")[0] == payload(4)
    assert tmp_files(backend.root) == []


def test_create_on_existing_key_fails_and_keeps_content(backend: LocalBackend) -> None:
    etag = backend.create("k.json", b"first")
    with pytest.raises(PreconditionFailed):
        backend.create("k.json", b"second")
    assert backend.get("k.json") == (b"first", etag)
    assert tmp_files(backend.root) == []


def test_create_in_many_processes_has_one_winner(backend: LocalBackend) -> None:
    code = ("import sys; from pathlib import Path; from store.fs import LocalBackend, "
            "PreconditionFailed\n"
            "b = LocalBackend(Path(sys.argv[1])); sys.stdin.read()\n"
            "try:\n    b.create('k.json', sys.argv[2].encode()); print('won')\n"
            "except PreconditionFailed:\n    print('lost')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(backend.root), f"writer-{i}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for i in range(4)]
    time.sleep(1.0)  # let them all import, then release them together
    outs = [p.communicate("", timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost"] * 3 + ["won"]
    assert backend.get("k.json")[0] == f"writer-{outs.index('won')}".encode()


# --- replace -------------------------------------------------------------------------------------


def test_replace_with_wrong_or_stale_etag_keeps_old_content(backend: LocalBackend) -> None:
    first = backend.create("k.json", b"v1")
    with pytest.raises(PreconditionFailed):
        backend.replace("k.json", b"bad", "0" * 32)
    assert backend.get("k.json") == (b"v1", first)
    second = backend.replace("k.json", b"v2", first)
    with pytest.raises(PreconditionFailed):
        backend.replace("k.json", b"stale", first)
    assert backend.get("k.json") == (b"v2", second)
    assert second == _etag(b"v2")
    assert tmp_files(backend.root) == []
    assert list(backend.list("")) == ["k.json"]  # its .lock is not listed


def test_replace_missing_key_fails_and_creates_nothing(backend: LocalBackend) -> None:
    with pytest.raises(PreconditionFailed):
        backend.replace("k.json", b"v1", _etag(b"v0"))
    with pytest.raises(PreconditionFailed):
        backend.replace("no/such/folder/k.json", b"v1", _etag(b"v0"))
    assert not backend.exists("k.json")
    assert not (backend.root / "no").exists()
    assert list(backend.list("")) == []


def test_replace_waits_for_a_dead_holders_lock_to_be_released(backend: LocalBackend) -> None:
    etag = backend.create("k.json", b"v1")
    code = ("import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'a+b'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(backend.root / "k.json.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    kill(holder)  # died holding the lock: the kernel releases it
    assert backend.replace("k.json", b"v2", etag) == _etag(b"v2")
    assert backend.get("k.json")[0] == b"v2"


def test_update_from_many_processes_loses_no_update(backend: LocalBackend) -> None:
    Registry(backend).create("counter.json", {"n": 0})
    code = ("import sys; from pathlib import Path; from store.fs import LocalBackend\n"
            "from store.registry import Registry\n"
            "r = Registry(LocalBackend(Path(sys.argv[1]))); sys.stdin.read()\n"
            "for _ in range(25):\n    r.update('counter.json', lambda d: {'n': d['n'] + 1})\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(backend.root)],
                              stdin=subprocess.PIPE, env=env, text=True) for _ in range(4)]
    time.sleep(1.0)
    for p in procs:
        p.communicate("", timeout=120)
        assert p.returncode == 0
    assert Registry(backend).read("counter.json") == {"n": 100}
