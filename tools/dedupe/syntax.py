"""Layer 1: syntax normalization — what any URL means regardless of the site serving it.

Scheme and host case, IDNA, IPv4 forms, default ports, dot segments, duplicate slashes,
percent-encoding case and unreserved characters, empty and duplicate parameters, parameter
order, fragment. RFC 3986 §6.2.2 plus the WHATWG URL parser where browsers disagree with the RFC
(numeric IPv4 hosts, backslashes, tab/newline removal); reserved characters keep their escapes
because `%2F` and `/` can name different resources.

`split()` is the hot path: it caches per authority, touches a component only when a cheap
character-class scan says it needs work, and records notes only when asked (for `explain`).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

import idna

DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_URL_LENGTH = 8192
MAX_PARAMS = 256
_HOST_CACHE_LIMIT = 200_000

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = "0123456789ABCDEF"
# Characters that may stay literal in a path segment / a query name or value (RFC 3986 pchar, plus
# '/' and '?' in the query). Anything else — including '%', which is handled separately — needs work.
_PATH_WORK = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_QUERY_WORK = re.compile(r"[^A-Za-z0-9\-._~!$'()*+,;=:@/?]")
_QUERY_STRING_WORK = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]")
_ESCAPE_OR_OTHER_PATH = re.compile(r"%[0-9A-Fa-f]{2}|%|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_ESCAPE_OR_OTHER_QUERY = re.compile(r"%[0-9A-Fa-f]{2}|%|[^A-Za-z0-9\-._~!$'()*+,;=:@/?]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_HOST_PORT_NO_SCHEME = re.compile(r"[^/?#:@]+:\d+(?:[/?#\\]|$)")
_ASCII_HOST = re.compile(r"[a-z0-9\-._]+")
_STRIPPED = "".join(map(chr, range(33)))  # C0 controls and space
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The common shape: http(s), a plain host, a path with nothing to decode, no whitespace.
SIMPLE_URL = _SIMPLE = re.compile(
    r"([Hh][Tt][Tt][Pp][Ss]?)://([A-Za-z0-9.\-]+(?::[0-9]*)?)"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?(?:\?([^#\x00-\x20\x7f]*))?(?:#[^\x00-\x20\x7f]*)?"
)


ECHO_LIMIT = 200  # characters of caller input that an error or a rejected result may echo
MESSAGE_LIMIT = 600  # characters of any error message


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` if it fits in `limit` characters, else its start, an ellipsis and its length (≤ limit in all)."""
    if len(text) <= limit:
        return text
    suffix = f"… ({len(text):,} characters)"
    return text[: max(0, limit - len(suffix))] + suffix


def quote(text: str, limit: int = ECHO_LIMIT) -> str:
    """repr(`text`) for a message, bounded like `clip` (the length given is the original text's)."""
    shown = repr(text[: limit + 1])
    if len(text) <= limit and len(shown) <= limit:
        return shown
    suffix = f"… ({len(text):,} characters)"
    return shown[: max(0, limit - len(suffix))] + suffix


class URLError(ValueError):
    """A URL this normalizer refuses, with a stable machine-readable code and a bounded message."""

    def __init__(self, code: str, message: str) -> None:
        message = clip(message, MESSAGE_LIMIT)
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class SplitURL:
    """A syntax-normalized URL: every component already canonical."""

    scheme: str
    host: str
    port: str  # "" when default or absent
    path: str
    params: list[tuple[str, str | None]]  # (name, value); value None when the pair had no '='
    notes: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}" if self.port else f"{self.scheme}://{self.host}"


def join_params(params: list[tuple[str, str | None]]) -> str:
    return "&".join([name if value is None else f"{name}={value}" for name, value in params])


def unsplit(scheme_host: str, path: str, params: list[tuple[str, str | None]]) -> str:
    if not params:
        return scheme_host + path
    return f"{scheme_host}{path}?{join_params(params)}"


# -- percent-encoding -------------------------------------------------------------------------


