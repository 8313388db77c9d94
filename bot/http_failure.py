"""What went wrong with an HTTP call, said without its URL.

A URL may carry a secret: a WeCom group robot's webhook `key=`, WeCom's `access_token=` and
`corpsecret=`, a password or key in the shop's order endpoint. aiohttp's errors put the whole
URL in their text, so a failure is logged and stored by its status or kind instead, never as
`str(exc)`."""

from __future__ import annotations


def http_failure(exc: BaseException) -> str:
    """The status, or the kind of error (and the system's reason for a connection that failed);
    never the URL nor the error's own text."""
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timeout"
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        return f"HTTP {status} ({kind})"
    if "Redirect" in kind:  # aiohttp's TooManyRedirects and the redirect errors
        return f"redirect ({kind})"
    reason = getattr(getattr(exc, "os_error", None), "strerror", None)
    if isinstance(reason, str) and reason:
        return f"{kind}: {reason}"
    return kind
