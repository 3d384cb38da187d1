"""Where the review page may be reached: loopback checks, the Host header names it answers
to (no DNS rebinding), the warning for a bind beyond this machine, and the URL to open."""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Iterable

#: Host header names always accepted: this machine, by name and by IPv4 and IPv6 loopback.
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
# A Host header: a name or an IPv6 address in brackets, then an optional port.
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[^\s:\[\]/@]+)(?::[0-9]{1,5})?", re.ASCII)


def bare_host(host: str) -> str:
    """``host`` without IPv6 brackets, lower case: how it is bound ("[::1]" binds as "::1")."""
    return host.strip().removeprefix("[").removesuffix("]").lower()


def url_host(host: str) -> str:
    """``host`` as written in a URL or Host header: lower case, an IPv6 address in brackets."""
    name = bare_host(host)
    return f"[{name}]" if ":" in name else name


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    name = bare_host(host)
    if name == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False  # any other name may resolve to a network address
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def allowed_host_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host header names (without port) the server answers to when bound to ``host``.

    Always this machine's loopback names and the bound address itself; beyond loopback, also
    the names in ``extra`` (what other machines call this one). Anything else could be a DNS
    rebinding attack: a web page whose name was pointed at this address.
    """
    return frozenset({*LOCAL_NAMES, url_host(host), *(url_host(h) for h in extra if h.strip())})


def host_allowed(header: str, allowed: frozenset[str]) -> bool:
    """Whether a Host header value (``name`` or ``name:port``) names one of ``allowed``."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    return match is not None and match.group(1) in allowed


def exposure_warning(host: str, port: int = 8765) -> str | None:
    """The warning for binding beyond this machine, or None for a loopback ``host``."""
    if is_loopback(host):
        return None
    return (
        f"warning: the review page is bound to {url_host(host)}, beyond this machine. The "
        "passages it shows, quoted from police responses, become reachable from the network, "
        "and the session token in the URL is the only protection: anyone who has it can read "
        "them and save labels as this annotator. Prefer the default --host 127.0.0.1 and an "
        f"SSH tunnel from your own machine: ssh -N -L {port}:127.0.0.1:{port} THIS_HOST, then "
        f"open the printed URL there. Other machines must use the bound address or a name "
        "given with --allow-host."
    )


def warn_if_exposed(host: str, port: int = 8765) -> bool:
    """Print :func:`exposure_warning` to stderr if ``host`` is beyond loopback; True if so."""
    message = exposure_warning(host, port)
    if message is not None:
        print(message, file=sys.stderr, flush=True)
    return message is not None


def review_url(host: str, port: int, token: str) -> str:
    """The URL to open, token included; a wildcard bind is opened through loopback."""
    name = url_host(host)
    if name in ("0.0.0.0", "[::]", ""):
        name = "[::1]" if ":" in name else "127.0.0.1"
    return f"http://{name}:{port}/?token={token}"
