"""The one exception hierarchy. The CLI turns these into one-line messages; nothing returns errors as data."""

from __future__ import annotations

from pathlib import Path


class PostmortemError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(PostmortemError):
    """Settings or an incident manifest are invalid."""


class BundleError(PostmortemError):
    """An incident bundle cannot be read at all (missing, empty, unreadable archive)."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{message}: {path}" if path is not None else message)


class ParseError(PostmortemError):
    """A record cannot become an event. Parsers raise it; the bundle layer turns it into a quarantine entry."""


class DraftValidationError(PostmortemError):
    """A draft failed validation and could not be repaired; it must not be shipped."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("draft failed validation: " + "; ".join(problems[:5]))


class AssetError(PostmortemError):
    """An offline asset (tokenizer vocab, model file) is missing or fails its checksum."""


class EmbeddingError(PostmortemError):
    """Texts could not be embedded: the endpoint refused, failed or answered in an unexpected shape."""


class IndexStoreError(PostmortemError):
    """The similar-incident index cannot be used: store missing or corrupted, server unreachable, or built with a
    different embedding model. The message names the path or host; `where` holds it too."""

    def __init__(self, message: str, where: Path | str | None = None) -> None:
        self.where = str(where) if where is not None else None
        super().__init__(message)


class PromptError(PostmortemError):
    """A prompt file is missing, malformed, or rendered without a variable it needs."""


class LLMError(PostmortemError):
    """A model call failed after retries, or its answer could not be used."""


class PolicyError(PostmortemError):
    """An action is not allowed by policy (for example a restricted incident to a remote model)."""


class EgressError(PolicyError):
    """An outbound request was refused by the egress policy: restricted content to a destination that is not
    this machine (after provider, base URL, proxy and redirects are taken into account), or a token over plain
    http to a remote host. ``destination`` names the effective destination."""

    def __init__(self, message: str, *, destination: str) -> None:
        self.destination = destination
        super().__init__(message)


class LeakError(PolicyError):
    """An output (draft file, Slack post, Jira issue, eval report) would carry a secret, or an original value the
    redactor replaced: it is refused rather than written or sent. ``where`` names the output and ``kinds`` the
    kinds found; the message never holds a value."""

    def __init__(self, where: str, kinds: list[str]) -> None:
        self.where = where
        self.kinds = kinds
        super().__init__(f"refusing to write {where}: it would contain {', '.join(kinds)} (a redaction was bypassed)")


class LimitExceeded(PostmortemError):
    """An input is larger, deeper or more numerous than a configured limit allows. ``setting`` names the
    POSTMORTEM_ setting that raises the limit."""

    def __init__(self, message: str, *, setting: str) -> None:
        self.setting = setting
        super().__init__(f"{message} (limit: POSTMORTEM_{setting.upper()})")


class ConnectorError(PostmortemError):
    """A vendor API could not be read: authentication refused (401/403), retries exhausted on 429/5xx or network
    errors, or an answer in an unexpected shape. The message names the vendor and endpoint, never the token.

    ``status`` is the HTTP status when there was one; ``missing`` says the record itself is not there for this
    token (404/410, Slack's ``channel_not_found``/``not_in_channel``) — asking again will not help, unlike a
    timeout or a 5xx."""

    def __init__(self, message: str, *, status: int | None = None, missing: bool = False) -> None:
        self.status = status
        self.missing = missing
        super().__init__(message)
