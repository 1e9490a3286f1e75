"""Listings fetched page by page, as openai-python's paginated lists are.

``client.<collection>.list(...)`` returns a :class:`Listing`: its first page is fetched when it is
made (so a missing parent raises there, at the call), the next pages only when iteration reaches
them, so ``for g in client.dataset_groups.list(): ... break`` reads one page. ``list(listing)``,
``len(listing)``, indexing and ``listing == [...]`` fetch every page (once; pages are kept).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

__all__ = ["Listing"]

T = TypeVar("T")


class Listing(Generic[T]):
    """The items of a paginated listing, fetched as they are reached.

    Args:
        fetch: Gets one page: ``fetch(next_token)`` returns ``{"items": [...], "next_token": ...}``
            (``None`` for the first page).
        parse: Turns one raw item into a model.
    """

    def __init__(self, fetch: Callable[[str | None], dict[str, Any]], parse: Callable[[Any], T]) -> None:
        self._fetch = fetch
        self._parse = parse
        self._items: list[T] = []
        self._next: str | None = None
        self._done = False
        self._load(None)

    def _load(self, token: str | None) -> None:
        page = self._fetch(token)
        self._items.extend(self._parse(item) for item in page["items"])
        self._next = page.get("next_token") or None
        self._done = self._next is None

    def __iter__(self) -> Iterator[T]:
        i = 0
        while True:
            while i < len(self._items):
                yield self._items[i]
                i += 1
            if self._done:
                return
            self._load(self._next)

    def _all(self) -> list[T]:
        while not self._done:
            self._load(self._next)
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._all()[index]

    def __bool__(self) -> bool:
        return bool(self._items) or not self._done and bool(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Listing):
            return self._all() == other._all()
        if isinstance(other, list):
            return self._all() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        more = "" if self._done else ", ...more pages"
        return f"Listing({self._items!r}{more})"
