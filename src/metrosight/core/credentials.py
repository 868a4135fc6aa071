"""Which parts of a camera address are credentials: parameter names (``token``, ``X-Amz-Signature``, ``pwd``, …),
values that carry an address or nested credential pairs, and ``name=value`` pairs written into a path.

Used by :class:`metrosight.core.source.SourceSpec` to show, log and store an address without its credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

#: query (and path) parameter names whose values are secrets (compared case-insensitively, ignoring ``-``/``_``)
SECRET_PARAMS: frozenset[str] = frozenset(
    {
        "token",
        "accesstoken",
        "authtoken",
        "apitoken",
        "sessiontoken",
        "refreshtoken",
        "idtoken",
        "jwt",
        "bearer",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "pin",
        "secret",
        "clientsecret",
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "streamkey",
        "pkey",
        "auth",
        "authorization",
        "authkey",
        "signature",
        "sig",
        "hmac",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "sid",
        "user",
        "username",
        "usr",
        "login",
        "account",
        "code",
        # as cameras name them in snapshot/stream CGI addresses (?u=admin&p=…, ?usr=…&psw=…, ?loginuse=…&loginpas=…)
        "u",
        "p",
        "pw",
        "psw",
        "pswd",
        "pas",
        "loginuse",
        "loginpas",
        # signed addresses (CDNs, nginx secure_link, Akamai): the signature is the credential
        "hash",
        "md5",
        "sha1",
        "sha256",
        "hdnts",
        "k",
        "st",
    }
)


_SECRET_PARTS = (
    "token",
    "pass",
    "secret",
    "sign",
    "credential",
    "apikey",
    "auth",
    "pwd",
    "passphrase",
    "hmac",
    "ticket",
)


def is_secret_param(name: str) -> bool:
    """Whether a query or path parameter called ``name`` holds a credential (``token``, ``X-Amz-Signature``,
    ``apiKey``, ``password`` …; case-insensitive)."""
    n = "".join(ch for ch in name.lower() if ch.isalnum())
    return n in SECRET_PARAMS or any(part in n for part in _SECRET_PARTS)


def unlike_prose(secret: str) -> bool:
    """A credential that cannot be a word or number of a message (``tok123``, ``P@ss w0rd``): masked wherever it
    stands. Words (``open``) and short numbers (``111``) may be the message's own."""
    return len(secret) >= 6 and not secret.isalpha() and not secret.isdigit()


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _nested_names(value: str) -> list[str]:
    """The names of the ``name=`` pairs inside ``value`` (linear time: each name is the run of name characters
    before an ``=``)."""
    names = []
    for chunk in value.split("=")[:-1]:
        i = len(chunk)
        while i > 0 and chunk[i - 1] in _NAME_CHARS:
            i -= 1
        if i < len(chunk):
            names.append(chunk[i:])
    return names


def is_secret_value(value: str) -> bool:
    """Whether a parameter's (decoded) value carries a credential whatever the parameter is called: an address
    with user information or its own query (``?url=rtsp://admin:pw@cam/x``, ``?q=user:pw@host``), or nested
    ``name=value`` pairs with a credential name (``?hdnts=exp=1~acl=/*~hmac=…``)."""
    if "@" in value or "://" in value:
        return True
    return any(is_secret_param(name) for name in _nested_names(value))


@dataclass(frozen=True, slots=True)
class Param:
    """One ``name=value`` of a query, as written (``raw``) and decoded."""

    name: str
    value: str
    raw_name: str
    raw_value: str
    has_value: bool
    sep: str = "&"  # the separator written before it ("" for the first; "&" or ";")

    @property
    def secret(self) -> bool:
        """Named like a credential, or a value that carries one (see :func:`is_secret_value`)."""
        return is_secret_param(self.name) or is_secret_value(self.value)

    @property
    def secret_without_value(self) -> bool:
        """A parameter without ``=`` whose decoded text holds a credential (``?token%3D…``, ``?user:pw@host``):
        shown as ``***`` whole."""
        return (
            not self.has_value
            and ("=" in self.name or ":" in self.name)
            and (is_secret_value(self.name) or is_secret_param(self.name.split("=", 1)[0]))
        )


def path_secrets(path: str) -> list[str]:
    """Values of credential parameters written into a URL path, as some cameras take them
    (``/user=admin_password=secret_channel=1`` or ``/cam;password=secret``)."""
    if "=" not in path:
        return []
    found: list[str] = []
    for segment in path.split("/"):
        if "=" not in segment:
            continue
        for piece in segment.replace(";", "&").split("&"):
            found += _underscore_pairs(piece)
    return [f for f in found if f]


def _underscore_pairs(piece: str) -> list[str]:
    """Secret values of ``name=value`` pairs in ``piece``, which may be chained with ``_``
    (``user=admin_password=x_channel=1``)."""
    out: list[str] = []
    names_values: list[tuple[str, str]] = []
    chunks = piece.split("=")
    if len(chunks) < 2:
        return out
    name = chunks[0]
    for i, chunk in enumerate(chunks[1:], start=1):
        if i == len(chunks) - 1:
            names_values.append((name, chunk))
            break
        value, sep, next_name = chunk.rpartition("_")
        if not sep:  # no '_' before the next name: the value runs on
            value, next_name = chunk, ""
        names_values.append((name, value))
        name = next_name
    for n, v in names_values:
        if is_secret_param(n.rsplit("_", 1)[-1]) and v:
            out.append(v)
    return out


def safe_url(url: str) -> str:
    """``url`` (a database or Redis URL) as it may be shown or logged: the password of its user info hidden (all of
    it after the user name, even where the URL cannot be parsed, e.g. a bad port) and the values of its secret query
    parameters (``?password=…``, ``sslpassword``, ``token`` …: :func:`is_secret_param`)
    shown as ``***``. Never raises."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    base, qmark, query = rest.partition("?")
    at = base.rfind("@")
    if at > 0 and not base.startswith("/"):
        user, colon, _ = base[:at].partition(":")
        base = (f"{user}:***" if colon else user) + base[at:]
    if qmark:
        params = []
        for param in query.split("&"):
            name, eq, value = param.partition("=")
            params.append(f"{name}=***" if eq and value and is_secret_param(name) else param)
        query = "&".join(params)
    return f"{scheme}{sep}{base}{qmark}{query}"
