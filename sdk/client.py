"""The tenant-facing client: one HTTP connection pool, auth, retries, error mapping.

Example::

    from sdk import Client

    with Client() as client:                 # settings from args, env or ~/.tagrec/credentials
        group = client.dataset_groups.create("shop")
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar
from urllib.parse import urlparse

import httpx

from sdk import config as _config
from sdk.errors import APIConnectionError, APITimeoutError, TagrecError, status_error
from sdk.pagination import Listing
from sdk.resources import (
    BatchInferenceJobs,
    Campaigns,
    DatasetGroups,
    DatasetImportJobs,
    Datasets,
    Events,
    Recipes,
    Solutions,
    SolutionVersions,
    Uploads,
)

__all__ = ["Client", "__version__"]

T = TypeVar("T")

try:
    __version__ = importlib.metadata.version("tagrec")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_RETRY_AFTER = 60.0


def _is_local(base_url: str) -> bool:
    return urlparse(base_url).hostname in _LOCAL_HOSTS


def _is_up(base_url: str) -> bool:
    try:
        return httpx.get(base_url.rstrip("/") + "/healthz", timeout=2.0).is_success
    except httpx.HTTPError:
        return False


def _retry_after(response: httpx.Response | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return seconds if 0 <= seconds <= _MAX_RETRY_AFTER else None


class Client:
    """A client of the tagrec control plane.

    Args:
        base_url: Server URL; else ``TAGREC_BASE_URL``, else the credentials file.
        api_key: API key; else ``TAGREC_API_KEY``, else the credentials file.
        profile: Profile of the credentials file; else ``TAGREC_PROFILE``, else ``default``.
        timeout: Seconds per HTTP request.
        max_retries: Retries of a request after a connection error, 429, 502, 503 or 504.
        start_local: With the ``default`` profile, start the local platform
            (``python -m tagrec.cli up``) when nothing is configured or the configured local
            server does not answer, saying so on stderr (``tagrec: started the local platform
            at URL (store ..., log ...)``).

    Raises:
        TagrecError: No API key could be found (or the local platform failed to start).

    Attributes:
        dataset_groups: `DatasetGroups`.
        datasets: `Datasets`.
        uploads: `Uploads`.
        dataset_import_jobs: `DatasetImportJobs`.
        batch_inference_jobs: `BatchInferenceJobs`.
    """

    initial_retry_delay = 0.5
    max_retry_delay = 8.0

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        profile: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        start_local: bool = True,
    ) -> None:
        cfg = _config.resolve(base_url, api_key, profile=profile)
        if start_local and cfg.profile == _config.DEFAULT_PROFILE and self._needs_local(cfg):
            self._start_local()
            cfg = _config.resolve(base_url, api_key, profile=profile)
        if not cfg.base_url or not cfg.api_key:
            missing = "base_url" if not cfg.base_url else "api_key"
            raise TagrecError(
                f"no {missing} for tagrec: pass {missing}=, set "
                f"TAGREC_{missing.upper()}, or add it to profile [{cfg.profile}] of "
                f"{_config.credentials_path()} (`tagrec up` writes the default profile)"
            )
        self.base_url = cfg.base_url.rstrip("/")
        self.api_key = cfg.api_key
        self.max_retries = max_retries
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"User-Agent": f"tagrec-sdk/{__version__}"},
        )
        self._sleep: Callable[[float], None] = time.sleep
        self.dataset_groups = DatasetGroups(self)
        self.datasets = Datasets(self)
        self.uploads = Uploads(self)
        self.dataset_import_jobs = DatasetImportJobs(self)
        self.recipes = Recipes(self)
        self.solutions = Solutions(self)
        self.solution_versions = SolutionVersions(self)
        self.campaigns = Campaigns(self)
        self.events = Events(self)
        self.batch_inference_jobs = BatchInferenceJobs(self)

    @staticmethod
    def _needs_local(cfg: _config.Config) -> bool:
        if cfg.base_url is None:
            return True
        return _is_local(cfg.base_url) and (cfg.api_key is None or not _is_up(cfg.base_url))

    @staticmethod
    def _start_local() -> None:
        cmd = [sys.executable, "-m", "tagrec.cli", "-o", "json", "up"]
        try:
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            detail = (e.stderr or "").strip().splitlines()[-1:] or [str(e)]
            raise TagrecError(f"could not start the local tagrec platform: {detail[0]}") from e
        except OSError as e:
            raise TagrecError(f"could not start the local tagrec platform: {e}") from e
        # What `up` said (the platform started, where, a replaced port) goes to our stderr, never
        # stdout: the user learns a platform now runs, and a program's output stays its own.
        sys.stderr.write(getattr(done, "stderr", None) or "")
        sys.stderr.flush()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def whoami(self) -> str:
        """The tenant the API key belongs to."""
        return str(self.request("GET", "/v1/whoami").json()["tenant"])

    def health(self) -> dict[str, Any]:
        """The server's health document (``GET /healthz``, sent without the key)."""
        body: dict[str, Any] = self.request("GET", "/healthz", auth=False).json()
        return body

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        auth: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one API request, retrying transient failures, and return the 2xx answer.

        Args:
            method: HTTP method.
            path: Path under the base URL, e.g. ``/v1/dataset-groups``.
            json: JSON body.
            params: Query parameters.
            content: Called once per attempt to get a fresh body stream (e.g. re-opening a file).
            headers: Extra headers.
            idempotency_key: Sent as ``Idempotency-Key``, the same on every attempt.
            auth: Whether to send the API key.
            stream: Return the answer before its body is read (iterate it, then close it).

        Returns:
            The successful answer.

        Raises:
            APIStatusError: A subclass for the error status (after retries, if retryable).
            APIConnectionError: The server could not be reached after the retries.
        """
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {self.api_key}"
        if idempotency_key is not None:
            hdrs["Idempotency-Key"] = idempotency_key
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.send(
                    self._http.build_request(
                        method,
                        path,
                        json=json,
                        params=params,
                        content=content() if content is not None else None,
                        headers=hdrs,
                    ),
                    stream=stream,
                )
            except httpx.TimeoutException as e:
                error: TagrecError = APITimeoutError(f"{method} {path} timed out: {e}")
            except httpx.TransportError as e:
                target = path if path.startswith(("http://", "https://")) else self.base_url
                hint = (" (a campaign endpoint: is the campaign ACTIVE? after a restart campaigns take a "
                        "little while to come back)" if target != self.base_url else "")
                error = APIConnectionError(f"{method} {path}: cannot reach {_origin(target)}: {e}{hint}")
            else:
                if response.is_success:
                    return response
                if stream:  # the error body is small JSON: read it, free the connection
                    response.read()
                    response.close()
                error = _error_from(response)
                if response.status_code not in RETRY_STATUSES:
                    raise error
            if attempt >= self.max_retries:
                raise error
            self._sleep(self._delay(attempt, response))
            attempt += 1

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = _retry_after(response)
        if asked is not None:
            return asked
        delay: float = min(self.initial_retry_delay * 2**attempt, self.max_retry_delay)
        return delay * (1 - 0.25 * random.random())

    def listing(self, path: str, parse: Callable[[Any], T], *, page_size: int = 100) -> Listing[T]:
        """A :class:`~sdk.pagination.Listing` of ``path``: first page now, the rest as iterated."""

        def fetch(token: str | None) -> dict[str, Any]:
            params: dict[str, Any] = {"max_results": page_size}
            if token:
                params["next_token"] = token
            return dict(self.request("GET", path, params=params).json())

        return Listing(fetch, parse)

    @staticmethod
    def new_idempotency_key() -> str:
        """A fresh idempotency key (a uuid4)."""
        return str(uuid.uuid4())


def _origin(url: str) -> str:
    """scheme://host:port of a URL (what could not be reached)."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _error_from(response: httpx.Response) -> TagrecError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return status_error(
        response.status_code,
        body,
        request_id=response.headers.get("x-request-id"),
        reason=response.reason_phrase,
    )
