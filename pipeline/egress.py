"""The egress policy: every outbound request the package makes (language model, embeddings, vendor connectors,
publishing, the eval judge) is decided here from its *effective* destination, and recorded.

Why one place, and why at the transport: a locality check that reads a configured base URL misses where the bytes
really go. A LangChain ``provider:model`` name calls the provider's own endpoint whatever the base URL says; httpx
sends a request for 127.0.0.1 through ``HTTPS_PROXY``/``ALL_PROXY`` when the environment says so; and a client that
follows redirects sends a 307's body to whatever host the ``Location`` names. So:

* ``EgressTransport`` (and ``AsyncEgressTransport``) is the httpx transport of every client the package builds.
  httpx hands it every request it sends — each redirect hop included — so each is decided, not only the first.
  It routes the request itself: local hosts directly (never through a proxy, which would carry local traffic off
  the machine), remote hosts through the proxy the environment names (``HTTP(S)_PROXY``/``ALL_PROXY`` minus
  ``NO_PROXY``, lower case first, as curl and urllib read them). A client given a transport ignores httpx's own
  proxy handling, so the route decided is the route taken.
* ``EgressPolicy.decide``: loopback (127.0.0.0/8, ::1, ``localhost``) and ``POSTMORTEM_EGRESS_LOCAL_HOSTS`` are
  local; anything else is remote. Restricted content goes only to local destinations unless
  ``POSTMORTEM_ALLOW_RESTRICTED_REMOTE``; a credential never travels over plain http to a remote host, whatever
  the settings.
* What our transport cannot sit under (a LangChain provider's own SDK client) is decided by name, as remote.

Every decision, allowed or refused, is one JSON line in HOME/runs/egress.jsonl: when, what for (purpose), where
(host:port, and the proxy's host:port), and the verdict with its reason. Never a body, a path, a header or a token.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from pipeline.atomic import append_line
from pipeline.errors import EgressError
from pipeline.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "no-key-needed"  # sent as the API key to local servers that want none; not a credential
ALLOW_SETTING = "POSTMORTEM_ALLOW_RESTRICTED_REMOTE"
LOCAL_HOSTS_SETTING = "POSTMORTEM_EGRESS_LOCAL_HOSTS"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "cookie")
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressDecision(BaseModel):
    """One decision: a line of egress.jsonl. ``destination`` and ``via_proxy`` are host:port only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    purpose: str
    destination: str
    scheme: str
    via_proxy: str | None = None
    local: bool
    restricted: bool
    credential: bool
    allowed: bool
    reason: str


