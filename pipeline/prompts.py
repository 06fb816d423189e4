"""Prompts as files: ``prompts/<id>/v<N>.yaml`` with an id, a version, a description, model parameters, the
templates and the output model they expect. A released version is never edited — add ``v<N+1>.yaml``.
Every use records ``id@version`` and the sha256 of the file, so a result can be traced to the exact text.
"""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import LimitExceeded, PromptError
from pipeline.limits import load_yaml

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_REF = re.compile(r"^(?P<id>[a-z0-9_\-]+)(?:@(?P<version>\d+))?$")


class ModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(1200, ge=16)
    top_p: float | None = None


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: int = Field(ge=1)
    description: str
    output: str = Field(description="Name of the pydantic model the answer must validate against.")
    params: ModelParams = Field(default_factory=ModelParams)
    system: str
    user: str
    sha256: str = ""
    path: str = ""

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def render(self, **variables: Any) -> tuple[str, str]:
        """(system, user) with every ``$name`` filled; a missing variable is an error, never an empty string."""
        return _fill(self.system, variables, self.ref), _fill(self.user, variables, self.ref)


def _fill(template: str, variables: dict[str, Any], ref: str) -> str:
    try:
        return string.Template(template).substitute({k: str(v) for k, v in variables.items()})
    except KeyError as exc:
        raise PromptError(f"prompt {ref} needs the variable {exc.args[0]!r}") from None
    except ValueError as exc:
        raise PromptError(f"prompt {ref} has a malformed placeholder: {exc}") from None


def load_prompt_file(path: Path) -> Prompt:
    raw = path.read_bytes()
    try:
        data = load_yaml(raw, what=str(path))
        prompt = Prompt.model_validate({**data, "sha256": hashlib.sha256(raw).hexdigest(), "path": str(path)})
    except (yaml.YAMLError, UnicodeDecodeError, TypeError, ValidationError, LimitExceeded) as exc:
        raise PromptError(f"{path} is not a valid prompt file: {str(exc).splitlines()[0]}") from None
    if path.parent.name != prompt.id or path.stem != f"v{prompt.version}":
        raise PromptError(f"{path}: id/version must match its place (prompts/{prompt.id}/v{prompt.version}.yaml)")
    return prompt


def list_prompts(root: Path = PROMPTS_DIR) -> list[Prompt]:
    files = sorted(
        root.glob("*/v*.yaml"), key=lambda p: (p.parent.name, int(p.stem[1:]) if p.stem[1:].isdigit() else 0)
    )
    return [load_prompt_file(p) for p in files]


def get_prompt(ref: str, root: Path = PROMPTS_DIR) -> Prompt:
    """``id`` (latest version) or ``id@version``."""
    match = _REF.match(ref)
    if match is None:
        raise PromptError(f"not a prompt reference: {ref!r} (expected ID or ID@VERSION)")
    versions = [p for p in list_prompts(root) if p.id == match.group("id")]
    if not versions:
        raise PromptError(f"no prompt with id {match.group('id')!r} in {root}")
    if match.group("version") is None:
        return max(versions, key=lambda p: p.version)
    wanted = int(match.group("version"))
    for prompt in versions:
        if prompt.version == wanted:
            return prompt
    raise PromptError(
        f"prompt {match.group('id')} has no version {wanted} (have {sorted(p.version for p in versions)})"
    )
