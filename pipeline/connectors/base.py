"""What every live connector shares: its config, the closed-incident record, the snapshot contract and one HTTP
client with bounded retries.

Why httpx directly and not the vendors' SDKs (slack_sdk, pdpyras, opsgenie-sdk, jira, PyGithub): the snapshot
must be the vendors' *raw* JSON responses — the exact shapes ``pipeline.sources`` parses — and the SDKs wrap,
re-page or re-model them. httpx is already installed (a Prefect dependency, pinned in pyproject), gives one
retry/auth/logging policy for six APIs, and lets the tests point every connector at a fake on 127.0.0.1.

Retries: 429 (honouring ``Retry-After`` in seconds or as an HTTP date, capped at ``backoff_max_s``), 5xx and
transport errors are retried up to ``max_retries`` times with exponential backoff; 401/403 raise a
``ConnectorError`` at once saying the token was refused. Tokens live in ``SecretStr`` and are only ever put in
request headers: log lines and error messages name the vendor, method and path, never headers or the token.

Egress: every request goes through the egress transport (pipeline.egress), which records it and routes remote
hosts through the environment's proxy and local ones directly. A token is never sent over plain ``http://`` to a
host that is not this machine: such a base URL is refused when the client is built, before any request, and any
later URL (a pagination link) is checked again. A publisher marks the client as carrying restricted content
(``carry``) before posting a restricted incident's text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pipeline.egress import EgressPolicy, EgressTransport
from pipeline.errors import ConfigError, ConnectorError
from pipeline.models import Source
from pipeline.retry import retry_after_s

log = logging.getLogger("pipeline.connectors")

Primitive = str | int | float | bool | None
Pairs = list[tuple[str, Primitive]]
Params = Mapping[str, Primitive] | Pairs
Sleep = Callable[[float], None]
USER_AGENT = "postmortem-pipeline-connector/0.1"


class ConnectorConfig(BaseModel):
    """One vendor's connection: where, with which token, how patiently. Subclassed per vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(min_length=1, description="API root, e.g. https://api.pagerduty.com")
    token: SecretStr = Field(description="API token; sent only in the Authorization header, never logged.")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(4, ge=0, le=10, description="Retries after a 429, a 5xx or a transport error.")
    backoff_base_s: float = Field(0.5, ge=0, description="First backoff; doubles per retry.")
    backoff_max_s: float = Field(60.0, ge=0, description="Cap on any single wait, Retry-After included.")
    page_size: int = Field(100, ge=1, le=1000)
    max_pages: int = Field(1000, ge=1, description="Stop paging after this many pages (a runaway guard).")