def _fix_escape(match: re.Match[str]) -> str:
    text = match.group()
    if text[0] == "%":
        if len(text) == 1:
            raise URLError("invalid_percent_encoding", "a '%' is not followed by two hexadecimal digits")
        byte = int(text[1:], 16)
        return chr(byte) if byte in _UNRESERVED else "%" + text[1:].upper()
    return "".join(f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in text.encode("utf-8"))


def normalize_path_part(text: str) -> str:
    return _ESCAPE_OR_OTHER_PATH.sub(_fix_escape, text) if _PATH_WORK.search(text) else text


def normalize_query_part(text: str) -> str:
    return _ESCAPE_OR_OTHER_QUERY.sub(_fix_escape, text) if _QUERY_WORK.search(text) else text


# -- host -------------------------------------------------------------------------------------


def _ipv4_number(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part)


def _ipv4(host: str) -> str | None:
    """WHATWG: a host whose last label is a number is an IPv4 address in any of its forms."""
    parts = host.split(".")
    last = parts[-1]
    if not (last.isdigit() or (last[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in last[2:]))):
        return None
    if len(parts) > 4:
        raise URLError("invalid_host", f"{quote(host)} looks like an IPv4 address but has {len(parts)} parts")
    try:
        numbers = [_ipv4_number(p) for p in parts]
    except ValueError:
        raise URLError("invalid_host", f"{quote(host)} looks like an IPv4 address but a part is not a number") from None
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise URLError("invalid_host", f"{quote(host)} is an IPv4 address out of range")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(value))


_COMPATIBLE_SCRIPTS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Cyrillic and Greek letters drawn like Latin ones: a label written only with these, under a
# TLD of another script, is a whole-script homograph (раураl.com).
_LATIN_LOOKALIKES = frozenset("аеорсухіјѕһԁӏԛԝвкмнтьзԍɡαεικνορτυχϲ")
_CYRILLIC_TLDS = frozenset({"ru", "su", "by", "bg", "kz", "ua", "mk", "rs", "mn", "kg", "tj", "uz"})


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None  # digits, hyphens, marks: common to all scripts
    name = unicodedata.name(char, "")
    if name.startswith("CJK"):
        return "HAN"
    return name.split(" ", 1)[0] or None


def _check_homograph(unicode_host: str) -> None:
    labels = unicode_host.split(".")
    tld = labels[-1]
    tld_scripts = {_script(c) for c in tld} - {None}
    for label in labels:
        scripts = {_script(c) for c in label} - {None}
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _COMPATIBLE_SCRIPTS):
            names = ", ".join(sorted(s or "" for s in scripts))
            raise URLError("idn_homograph", f"host label {quote(label)} mixes scripts ({names})")
        if (
            scripts & {"CYRILLIC", "GREEK"}
            and all(c in _LATIN_LOOKALIKES for c in label if c.isalpha())
            and "CYRILLIC" not in tld_scripts
            and tld not in _CYRILLIC_TLDS
            and label != tld
        ):
            raise URLError("idn_homograph", f"host label {quote(label)} is written only with letters that look Latin")


def normalize_host(raw: str) -> str:
    """Canonical ASCII host for `raw` (no port, no userinfo), or URLError."""
    host = raw
    if "%" in host:
        try:
            host = _decode_all(host)
        except UnicodeDecodeError:
            raise URLError("invalid_host", "the host's percent-escapes are not UTF-8") from None
    if host.startswith("["):
        if not host.endswith("]"):
            raise URLError("invalid_host", f"unterminated IPv6 address {quote(raw)}")
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise URLError("invalid_host", f"{quote(raw)} is not an IPv6 address") from None
    # Leading/trailing dots and empty labels do not change the DNS name (Safe Browsing).
    if "." in host and (host[0] == "." or host[-1] == "." or ".." in host):
        host = ".".join(label for label in host.split(".") if label)
    if not host:
        raise URLError("malformed", "the URL has no host")
    if host.isascii():
        host = host.lower()
        if _ASCII_HOST.fullmatch(host) is None:
            bad = next(c for c in host if _ASCII_HOST.fullmatch(c) is None)
            raise URLError("invalid_host", f"the host contains {bad!r}")
        ip = _ipv4(host)
        if ip is not None:
            return ip
        if "xn--" not in host:
            if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
                raise URLError("invalid_host", "the host is longer than DNS allows")
            return host
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
        unicode_host = idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError) as exc:
        reason = clip(str(exc))
        raise URLError("invalid_host", f"the host is not a valid internationalized domain name: {reason}") from None
    _check_homograph(unicode_host)
    return ascii_host


