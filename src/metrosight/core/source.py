"""A camera or video source, parsed once into a typed value.

Every form of a source that is shown, logged or stored is derived from the parsed value with its credentials
removed (:attr:`SourceSpec.display`); only :attr:`SourceSpec.url_for_ffmpeg` carries them, and only into the
decoder. Text that may quote the source (an FFmpeg error message) goes through :meth:`SourceSpec.redact`.

Accepted forms:

- a video file path (``/videos/platform.mp4``);
- ``webcam:N`` (V4L2 device ``/dev/videoN``);
- network streams FFmpeg reads: ``rtsp://``, ``rtsps://``, ``http://``, ``https://`` (MJPEG over HTTP, HLS …),
  ``rtmp://``, ``rtmps://``, ``udp://``, ``rtp://``. ``srt://`` is refused by name: the FFmpeg inside PyAV is
  built without SRT.

Credentials go in the URL's user information (``rtsp://user:password@host/…``) or in its query
(``?token=…``). Reserved characters in a user name or password (``@ : / ? # %`` and spaces) should be
percent-encoded (``@`` → ``%40``, ``/`` → ``%2F``, ``#`` → ``%23``, ``?`` → ``%3F``, space → ``%20``); FFmpeg
decodes them before authenticating. As in FFmpeg, the user information ends at the *last* ``@`` before the first
``/``, ``?`` or ``#`` after ``//``, so an unescaped ``@`` in a password still works; an unescaped ``/``, ``?`` or
``#`` cuts the address short and is refused, with a message saying to percent-encode it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, unquote, urlsplit

from metrosight.core.credentials import Param, is_secret_param, path_secrets, unlike_prose

Transport = Literal["auto", "tcp", "udp"]
TRANSPORTS: tuple[Transport, ...] = ("auto", "tcp", "udp")

#: network scheme → kind (the family of reconnect hints and messages)
NETWORK_SCHEMES: Final[Mapping[str, str]] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "http": "http",
    "https": "http",
    "rtmp": "rtmp",
    "rtmps": "rtmp",
    "udp": "udp",
    "rtp": "udp",
}
#: schemes refused by name, with the reason
REFUSED_SCHEMES: Final[Mapping[str, str]] = {
    "srt": "the FFmpeg inside PyAV is built without SRT; relay the stream as RTSP, RTMP or UDP",
}


SUPPORTED = "a video file path, webcam:N, or a stream URL (rtsp, rtsps, http, https, rtmp, rtmps, udp, rtp)"
PERCENT_HINT = (
    "percent-encode reserved characters in the user name and password "
    "(@ as %40, / as %2F, ? as %3F, # as %23, : as %3A, % as %25, space as %20)"
)


class SourceSyntaxError(ValueError):
    """A source that cannot be understood; the message says what to write instead and never quotes credentials."""


#: a word of a message that is (part of) an address or a parameter: where credentials are written
_WORD = re.compile(r"\S+")
_ADDRESS_MARK = re.compile(r"://|[@=%]")


def _nested_secrets(value: str) -> list[str]:
    """The credentials inside a parameter's value: an address's user name and password, the values of nested
    credential pairs (``exp=1~hmac=…``)."""
    out: list[str] = []
    if "://" in value:
        with contextlib.suppress(SourceSyntaxError):
            out += SourceSpec.parse(value).secrets()
    if "@" in value:
        userinfo = value.rsplit("@", 1)[0].rsplit("/", 1)[-1]
        out += [piece for piece in userinfo.split(":") if piece]
    for pair in re.split(r"[~&;,]", value):
        name, eq, inner = pair.partition("=")
        if eq and inner and is_secret_param(name):
            out.append(inner)
    return out


@dataclass(frozen=True, slots=True, repr=False)
class SourceSpec:
    """Where frames come from, parsed.

    Attributes:
        kind: ``file``, ``webcam``, or a network kind: ``rtsp``, ``http``, ``rtmp``, ``udp``.
        target: a file's path or a webcam's device (``/dev/video0``); for a URL, the URL as given (never show it:
            use :attr:`display`).
        scheme: the URL scheme in lower case (``""`` for files and webcams).
        host: host name or address (IPv6 without brackets).
        port: port number, or ``None`` for the scheme's default.
        path: the URL path as written (percent-encoding kept).
        query: the query parameters in order.
        fragment: the URL fragment as written.
        username: the decoded user name, or ``None``.
        password: the decoded password, or ``None`` (``rtsp://:pw@host`` has a password and an empty user name).
        rtsp_transport: ``auto`` (TCP, then UDP), ``tcp`` or ``udp``; for RTSP only.
    """

    kind: str
    target: str
    scheme: str = ""
    host: str = ""
    port: int | None = None
    path: str = ""
    query: tuple[Param, ...] = ()
    fragment: str = ""
    username: str | None = None
    password: str | None = None
    rtsp_transport: Transport = "auto"

    # -- parsing ---------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, rtsp_transport: str = "auto") -> SourceSpec:
        """Parse a file path, ``webcam:N`` or a stream URL.

        Args:
            text: the source as the user wrote it.
            rtsp_transport: ``auto``, ``tcp`` or ``udp`` (RTSP sources only; ``auto`` for others).

        Raises:
            SourceSyntaxError: empty text, a bad webcam index, an unsupported scheme (named), a URL without a host,
                a bad port, or credentials with unescaped reserved characters. The message never contains the
                source's credentials.
        """
        transport = next((t for t in TRANSPORTS if t == rtsp_transport), None)
        if transport is None:
            raise SourceSyntaxError(f"rtsp_transport must be one of auto, tcp, udp (got {rtsp_transport!r})")
        text = text.strip()
        if not text:
            raise SourceSyntaxError(f"empty source: give {SUPPORTED}")
        if text.lower().startswith("webcam:"):
            if rtsp_transport != "auto":
                raise SourceSyntaxError("rtsp_transport applies to rtsp:// sources only")
            index = text.split(":", 1)[1]
            if not (index.isascii() and index.isdigit()):
                raise SourceSyntaxError(
                    f"bad webcam source {text!r}: use webcam:N with N a device number, e.g. webcam:0"
                )
            return cls("webcam", f"/dev/video{int(index)}")
        _refuse_mistyped_url(text)
        scheme, sep, _ = text.partition("://")
        if not sep or not _looks_like_scheme(scheme):
            if rtsp_transport != "auto":
                raise SourceSyntaxError("rtsp_transport applies to rtsp:// sources only")
            return cls("file", text)
        return _parse_url(text, scheme.lower(), transport)

    # -- forms -----------------------------------------------------------------------------------------------
    @property
    def transports(self) -> tuple[str, ...]:
        """The RTP transports to try, in order, for an RTSP source (``tcp``, ``udp``); ``rtsps://`` has TCP only
        (FFmpeg sends RTP inside its TLS connection whatever is asked). Empty for other kinds."""
        if self.kind != "rtsp":
            return ()
        if self.scheme == "rtsps":
            return ("tcp",)
        return ("tcp", "udp") if self.rtsp_transport == "auto" else (self.rtsp_transport,)

    @property
    def is_network(self) -> bool:
        """A stream reached over the network (reconnects, timeouts), not a file or a local device."""
        return self.kind not in ("file", "webcam")

    @property
    def has_credentials(self) -> bool:
        """The source carries a user name, a password or a credential parameter."""
        return (
            bool(self.username)
            or self.password is not None
            or any(p.secret for p in self.query)
            or bool(path_secrets(self.path))
        )

    @property
    def display(self) -> str:
        """The source as it may be shown, logged or stored: user name and password replaced by ``***``
        (``rtsp://***@host:554/stream``), credential parameters' values by ``***`` (``?token=***``)."""
        if not self.is_network:
            return self.target
        userinfo = "***@" if self.username or self.password is not None else ""
        if self.username == "" and self.password is None:
            userinfo = "@"  # 'udp://@239.0.0.1:1234' (FFmpeg: receive on any interface): nothing secret in it
        path = self.path
        for secret in path_secrets(path):
            path = path.replace(secret, "***")
        return self._url(userinfo, path, self._query(redacted=True), "#***" if self.fragment else "")

    @property
    def url_for_ffmpeg(self) -> str:
        """The address handed to the decoder, credentials included (user name and password percent-encoded:
        FFmpeg decodes them before authenticating). Never show, log or store it."""
        if not self.is_network:
            return self.target
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = quote(self.username or "", safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        frag = f"#{self.fragment}" if self.fragment else ""
        return self._url(userinfo, self.path, self._query(redacted=False), frag)

    def _url(self, userinfo: str, path: str, query: str, fragment: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{userinfo}{host}{port}{path}{'?' + query if query else ''}{fragment}"

    def _query(self, redacted: bool) -> str:
        parts = []
        for p in self.query:
            value = "***" if redacted and p.secret and p.has_value else p.raw_value
            name = "***" if redacted and p.secret_without_value else p.raw_name
            parts.append(p.sep + (f"{name}={value}" if p.has_value else name))
        return "".join(parts)

    def secrets(self) -> list[str]:
        """Every credential of the source in each form it may take in a message (decoded, as written,
        percent-encoded), longest first: the password, credential parameters' values, and the user name."""
        values: list[str] = [v for v in (self.username, self.password) if v]
        for p in self.query:
            if p.secret and p.value:
                values += [p.value, p.raw_value, *_nested_secrets(p.value)]
            if p.secret_without_value:
                values += [p.name, p.raw_name, *_nested_secrets(p.name)]
        values += path_secrets(self.path)
        forms: set[str] = set()
        for v in values:
            forms |= {v, quote(v, safe=""), quote(v, safe="/"), repr(v)[1:-1], unquote(v)}
        return sorted((f for f in forms if f), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` (an error message, a log line) with this source's address shown as :attr:`display` and its
        credentials replaced by ``***`` wherever else they are written as part of an address or a parameter (a
        word with ``://``, ``@``, ``=`` or ``%``), and elsewhere when they cannot be a word of a message (six
        characters or more, not all letters): passwords and credential values of three characters or more, user
        names of four or more (shorter ones are removed as part of the address).

        A password that is a word of the message is left there (masking it, ``cannot *** RTSP stream`` for the
        password ``open`` or ``Connection ***``, would tell it); so is what the shown address tells anyway (its
        host, port and path): ``tcp://***host`` next to ``rtsp://***@camhost/…`` would tell it too."""
        if not self.is_network or not text:
            return text
        display = self.display
        for form in sorted({self.target, self.url_for_ffmpeg}, key=len, reverse=True):
            text = text.replace(form, display)
        user_forms = set()
        if self.username and len(self.username) < 4:
            user_forms = {self.username, quote(self.username, safe=""), repr(self.username)[1:-1]}
        secrets = [s for s in self.secrets() if len(s) >= 3 and s != "***" and s not in user_forms]
        if not secrets:
            return text
        # One pass, longest match first at each place, so that a secret that contains a shown part is still
        # masked whole; a part that *is* a secret is masked where it stands alone.
        secret_set = set(secrets)
        public = set(self._public_parts()) - secret_set
        tokens = sorted(public | secret_set, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(t) for t in tokens))
        address_like = [m.span() for m in _WORD.finditer(text) if _ADDRESS_MARK.search(m.group(0))]

        def mask(m: re.Match[str]) -> str:
            if m.group(0) in public:
                return m.group(0)
            start, end = m.span()
            if any(a < end and start < b for a, b in address_like) or unlike_prose(m.group(0)):
                return "***"
            return m.group(0)

        return pattern.sub(mask, text)

    def _public_parts(self) -> list[str]:
        """The parts of :attr:`display` that anyone who sees it reads anyway: the whole of it, the host (as
        written in a URL too), the port, and the path and its segments without credential values."""
        display = self.display
        parts = [display, self.host, f"[{self.host}]"]
        if self.port is not None:
            parts += [str(self.port), f"{self.host}:{self.port}", f"[{self.host}]:{self.port}"]
        path = display.split("://", 1)[1]
        path = path[path.find("/") :] if "/" in path else ""
        path = path.split("?", 1)[0].split("#", 1)[0]
        parts += [path, *path.split("/")]
        return [p for p in parts if p and "***" not in p]

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:  # never the credentials, even in a debugger or a traceback's locals
        return f"SourceSpec({self.kind!r}, {self.display!r}, rtsp_transport={self.rtsp_transport!r})"


_KNOWN_SCHEMES = (*NETWORK_SCHEMES, *REFUSED_SCHEMES, "file")
# a known scheme followed by any mix of ':', '/', '\\' and spaces; or any scheme-like word of two or more letters
# followed by ':' and a slash or backslash ('htp:/…'; a one-letter one is a Windows drive, 'c:/videos/…')
_MISTYPED_KNOWN = re.compile(rf"^({'|'.join(_KNOWN_SCHEMES)})\s*(?=[:/\\])([:/\\\s]+)", re.IGNORECASE)
_MISTYPED_ANY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)\s*:\s*[/\\]")


def _refuse_mistyped_url(text: str) -> None:
    """Refuse a stream address whose ``://`` is mistyped (``rtsp:/host``, ``rtsp//host``, ``RTSP:\\\\host``,
    ``htp:/host``): taken for a file path, it would be quoted back whole, credentials included, as "video file
    not found". A folder that happens to be named like a scheme (``rtsp/clip.mp4``) is still a path."""
    m = _MISTYPED_KNOWN.match(text)
    if m is not None:
        scheme, sep = m.group(1).lower(), m.group(2)
        if text[len(m.group(1)) :].startswith("://") or (sep == "/" and ":" not in sep):
            return  # well written (any letter case; the URL parser decides), or a folder named like a scheme
        if scheme == "file":
            raise SourceSyntaxError("file: URLs are not accepted: give the file's path")
        raise SourceSyntaxError(
            f"this looks like a stream address with a mistyped '://': write {scheme}://[USER:PASSWORD@]HOST/PATH "
            "(a video file whose name starts so: write ./ before it)"
        )
    m = _MISTYPED_ANY.match(text)
    if m is not None and not text[len(m.group(1)) :].startswith("://"):
        raise SourceSyntaxError(
            "this looks like a stream address with a mistyped '://': write SCHEME://[USER:PASSWORD@]HOST/PATH "
            "with SCHEME one of rtsp, rtsps, http, https, rtmp, rtmps, udp, rtp (a video file whose name starts so: "
            "write ./ before it)"
        )


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def redact_addresses(text: str) -> str:
    """``text`` with every ``scheme://…`` address in it shown without credentials (its :attr:`SourceSpec.display`;
    one that cannot be read as ``(address not shown)``): for text whose source is not known, such as rows stored
    by an earlier version. Linear in the length of ``text``."""
    if not text or "://" not in text:
        return text
    out: list[str] = []
    done = 0
    pos = text.find("://")
    while pos >= 0:
        start = pos
        while start > done and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        end = pos + 3
        while end < len(text) and not text[end].isspace() and text[end] not in "'\"<>":
            end += 1
        if start < pos and text[start].isalpha():
            url = text[start:end].rstrip(".,;:)]}")
            try:
                spec = SourceSpec.parse(url)
                shown = spec.display if spec.is_network else url
            except SourceSyntaxError:
                shown = "(address not shown)"
            out += [text[done:start], shown]
            done = start + len(url)
        pos = text.find("://", max(end, pos + 3))
    out.append(text[done:])
    return "".join(out)


def stored_form(source: str) -> str:
    """How a source is stored (a run's ``source``): its :attr:`SourceSpec.display`, or ``(unreadable source)``."""
    try:
        return SourceSpec.parse(source).display
    except SourceSyntaxError:
        return "(unreadable source)"


def _looks_like_scheme(s: str) -> bool:
    return bool(s) and s[0].isascii() and s[0].isalpha() and all(c.isascii() and (c.isalnum() or c in "+.-") for c in s)


def _parse_url(text: str, scheme: str, rtsp_transport: Transport) -> SourceSpec:
    if scheme in REFUSED_SCHEMES:
        raise SourceSyntaxError(f"{scheme}:// sources are not supported: {REFUSED_SCHEMES[scheme]}")
    if scheme not in NETWORK_SCHEMES:
        if scheme == "file":
            raise SourceSyntaxError("file:// URLs are not accepted: give the file's path")
        raise SourceSyntaxError(f"unsupported source scheme {scheme}://: give {SUPPORTED}")
    kind = NETWORK_SCHEMES[scheme]
    if rtsp_transport != "auto" and kind != "rtsp":
        raise SourceSyntaxError(f"rtsp_transport applies to rtsp:// sources only, not {scheme}://")
    if scheme == "rtsps" and rtsp_transport == "udp":
        raise SourceSyntaxError(
            "rtsps:// carries RTP over its TLS connection (TCP) only: set rtsp_transport to tcp or auto, "
            "or use rtsp:// for RTP over UDP"
        )
    if any(c in text for c in "\r\n\t\x00"):
        raise SourceSyntaxError(f"the {scheme}:// address contains a line break, tab or NUL character")
    try:
        parts = urlsplit(text)
    except ValueError:  # its message may quote the address
        raise SourceSyntaxError(
            f"the {scheme}:// address cannot be read (bad brackets or characters in the host); {PERCENT_HINT}"
        ) from None
    netloc = parts.netloc
    rest = text[len(scheme) + 3 + len(netloc) :]
    if "@" not in netloc and _userinfo_cut_short(rest):
        raise SourceSyntaxError(
            f"the {scheme}:// address has '/', '?' or '#' before an '@', which cuts it short: {PERCENT_HINT}"
        )
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user_raw, colon, pw_raw = userinfo.partition(":")
        username = unquote(user_raw)
        password = unquote(pw_raw) if colon else None
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        # the port is not a number: most often a password with an unescaped character cut the address short
        raise SourceSyntaxError(
            f"the {scheme}:// address has a bad port after the host: if the user name or password contains "
            f"reserved characters, {PERCENT_HINT}"
        ) from None
    if not host and scheme not in ("udp", "rtp"):
        raise SourceSyntaxError(f"the {scheme}:// address has no host: write {scheme}://HOST[:PORT]/PATH")
    if not hostport and scheme in ("udp", "rtp"):
        raise SourceSyntaxError(f"the {scheme}:// address has no host or port: write {scheme}://HOST:PORT")
    if scheme in ("udp", "rtp") and port is None:
        raise SourceSyntaxError(f"the {scheme}:// address needs a port: write {scheme}://HOST:PORT")
    query: list[Param] = []
    if parts.query:
        # '&' or ';' between parameters (both are in use: '?res=hd;token=…')
        items = re.split(r"([&;])", parts.query)
        sep = ""
        for i, item in enumerate(items):
            if i % 2:
                sep = sep or item
                continue
            if not item:
                continue
            raw_name, eq, raw_value = item.partition("=")
            query.append(
                Param(unquote(raw_name), unquote(raw_value), raw_name, raw_value, bool(eq), sep if query else "")
            )
            sep = ""
    return SourceSpec(
        kind=kind,
        target=text,
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path,
        query=tuple(query),
        fragment=parts.fragment,
        username=username,
        password=password,
        rtsp_transport=rtsp_transport,
    )


def _userinfo_cut_short(rest: str) -> bool:
    """Whether the text after the authority starts with an ``@`` reached before any further ``/`` or ``=``: the
    sign of a user name or password whose ``/``, ``?`` or ``#`` ended the authority early
    (``rtsp://user:pa/ss@host/``)."""
    if "@" not in rest:
        return False
    body = rest[1:] if rest[:1] in "/?#" else rest
    for ch in body:
        if ch == "@":
            return True
        if ch in "/=&":
            return False
    return False
