"""Where the SDK finds its server and key.

Each setting is resolved on its own: explicit argument > environment (``TAGREC_BASE_URL``,
``TAGREC_API_KEY``) > the credentials file ``$TAGREC_HOME/credentials`` (``TAGREC_HOME``
defaults to ``~/.tagrec``), an INI file of profiles like ``~/.aws/credentials``::

    [default]
    base_url = http://127.0.0.1:8765
    api_key = tgr_...

The profile is the ``profile`` argument, else ``TAGREC_PROFILE``, else ``default``.
"""

from __future__ import annotations

import configparser
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_PROFILE",
    "Config",
    "credentials_path",
    "home_dir",
    "read_profile",
    "resolve",
    "write_profile",
]

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Config:
    """Resolved settings; a value is None when no source gave it."""

    base_url: str | None
    api_key: str | None
    profile: str

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return f"Config(base_url={self.base_url!r}, api_key={key}, profile={self.profile!r})"


def home_dir() -> Path:
    """The tagrec home folder: ``$TAGREC_HOME`` or ``~/.tagrec``."""
    return Path(os.environ.get("TAGREC_HOME") or "~/.tagrec").expanduser()


def credentials_path() -> Path:
    """The credentials file inside the home folder."""
    return home_dir() / "credentials"


def _load() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(credentials_path(), encoding="utf-8")
    return parser


def read_profile(profile: str | None = None) -> dict[str, str]:
    """The settings of one profile of the credentials file.

    Args:
        profile: Profile name; defaults to ``TAGREC_PROFILE`` or ``default``.

    Returns:
        The profile's keys and values; empty if the file or the profile is absent.
    """
    name = profile or os.environ.get("TAGREC_PROFILE") or DEFAULT_PROFILE
    parser = _load()
    return dict(parser[name]) if parser.has_section(name) else {}


def write_profile(profile: str, base_url: str, api_key: str) -> Path:
    """Write one profile, keeping the others, atomically and readable by the owner only.

    Args:
        profile: Profile name.
        base_url: The control plane URL.
        api_key: The tenant's API key.

    Returns:
        The path of the credentials file.
    """
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    parser = _load()
    if not parser.has_section(profile):
        parser.add_section(profile)
    parser[profile]["base_url"] = base_url
    parser[profile]["api_key"] = api_key
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            parser.write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve(
    base_url: str | None = None, api_key: str | None = None, *, profile: str | None = None
) -> Config:
    """Resolve each setting from arguments, then environment, then the credentials file.

    Args:
        base_url: Explicit server URL.
        api_key: Explicit API key.
        profile: Profile of the credentials file; defaults to ``TAGREC_PROFILE`` or ``default``.

    Returns:
        The resolved settings.
    """
    name = profile or os.environ.get("TAGREC_PROFILE") or DEFAULT_PROFILE
    stored = read_profile(name)
    return Config(
        base_url=base_url or os.environ.get("TAGREC_BASE_URL") or stored.get("base_url") or None,
        api_key=api_key or os.environ.get("TAGREC_API_KEY") or stored.get("api_key") or None,
        profile=name,
    )