class ClosedIncident(BaseModel):
    """An incident (or ticket/alert/issue) a vendor reports as closed, with refs to related records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The ref to pass to the connector's snapshot().")
    source: Source
    closed_at: datetime
    title: str
    url: str | None = None
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Related refs when known: slack_channel, pagerduty_incident, jira_issue, github_issue, …",
    )


# Keys that would put a secret in a config file (sources.yaml, publish.yaml) rather than name the environment
# variable holding it (``token_env``).
INLINE_SECRET_KEYS = frozenset({"token", "api_key", "apikey", "api_token", "password", "secret"})


def refuse_inline_secrets(entry: Mapping[Any, Any], where: str) -> None:
    """Raise ConfigError when a config entry holds a secret itself; the message says where tokens belong and
    never repeats the value."""
    inline = sorted(str(k) for k in entry if str(k).lower() in INLINE_SECRET_KEYS)
    if inline:
        raise ConfigError(
            f"{where}: `{inline[0]}:` is refused in this file (it gets copied, committed and shared); put the token "
            "in an environment variable and name that variable here instead: token_env: VARIABLE_NAME"
        )


def dump(document: object) -> bytes:
    """A response document as the bytes of a bundle file (UTF-8 JSON, indented for people)."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def parse_time(value: object) -> datetime | None:
    """ISO-8601 (Z, +00:00 or Jira's +0000) to aware UTC; None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """Aware datetime as ISO-8601 UTC with Z (naive is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiClient:
    """httpx.Client plus the retry and auth-failure policy. One per connector; close() or use as a context.

    ``transport`` (tests) sends after the egress check; ``wrap`` wraps the egress transport (a vendor's response
    rewriting, e.g. GitHub's rate limits) so requests are still checked and routed by it. ``policy`` defaults to
    the process settings' egress policy."""

    def __init__(
        self,
        vendor: str,
        config: ConnectorConfig,
        headers: Mapping[str, str],
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        wrap: Callable[[httpx.BaseTransport], httpx.BaseTransport] | None = None,
        sleep: Sleep = time.sleep,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.vendor = vendor
        self.config = config
        self._sleep = sleep
        policy = policy or EgressPolicy.default()
        base_url = config.base_url.rstrip("/")
        # The token goes with every request: refused here, before any request, over plain http to a remote host.
        policy.preflight(base_url, purpose=f"connector:{vendor}", restricted=False, credential=True)
        self._egress = EgressTransport(policy, purpose=f"connector:{vendor}", restricted=False, inner=transport)
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **headers},
            auth=auth,
            timeout=config.timeout_s,
            transport=wrap(self._egress) if wrap is not None else self._egress,
            follow_redirects=False,
        )

    def carry(self, *, purpose: str, restricted: bool) -> None:
        """Say what the following requests carry (a publisher posting an incident's text): the egress policy
        then decides each request for that purpose and content."""
        self._egress.purpose = purpose
        self._egress.restricted = restricted

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        json_body: object = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise ConnectorError. ``url`` may be a path or absolute
        (a pagination link the vendor gave us)."""
        where = f"{self.vendor}: {method} {_path_only(url)}"
        attempt = 0
        while True:
            try:
                response = self._client.request(method, url, params=params, json=json_body)
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise ConnectorError(f"{where} failed after {attempt + 1} attempts: {type(exc).__name__}") from None
                wait = self._backoff(attempt)
                log.warning("%s: %s, retrying in %.2fs", where, type(exc).__name__, wait)
            else:
                status = response.status_code
                if status < 300:
                    log.debug("%s -> %s", where, status)
                    return response
                if status in (401, 403):
                    raise ConnectorError(
                        f"{where}: authentication refused (HTTP {status}); check the {self.vendor} token and its scopes",
                        status=status,
                    )
                retryable = status == 429 or status >= 500
                if not retryable:
                    raise ConnectorError(
                        f"{where}: HTTP {status} {_short_body(response)}", status=status, missing=status in (404, 410)
                    )
                if attempt >= self.config.max_retries:
                    raise ConnectorError(
                        f"{where}: HTTP {status} after {attempt + 1} attempts; giving up", status=status
                    )
                hinted = retry_after_s(response.headers.get("Retry-After")) if status == 429 else None
                wait = min(hinted, self.config.backoff_max_s) if hinted is not None else self._backoff(attempt)
                log.warning("%s: HTTP %s, retrying in %.2fs", where, status, wait)
            self._sleep(wait)
            attempt += 1

    def get_json(self, url: str, params: Params | None = None) -> Any:
        return self.decode(self.request("GET", url, params=params))

    def post_json(self, url: str, body: object) -> Any:
        return self.decode(self.request("POST", url, json_body=body))

    def decode(self, response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ConnectorError(
                f"{self.vendor}: {response.request.method} {_path_only(str(response.request.url))} "
                "answered with a body that is not JSON"
            ) from None

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_base_s * (2**attempt), self.config.backoff_max_s))


def _path_only(url: str) -> str:
    """The path of a URL without its query (queries can carry search terms; never credentials here, but short)."""
    path = httpx.URL(url).path if "://" in url else url.split("?", 1)[0]
    return path or "/"


def _short_body(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"({text[:200]})" if text else ""


def require(data: object, key: str, kind: type, where: str) -> Any:
    """``data[key]`` of the expected type, or ConnectorError naming the endpoint."""
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind):
        raise ConnectorError(f"{where}: response has no {key!r} {kind.__name__}")
    return value


class Connector:
    """Base of the vendor connectors: holds the client; subclasses add closed_since() and snapshot()."""

    vendor: str = "vendor"

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()

    def snapshot(self, ref: str) -> dict[str, bytes]:
        """Bundle files (relative POSIX path -> raw JSON bytes) for one incident ref of this vendor."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _limit(self, pages: int, where: str) -> None:
        if pages >= self.client.config.max_pages:
            raise ConnectorError(f"{self.vendor}: {where}: more than {self.client.config.max_pages} pages; stopping")