def _decode_all(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        return bytes.fromhex(match.group()[1:]).decode("latin-1")

    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise URLError("invalid_percent_encoding", "a '%' in the host is not followed by two hexadecimal digits")
    return re.sub(r"%[0-9A-Fa-f]{2}", repl, text).encode("latin-1").decode("utf-8")


# -- path -------------------------------------------------------------------------------------


def normalize_path(path: str, notes: list[str] | None = None) -> str:
    if not path:
        if notes is not None:
            notes.append("empty path → '/'")
        return "/"
    if "\\" in path:
        path = path.replace("\\", "/")
        if notes is not None:
            notes.append("backslashes → '/'")
    fixed = normalize_path_part(path)
    if notes is not None and fixed != path:
        notes.append(f"percent-encoding in the path normalized ({quote(path)} → {quote(fixed)})")
    path = fixed
    if "//" in path:
        path = re.sub(r"/{2,}", "/", path)
        if notes is not None:
            notes.append("duplicate slashes collapsed")
    if "/." in path:
        resolved = _remove_dot_segments(path)
        if notes is not None and resolved != path:
            notes.append(f"dot segments resolved ({quote(path)} → {quote(resolved)})")
        path = resolved
    return path


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


# -- the whole URL ----------------------------------------------------------------------------

_host_cache: dict[str, tuple[str, str] | URLError] = {}


def _authority(scheme: str, authority: str, notes: list[str] | None) -> tuple[str, str]:
    key = scheme + authority
    cached = _host_cache.get(key)
    if cached is not None and notes is None:
        if isinstance(cached, URLError):
            raise cached
        return cached
    try:
        result = _parse_authority(scheme, authority, notes)
    except URLError as exc:
        if len(_host_cache) >= _HOST_CACHE_LIMIT:
            _host_cache.clear()
        _host_cache[key] = exc
        raise
    if len(_host_cache) >= _HOST_CACHE_LIMIT:
        _host_cache.clear()
    _host_cache[key] = result
    return result


def _parse_authority(scheme: str, authority: str, notes: list[str] | None) -> tuple[str, str]:
    if "@" in authority:
        authority = authority.rpartition("@")[2]
        if notes is not None:
            notes.append("user information removed")
    host, port = authority, ""
    bracket = authority.rfind("]")
    colon = authority.rfind(":")
    if colon > bracket:
        host, port = authority[:colon], authority[colon + 1 :]
        if port and not (port.isascii() and port.isdigit()):
            raise URLError("invalid_port", f"port {quote(port, 40)} is not a number")
        # Length first: int() of more than 4,300 digits raises ValueError, not a URL error.
        if port and (len(port.lstrip("0")) > 5 or int(port) > 65535):
            raise URLError("invalid_port", f"port {clip(port, 40)} is out of range")
        if port:
            port = str(int(port))
        if not port or port == DEFAULT_PORTS[scheme]:
            if notes is not None:
                notes.append(f"default port {port or '(empty)'} removed")
            port = ""
    canonical = normalize_host(host)
    if notes is not None and canonical != host:
        notes.append(f"host {quote(host)} → {quote(canonical)}")
    return canonical, port


def split(url: str, notes: list[str] | None = None, max_length: int = MAX_URL_LENGTH) -> SplitURL:
    """Parse and syntax-normalize `url`; raises URLError with a specific code."""
    if not isinstance(url, str):
        raise URLError("malformed", "the URL is not a string")
    if len(url) > max_length:
        raise URLError("too_long", f"the URL is {len(url)} characters; at most {max_length}")
    if notes is None:
        simple = _SIMPLE.fullmatch(url)
        if simple is not None:
            scheme, authority, path, query = simple.groups()
            if scheme not in ("http", "https"):
                scheme = scheme.lower()
            host, port = _authority(scheme, authority, None)
            if not path:
                path = "/"
            elif "//" in path or "/." in path:
                path = normalize_path(path)
            return SplitURL(scheme, host, port, path, parse_query(query) if query else [], [])
    if url[:1] in _STRIPPED or url[-1:] in _STRIPPED:
        url = url.strip(_STRIPPED)
        if notes is not None:
            notes.append("surrounding whitespace removed")
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
        if notes is not None:
            notes.append("tabs and newlines removed")
    if not url:
        raise URLError("empty", "the URL is empty")
    if _CONTROL.search(url):
        raise URLError("control_characters", "the URL contains control characters")

    match = _SCHEME.match(url)
    if match is None or _HOST_PORT_NO_SCHEME.match(url):
        scheme, rest = "http", url
        if notes is not None:
            notes.append("no scheme: http assumed")
    else:
        scheme = match.group(1).lower()
        if scheme not in DEFAULT_PORTS:
            raise URLError("unsupported_scheme", f"scheme {quote(scheme, 60)} is not http or https")
        rest = url[match.end() :]
    start = 0
    while start < len(rest) and rest[start] in "/\\":
        start += 1
    rest = rest[start:] if start else rest

    end = len(rest)
    for sep in "/?#\\":
        at = rest.find(sep)
        if at != -1 and at < end:
            end = at
    authority, rest = rest[:end], rest[end:]
    if not authority:
        raise URLError("malformed", "the URL has no host")
    host, port = _authority(scheme, authority, notes)

    hash_at = rest.find("#")
    if hash_at != -1:
        rest = rest[:hash_at]
        if notes is not None:
            notes.append("fragment removed")
    path, _, query = rest.partition("?")
    if path == "/" or (path and _PATH_WORK.search(path) is None and "//" not in path and "/." not in path):
        pass  # already canonical: the common case
    else:
        path = normalize_path(path, notes)

    params = parse_query(query, notes) if query else []
    return SplitURL(scheme, host, port, path, params, notes if notes is not None else [])


def parse_query(query: str, notes: list[str] | None = None) -> list[tuple[str, str | None]]:
    pairs = query.split("&")
    if len(pairs) > MAX_PARAMS:
        raise URLError("too_many_params", f"the query has {len(pairs)} parameters; at most {MAX_PARAMS}")
    params: list[tuple[str, str | None]] = []
    dropped_empty = 0
    valueless = False
    needs_work = _QUERY_STRING_WORK.search(query) is not None  # one scan for the whole query
    for pair in pairs:
        if not pair:
            dropped_empty += 1
            continue
        name, eq, value = pair.partition("=")
        if needs_work and _QUERY_WORK.search(pair) is not None:  # '=' is allowed: covers name and value
            name = normalize_query_part(name)
            if value:
                value = normalize_query_part(value)
        if not name and not value:
            dropped_empty += 1
            continue
        if eq:
            params.append((name, value))
        else:
            params.append((name, None))
            valueless = True
    if notes is not None and dropped_empty:
        notes.append(f"{dropped_empty} empty parameter(s) removed")
    if len(params) > 1:
        # Tuples of strings sort by (name, value) natively; a valueless pair needs the key.
        ordered = sorted(set(params), key=_param_key) if valueless else sorted(set(params))
        if notes is not None:
            if len(ordered) < len(params):
                notes.append(f"{len(params) - len(ordered)} duplicate parameter(s) removed")
            elif ordered != params:
                notes.append("parameters sorted by name")
        return ordered
    return params


def _param_key(param: tuple[str, str | None]) -> tuple[str, str, bool]:
    return param[0], param[1] or "", param[1] is not None


def canonicalize(url: str) -> str:
    """The syntax layer alone: the canonical spelling of `url`."""
    parts = split(url)
    return unsplit(parts.origin, parts.path, parts.params)
