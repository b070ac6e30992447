"""Pages of search results: the ``max_results`` limits and the page tokens, as MLflow has them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from nbtrack.exceptions import InvalidValueError

#: MLflow's most results per page: runs and experiments, registered models, model versions
RUNS_PAGE_LIMIT = 50_000
REGISTERED_MODELS_PAGE_LIMIT = 1_000
MODEL_VERSIONS_PAGE_LIMIT = 200_000


def check_max_results(max_results, at_most: int | None = None, allow_zero: bool = False) -> int:
    """``max_results`` if it is a whole number in range, else MLflow's error."""
    low = 0 if allow_zero else 1
    if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < low:
        raise InvalidValueError(
            f"Invalid value {max_results!r} for parameter 'max_results' supplied. It must be a "
            f"{'whole number >= 0' if allow_zero else 'positive integer'}."
        )
    if at_most is not None and max_results > at_most:
        raise InvalidValueError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            f"most {at_most}. Fetch more with the page's .token as page_token, or use "
            "nbtrack.search_runs(), which pages for you."
        )
    return max_results


def decode_token(token: str | None) -> int:
    """The offset a page token stands for (0 for no token)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except Exception:
        raise InvalidValueError(
            f"The page token {token!r} is not one nbtrack issued. Pass the token from the "
            "previous page's result unchanged, or None for the first page."
        ) from None


def encode_token(offset: int) -> str:
    """The page token of the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_of(search: Callable[[int], list], max_results: int, page_token: str | None):
    """A ``PagedList`` page of a search that returns its first ``n`` results in a stable order.

    For the small collections (experiments, registered models, versions) that are read whole.
    """
    from nbtrack.entities import PagedList

    offset = decode_token(page_token)
    found = search(offset + max_results + 1)
    token = encode_token(offset + max_results) if len(found) > offset + max_results else None
    return PagedList(found[offset:offset + max_results], token)
