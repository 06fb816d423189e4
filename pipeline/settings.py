"""Settings, read in one place. Every variable is prefixed POSTMORTEM_."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("postmortem-pipeline", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTMORTEM_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="State: drafts, caches, ledgers.")
    assets: Path | None = Field(None, description="Offline assets (tokenizer vocab); default HOME/assets.")
    storm_window_s: int = Field(600, ge=1, description="Alerts of one signal closer than this collapse.")
    storm_min_count: int = Field(3, ge=2, description="A storm needs at least this many alerts.")
    cross_source_window_s: int = Field(300, ge=0, description="Same alert seen by two systems within this.")
    change_window_s: int = Field(3600, ge=0, description="A change this long before detection is suspect.")
    ack_gap_s: int = Field(900, ge=0, description="Acknowledgement slower than this is a factor.")
    detection_gap_s: int = Field(600, ge=0, description="Detection slower than this is a factor.")
    silence_gap_s: int = Field(1800, ge=0, description="No status update for this long is a factor.")

    # language model (optional: with none, the deterministic FactsDrafter writes the draft)
    llm_model: str | None = Field(None, description="e.g. gpt-4o-mini, or a local server's model name.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint; OPENAI_BASE_URL also works.")
    llm_api_key: SecretStr | None = Field(None, description="OPENAI_API_KEY also works. Never logged.")
    llm_timeout_s: float = Field(120.0, gt=0)
    llm_max_retries: int = Field(3, ge=0, le=10)
    llm_context_tokens: int = Field(8192, ge=1024, description="The model's context window.")
    llm_output_reserve_tokens: int = Field(1500, ge=256, description="Kept free for the answer.")
    llm_response_format: Literal["json_schema", "json_object_schema"] = Field(
        "json_schema", description="json_object_schema for llama.cpp servers, which reject json_schema."
    )
    llm_map_max_calls: int = Field(
        2, ge=0, description="Most map-step calls that summarise events not fitting the budget; 0 = none."
    )
    redaction_restore_kinds: list[str] = Field(
        default_factory=list, description="Redacted kinds put back in the rendered draft (e.g. EMAIL); never secrets."
    )
    llm_cache: bool = Field(True, description="Reuse answers for identical redacted input, prompt and model.")
    allow_restricted_remote: bool = Field(
        False, description="Allow restricted incidents to be sent to a non-local endpoint (LLM, embeddings)."
    )

    # egress: every outbound call (LLM, embeddings, connectors, publishing) is checked by pipeline.egress
    egress_local_hosts: list[str] = Field(
        default_factory=list,
        description="Extra host names that count as this machine (loopback always does). Only list hosts that "
        "resolve to this machine: restricted text may be sent to them.",
    )
    egress_log: bool = Field(True, description="Record every egress decision in HOME/runs/egress.jsonl.")

    # input limits: what a bundle, archive or file may expand to before it is refused or quarantined
    max_bundle_bytes: int = Field(2 * 1024**3, ge=1, description="Total bytes a bundle may expand to.")
    max_file_bytes: int = Field(512 * 1024**2, ge=1, description="Bytes one file or archive member may hold.")
    max_bundle_files: int = Field(100_000, ge=1, description="Files (and archive members) in one bundle.")
    max_zip_depth: int = Field(3, ge=0, description="Zips inside zips, this many levels deep.")
    max_compression_ratio: int = Field(200, ge=1, description="Inflated/compressed size of one archive member.")
    max_json_depth: int = Field(128, ge=8, description="Nesting depth of a JSON document.")
    max_yaml_bytes: int = Field(1024**2, ge=1, description="Size of a YAML file (manifest, settings files).")
    max_yaml_depth: int = Field(32, ge=4, description="Nesting depth of a YAML document.")
    max_yaml_aliases: int = Field(0, ge=0, description="YAML aliases (*ref) allowed; 0 refuses any.")

    # shared outputs (Markdown, JSON, Slack, Jira, reports)
    mask_pii_in_outputs: bool = Field(
        True, description="Mask emails, phone numbers and IPs in rendered outputs (secrets are always masked)."
    )
    link_base_url: str | None = Field(
        None, description="Where published postmortems live; related-incident links are built from it."
    )
    section_key_file: Path | None = Field(
        None, description="Key that signs section markers in drafts (created 0600 if absent); default HOME/keys."
    )

    # scheduled drafts
    sweep_cron: str = Field("*/15 * * * *", description="How often `postmortem serve` sweeps for closed incidents.")
    landing_dir: Path | None = Field(
        None, description="Bundles dropped here are closed incidents; default HOME/landing."
    )
    alerts_landing_dir: Path | None = Field(
        None, description="Where `postmortem receive` lands Alertmanager webhooks; default HOME/alertmanager."
    )
    receiver_host: str = Field("127.0.0.1", description="Address `postmortem receive` listens on.")
    receiver_port: int = Field(9095, ge=0, le=65535)
    receiver_token: SecretStr | None = Field(
        None, description="Bearer token Alertmanager sends (http_config.authorization.credentials)."
    )
    receiver_basic_user: str | None = Field(None, description="Basic-auth user (http_config.basic_auth).")
    receiver_basic_password: SecretStr | None = Field(None, description="Basic-auth password.")
    receiver_header_timeout_s: float = Field(10.0, gt=0, description="A client must send its headers within this.")
    receiver_body_timeout_s: float = Field(30.0, gt=0, description="A client must send its body within this.")
    receiver_max_connections: int = Field(32, ge=1, description="Connections served at once; more wait or are refused.")
    receiver_max_body_bytes: int = Field(10 * 1024**2, ge=1, description="Largest webhook body accepted.")
    receiver_max_inflight_bytes: int = Field(
        64 * 1024**2,
        ge=1,
        description="Memory for webhook bodies being read and decoded (32x a body's size, at most all of it); 503 beyond.",
    )
    sources_file: Path | None = Field(
        None, description="YAML list of vendor connectors the sweep polls; default HOME/sources.yaml."
    )
    publish_file: Path | None = Field(
        None, description="YAML: Slack channel and Jira project drafts are published to; default HOME/publish.yaml."
    )

    # similar-incident index
    chroma_host: str | None = Field(None, description="Chroma server host; unset = embedded store under HOME.")
    chroma_port: int = Field(8000, ge=1, le=65535)
    index_collection: str = Field("postmortems", min_length=3, max_length=512)
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = Field("all-MiniLM-L6-v2", description="Local ONNX model, or the endpoint's model name.")
    embedding_base_url: str | None = Field(None, description="OpenAI-compatible embeddings endpoint.")
    embedding_api_key: SecretStr | None = None
    embedding_batch_size: int = Field(64, ge=1, le=4096)

    @property
    def drafts_dir(self) -> Path:
        return self.home / "drafts"

    @property
    def assets_dir(self) -> Path:
        return self.assets or self.home / "assets"

    @property
    def tiktoken_cache_dir(self) -> Path:
        return self.assets_dir / "tiktoken"

    @property
    def landing(self) -> Path:
        return self.landing_dir or self.home / "landing"

    @property
    def alerts_landing(self) -> Path:
        return self.alerts_landing_dir or self.home / "alertmanager"

    @property
    def publish_path(self) -> Path:
        return self.publish_file or self.home / "publish.yaml"

    @property
    def sources_path(self) -> Path:
        return self.sources_file or self.home / "sources.yaml"

    @property
    def section_key_path(self) -> Path:
        """The key that signs section markers (pipeline.section_key)."""
        return self.section_key_file or self.home / "keys" / "section.key"

    @property
    def runs_dir(self) -> Path:
        """Run logs (LLM calls, evaluations)."""
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def models_dir(self) -> Path:
        return self.assets_dir / "models"

    @property
    def index_dir(self) -> Path:
        """Embedded Chroma store and the lexical (BM25) index beside it."""
        return self.home / "index"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings. Tests build their own `Settings(...)` instead of patching this."""
    return Settings()
