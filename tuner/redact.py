"""Credentials out of what the tuner prints, logs and records: storage and tracking URLs.

``mask_url`` is the one place a URL is made safe to show; ``without_secrets`` removes a URL's
secrets from any other text (a driver's error message may quote the URL it was given).
"""
from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
SECRET_PARAMETERS = ("password", "passwd", "pwd", "secret", "token", "key", "auth", "credential")
_PARTS = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<location>[^?#]*)"
                    r"(?:\?(?P<query>[^#]*))?(?P<fragment>#.*)?$", re.DOTALL)


def _is_secret(name: str) -> bool:
    name = unquote(name).lower()
    return any(word in name for word in SECRET_PARAMETERS)


def _split(url: str) -> tuple[str, list[str]] | None:
    """(the masked URL, the secrets it held), or None when ``url`` is not a URL."""
    match = _PARTS.match(url) if isinstance(url, str) else None
    if match is None:
        return None
    secrets = []
    location = match["location"]  # user:password@host/path; a password may hold / or @
    if "@" in location:
        userinfo, host = location.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if colon and password and "/" not in user:
            secrets.append(password)
            location = f"{user}:{MASK}@{host}"
    query = match["query"]
    if query:
        parameters = []
        for parameter in re.split(r"([&;])", query):
            name, equals, value = parameter.partition("=")
            if equals and value and _is_secret(name):
                secrets.append(value)
                parameter = f"{name}={MASK}"
            parameters.append(parameter)
        query = "".join(parameters)
    masked = (match["scheme"] + location + (f"?{query}" if query is not None else "")
              + (match["fragment"] or ""))
    return masked, secrets


def mask_url(url: str) -> str:
    """``url`` with its password (``user:password@`` -> ``user:***@``) and the values of query
    parameters named like secrets (password, passwd, pwd, secret, token, key, ...) masked;
    anything that is not a URL is returned unchanged."""
    split = _split(url)
    return url if split is None else split[0]


def without_secrets(text: str, *urls: str | None) -> str:
    """``text`` with every secret of ``urls`` (as written and percent-decoded) masked, each URL
    first replaced by its masked form."""
    for url in filter(None, urls):
        split = _split(url)
        if split is None:
            continue
        masked, secrets = split
        text = text.replace(url, masked)
        for secret in sorted({s for raw in secrets for s in (raw, unquote(raw)) if s},
                             key=len, reverse=True):
            text = text.replace(secret, MASK)
    return text