def _ip(host: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _in(ip: IPAddress, network: IPNetwork) -> bool:
    return ip.version == network.version and ip in network


def _port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def host_port(url: httpx.URL) -> str:
    """``host:port`` of a URL (IPv6 in brackets); never its user info, path or query."""
    host = url.host
    return f"[{host}]:{_port(url)}" if ":" in host else f"{host}:{_port(url)}"


def carries_credential(request: httpx.Request) -> bool:
    """Whether a request carries a credential: an auth-bearing header (other than the placeholder key sent to
    local servers that want none) or user info in its URL."""
    if request.url.userinfo:
        return True
    for name in _CREDENTIAL_HEADERS:
        value = request.headers.get(name, "").strip()
        if value and value != f"Bearer {PLACEHOLDER_KEY}":
            return True
    return False


class EgressPolicy:
    """Decides, records and (through its transports) enforces where outbound requests may go.

    ``environ`` is where proxy variables are read (default: the process environment, read at each decision)."""

    def __init__(
        self,
        *,
        local_hosts: Iterable[str] = (),
        allow_restricted_remote: bool = False,
        log_path: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in local_hosts:
            text = entry.strip().lower().rstrip(".")
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                names.add(text)
        self._names = frozenset(names)
        self._networks = tuple(networks)
        self.allow_restricted_remote = allow_restricted_remote
        self.log_path = log_path
        self._environ = environ

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        return cls(
            local_hosts=settings.egress_local_hosts,
            allow_restricted_remote=settings.allow_restricted_remote,
            log_path=settings.runs_dir / "egress.jsonl" if settings.egress_log else None,
        )

    @classmethod
    def default(cls) -> EgressPolicy:
        """The policy of the process settings, for clients built without one."""
        from pipeline.settings import get_settings

        return cls.from_settings(get_settings())

    # --- where ---------------------------------------------------------------------------------------------------

    def is_local(self, host: str) -> bool:
        """Loopback, ``localhost``, or a host/network listed in POSTMORTEM_EGRESS_LOCAL_HOSTS."""
        name = host.strip().strip("[]").lower().rstrip(".")
        if not name:
            return False
        if name in _LOOPBACK_NAMES or name in self._names:
            return True
        ip = _ip(name)
        return ip is not None and (ip.is_loopback or any(_in(ip, net) for net in self._networks))

    def _env(self, name: str) -> str | None:
        environ = os.environ if self._environ is None else self._environ
        lower = (environ.get(name.lower()) or "").strip()
        # Under CGI, HTTP_PROXY is a request header (httpoxy): urllib ignores it there, and so do we.
        cgi = name.upper() == "HTTP_PROXY" and "REQUEST_METHOD" in environ
        upper = "" if cgi else (environ.get(name.upper()) or "").strip()
        return lower or upper or None

    def _bypassed(self, url: httpx.URL) -> bool:
        """NO_PROXY: ``*``, host names (a leading dot or ``*.`` optional; subdomains match), IPs and CIDR
        networks, each optionally with ``:port``."""
        value = self._env("NO_PROXY")
        if not value:
            return False
        host = url.host.lower().rstrip(".")
        ip = _ip(host)
        for raw in value.split(","):
            entry = raw.strip().lower().split("://", 1)[-1].rstrip("/")
            if not entry:
                continue
            if entry == "*":
                return True
            port: int | None = None
            if entry.startswith("["):
                bracket, _, rest = entry[1:].partition("]")
                entry, port = bracket, int(rest[1:]) if rest[1:].isdigit() else None
            elif entry.count(":") == 1:
                entry, _, text = entry.partition(":")
                port = int(text) if text.isdigit() else None
            if port is not None and port != _port(url):
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                domain = entry.removeprefix("*").lstrip(".").rstrip(".")
                if domain and (host == domain or host.endswith("." + domain)):
                    return True
                continue
            if ip is not None and _in(ip, network):
                return True
        return False

    def proxy_for(self, url: httpx.URL) -> httpx.URL | None:
        """The proxy a request to ``url`` goes through: none for a local host, none when NO_PROXY names the host,
        else the scheme's proxy variable, else ALL_PROXY. Raises EgressError for a proxy that is not a URL."""
        if self.is_local(url.host) or self._bypassed(url):
            return None
        value = self._env(f"{url.scheme}_proxy") or self._env("ALL_PROXY")
        if value is None:
            return None
        try:
            return httpx.URL(value if "://" in value else f"http://{value}")
        except httpx.InvalidURL:
            raise EgressError(
                f"the {url.scheme} proxy setting is not a URL; check HTTP(S)_PROXY/ALL_PROXY",
                destination=host_port(url),
            ) from None

    # --- whether -------------------------------------------------------------------------------------------------

    def route(
        self, url: httpx.URL | str, *, purpose: str, restricted: bool, credential: bool
    ) -> tuple[EgressDecision, httpx.URL | None]:
        """The decision for a request to ``url`` and the proxy it would go through (None: direct)."""
        target = httpx.URL(url) if isinstance(url, str) else url
        destination = host_port(target) if target.host else str(target)[:80]
        local = bool(target.host) and self.is_local(target.host)
        proxy = None if local else self.proxy_for(target)
        via = host_port(proxy) if proxy is not None else None
        where = f"{destination}" + (f" (through the proxy {via})" if via else "")
        if target.scheme not in _DEFAULT_PORTS or not target.host:
            allowed, reason = False, f"{destination} is not an http(s) URL"
        elif credential and target.scheme == "http" and not local:
            allowed, reason = (
                False,
                f"a credential is never sent over plain http to {where}: use https, or list the host in "
                f"{LOCAL_HOSTS_SETTING} if it is this machine",
            )
        elif restricted and not local and not self.allow_restricted_remote:
            allowed, reason = (
                False,
                f"restricted content is not sent to {where}, which is not this machine: use an endpoint on "
                f"127.0.0.1, or set {ALLOW_SETTING}=true",
            )
        elif local:
            allowed, reason = True, "local destination"
        elif restricted:
            allowed, reason = True, f"restricted content to a remote destination, allowed by {ALLOW_SETTING}"
        else:
            allowed, reason = True, "remote destination, no restricted content"
        decision = EgressDecision(
            at=datetime.now(UTC),
            purpose=purpose,
            destination=destination,
            scheme=target.scheme,
            via_proxy=via,
            local=local,
            restricted=restricted,
            credential=credential,
            allowed=allowed,
            reason=reason,
        )
        return decision, proxy

    def decide(self, url: httpx.URL | str, *, purpose: str, restricted: bool, credential: bool) -> EgressDecision:
        return self.route(url, purpose=purpose, restricted=restricted, credential=credential)[0]

    def decide_provider(self, provider: str, *, purpose: str, restricted: bool) -> EgressDecision:
        """A destination our transport cannot sit under: a LangChain provider's own client, which calls the
        provider's endpoint (and reads its own proxy settings). Remote by definition."""
        if restricted and not self.allow_restricted_remote:
            allowed, reason = (
                False,
                f"restricted content is not sent through the LangChain provider {provider!r}: its client calls the "
                f"provider's own endpoint, whatever the base URL says. Use an OpenAI-compatible server on 127.0.0.1 "
                f"(--base-url http://127.0.0.1:PORT/v1 with a plain model name), or set {ALLOW_SETTING}=true",
            )
        elif restricted:
            allowed, reason = True, f"restricted content to a LangChain provider, allowed by {ALLOW_SETTING}"
        else:
            allowed, reason = True, "LangChain provider's own client (remote), no restricted content"
        return EgressDecision(
            at=datetime.now(UTC),
            purpose=purpose,
            destination=f"langchain:{provider}",
            scheme="provider",
            local=False,
            restricted=restricted,
            credential=True,
            allowed=allowed,
            reason=reason,
        )

    def record(self, decision: EgressDecision) -> None:
        if self.log_path is not None:
            append_line(self.log_path, decision.model_dump_json())

    def enforce(self, decision: EgressDecision) -> EgressDecision:
        """Record the decision; raise EgressError when it refuses."""
        self.record(decision)
        if not decision.allowed:
            raise EgressError(f"{decision.purpose}: {decision.reason}", destination=decision.destination)
        return decision

    def check(self, url: httpx.URL | str, *, purpose: str, restricted: bool, credential: bool) -> EgressDecision:
        """Decide, record and enforce one request."""
        return self.enforce(self.decide(url, purpose=purpose, restricted=restricted, credential=credential))

    def preflight(self, url: httpx.URL | str, *, purpose: str, restricted: bool, credential: bool) -> EgressDecision:
        """Refuse early (recorded, EgressError) what the transport would refuse on the first request; an allowed
        preflight is not recorded, since the transport records each request actually sent."""
        decision = self.decide(url, purpose=purpose, restricted=restricted, credential=credential)
        return decision if decision.allowed else self.enforce(decision)

    def admit(self, request: httpx.Request, *, purpose: str, restricted: bool) -> httpx.URL | None:
        """The transport's check of one request: recorded, EgressError if refused, else the proxy to use."""
        decision, proxy = self.route(
            request.url, purpose=purpose, restricted=restricted, credential=carries_credential(request)
        )
        self.enforce(decision)
        return proxy

    # --- clients -------------------------------------------------------------------------------------------------

    def client(self, *, purpose: str, restricted: bool, **kwargs: Any) -> httpx.Client:
        """An httpx client whose every request (redirect hops included) goes through this policy."""
        return httpx.Client(transport=EgressTransport(self, purpose=purpose, restricted=restricted), **kwargs)

    def async_client(self, *, purpose: str, restricted: bool, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=AsyncEgressTransport(self, purpose=purpose, restricted=restricted), **kwargs)


class EgressTransport(httpx.BaseTransport):
    """The enforcement point: checks every request against the policy, then sends it directly (local) or
    through the environment's proxy (remote). ``inner``, when given, sends instead (a test double, or a transport
    that must see the request after the check); it does its own routing.

    ``purpose`` and ``restricted`` say what this client carries; a client is built per incident or per call, and a
    publisher marks its connector's client restricted before posting (see ``ApiClient.carry``)."""

    def __init__(
        self, policy: EgressPolicy, *, purpose: str, restricted: bool, inner: httpx.BaseTransport | None = None
    ) -> None:
        self.policy = policy
        self.purpose = purpose
        self.restricted = restricted
        self._inner = inner
        self._routes: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.policy.admit(request, purpose=self.purpose, restricted=self.restricted)
        if self._inner is not None:
            return self._inner.handle_request(request)
        key = str(proxy) if proxy is not None else ""
        with self._lock:
            transport = self._routes.get(key)
            if transport is None:
                transport = self._routes[key] = httpx.HTTPTransport(proxy=proxy)
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            routes, self._routes = list(self._routes.values()), {}
        for transport in routes:
            transport.close()
        if self._inner is not None:
            self._inner.close()


class AsyncEgressTransport(httpx.AsyncBaseTransport):
    """EgressTransport for httpx.AsyncClient (LangChain builds an async OpenAI client beside the sync one)."""

    def __init__(self, policy: EgressPolicy, *, purpose: str, restricted: bool) -> None:
        self.policy = policy
        self.purpose = purpose
        self.restricted = restricted
        self._routes: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.policy.admit(request, purpose=self.purpose, restricted=self.restricted)
        key = str(proxy) if proxy is not None else ""
        transport = self._routes.get(key)
        if transport is None:
            transport = self._routes[key] = httpx.AsyncHTTPTransport(proxy=proxy)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        routes, self._routes = list(self._routes.values()), {}
        for transport in routes:
            await transport.aclose()
