"""Related-incident links and every other location in a draft are portable: no absolute path of the machine that
indexed the past postmortems (its temp dir, /home, the repository) reaches a draft, its JSON, or `postmortem
search/similar`. A related incident is its id, linked to ``link_base_url`` + id when one is configured.

Runs the real command (subprocesses with their own POSTMORTEM_HOME) and the real local embedding model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from pipeline.errors import ConfigError
from pipeline.models import Draft
from pipeline.render import render_markdown
from pipeline.section_key import SectionKey
from pipeline.service import draft_bundle, open_index, with_related
from pipeline.settings import Settings
from tests.conftest import ASSETS, REPO, SAMPLES

CERT = SAMPLES / "edge-cert-expiry"
BASE_URL = "https://wiki.example.com/postmortems/"


def _cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("POSTMORTEM_")}
    environment = {**inherited, "POSTMORTEM_HOME": str(home), "POSTMORTEM_ASSETS": str(ASSETS), **env}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _machine_paths(tmp: Path) -> list[str]:
    """What must not appear: this machine's temp dir, home and repository."""
    return [str(tmp), str(tmp.resolve()), str(REPO), str(Path.home()), "/home/", "/tmp/", "/root/"]


def _assert_portable(text: str, tmp: Path) -> None:
    for path in _machine_paths(tmp):
        assert path not in text, path


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A home whose index holds the repository's past postmortems, copied to a machine-specific folder first."""
    tmp = tmp_path_factory.mktemp("machine-a")
    corpus = tmp / "srv" / "postmortems"
    shutil.copytree(REPO / "data" / "postmortems", corpus)
    home = tmp / "home"
    _cli("index", str(corpus), home=home)
    return tmp, home


def test_a_drafts_related_incidents_carry_ids_not_paths(indexed: tuple[Path, Path]) -> None:
    tmp, home = indexed
    out = tmp / "out"
    payload = _cli("draft", str(CERT), "--out", str(out), "--json", home=home).stdout
    draft = Draft.model_validate_json(payload)
    assert draft.related, "the cert-expiry sample should find past certificate incidents"
    assert all(r.source is None for r in draft.related)  # no base URL configured: no link at all
    assert any(r.incident_id.startswith("PM-") for r in draft.related)
    _assert_portable(payload, tmp)
    markdown = next(out.glob("*.md")).read_text(encoding="utf-8")
    _assert_portable(markdown, tmp)
    related = markdown[markdown.index("## Related incidents") : markdown.index("## Timeline")]
    for r in draft.related:
        assert f"| {r.incident_id} |" in related  # the id as text, not linked
    assert "](" not in related and ".md" not in related


def test_with_a_base_url_the_link_is_base_plus_id(indexed: tuple[Path, Path]) -> None:
    tmp, home = indexed
    out = tmp / "out-linked"
    payload = _cli("draft", str(CERT), "--out", str(out), "--json", home=home, POSTMORTEM_LINK_BASE_URL=BASE_URL).stdout
    draft = Draft.model_validate_json(payload)
    assert draft.related and all(r.source == BASE_URL + r.incident_id for r in draft.related)
    _assert_portable(payload, tmp)
    markdown = next(out.glob("*.md")).read_text(encoding="utf-8")
    for r in draft.related:
        assert f"| [{r.incident_id}]({BASE_URL}{r.incident_id}) |" in markdown
    _assert_portable(markdown, tmp)


def test_search_and_similar_show_paths_relative_to_the_indexed_folder(indexed: tuple[Path, Path]) -> None:
    tmp, home = indexed
    hits = json.loads(_cli("search", "TLS certificate expired", "--json", home=home).stdout)
    assert hits and all(re.fullmatch(r"(postmortems/[\w.-]+\.md|[\w.-]+\.md)", h["source"]) for h in hits), hits
    similar = _cli("similar", str(CERT), "--json", home=home).stdout
    assert json.loads(similar)
    for text in (json.dumps(hits), similar):
        _assert_portable(text, tmp)


def test_unsafe_ids_and_base_urls_never_become_links(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", assets=ASSETS)
    _, draft = draft_bundle(CERT, settings)
    index = open_index(settings, create=True)
    past = tmp_path / "past"
    past.mkdir()
    (past / "pm.md").write_text(
        "---\nid: 'x) [y](javascript:alert(1)'\ntitle: TLS certificate expired\n---\n## Summary\n\n"
        "The TLS certificate of the api expired and clients failed the handshake.\n",
        encoding="utf-8",
    )
    index.index_paths([past])
    with pytest.raises(ConfigError, match="http"):
        with_related(draft, index, [], link_base_url="javascript:alert(1)//")
    linked = with_related(draft, index, [], link_base_url=BASE_URL)
    (hit,) = linked.related
    assert hit.source is not None and hit.source.startswith(BASE_URL) and " " not in hit.source
    assert "(" not in hit.source.removeprefix(BASE_URL) and "[" not in hit.source.removeprefix(BASE_URL)
    markdown = render_markdown(linked, key=SectionKey(bytes(32)))
    row = next(line for line in markdown.split("\n") if hit.source in line)
    hrefs = re.findall(r'href="([^"]*)"', MarkdownIt("commonmark", {"html": True}).enable("table").render(row))
    assert hrefs == [hit.source]  # one link, to the published page; the id's brackets are text
