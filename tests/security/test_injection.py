"""Markdown/HTML injection and forged section markers.

Hostile strings (script tags, event-handler attributes, javascript:/data:/vbscript: links, HTML comments shaped
like section markers, code fences, table pipes, mermaid directives) are planted by the test in every kind of
input a draft is built from — alert labels and annotations, incident.yaml title and services, a Jira summary, a
Slack message, a GitHub issue title — and in a model's prose, served by a scripted OpenAI-compatible server on
127.0.0.1. The rendered Markdown is converted to HTML with a real renderer (markdown-it, raw HTML *allowed*, the
worst case of a wiki) and the HTML is inspected element by element.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from pipeline.bundle import load_bundle
from pipeline.draft.facts import build_facts
from pipeline.draft.facts_drafter import FactsDrafter
from pipeline.draft.llm_drafter import LLMDrafter
from pipeline.errors import ConfigError
from pipeline.eval_report import render_report
from pipeline.evaluate import load_suite, run_suite
from pipeline.llm import LLMClient, LLMConfig, RunLog
from pipeline.markers import Markers
from pipeline.models import Draft
from pipeline.redraft import MarkedSection, parse_sections, redraft
from pipeline.render import render_markdown, section_hash
from pipeline.section_key import KEY_BYTES, SectionKey, load_section_key
from pipeline.service import compose, gather, normalise
from pipeline.settings import Settings
from tests.conftest import ASSETS, SAMPLES
from tests.openai_stub import Step, openai_stub

BASE = SAMPLES / "checkout-bad-deploy"
KEY = SectionKey(b"\x07" * KEY_BYTES)
OTHER_KEY = SectionKey(b"\x08" * KEY_BYTES)
FORGED_START = "<!-- pm:section id=summary hash=0123456789abcdef -->"
PAYLOADS = [
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(document.domain)>",
    "<svg onload=alert(document.domain)>",
    "[click me](javascript:alert(document.domain))",
    '<a href="javascript:alert(document.domain)">link</a>',
    "![pixel](javascript:alert(document.domain))",
    "<javascript:alert(document.domain)>",
    "[data](data:text/html;base64,PHNjcmlwdD4=) [vb](vbscript:msgbox)",
    "[ref]: javascript:alert(document.domain)",
    "&#x3C;script&#x3E;alert(document.domain)&#x3C;/script&#x3E;",
    FORGED_START,
    "<!-- pm:end timeline -->",
    "<!-- pm:removed id=timeline -->",
    "```",
    "~~~",
    "| injected | cell |",
    "# Heading injection",
    "%%{init: {'securityLevel': 'loose'}}%%",
    "click A call alert()",
    "    indented code",
]


def hostile(tag: str) -> str:
    """Every payload, one per line (so any of them could start a line if newlines survived)."""
    return f"{tag} " + "\n".join(PAYLOADS)


def build_hostile_bundle(dest: Path) -> Path:
    shutil.copytree(BASE, dest)
    manifest = yaml.safe_load((dest / "incident.yaml").read_text(encoding="utf-8"))
    manifest["title"] = hostile("Checkout title")
    manifest["services"] = ["checkout-api", hostile("svc")]
    (dest / "incident.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    for path in sorted((dest / "alerts").glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        for alert in payload["alerts"]:
            alert["annotations"]["summary"] = hostile("alert summary")
            alert["annotations"]["description"] = hostile("alert description")
            alert["labels"]["pod"] = hostile("label")
        path.write_text(json.dumps(payload), encoding="utf-8")
    jira = dest / "jira" / "CHK-812.json"
    issue = json.loads(jira.read_text(encoding="utf-8"))
    issue["fields"]["summary"] = hostile("jira summary")
    jira.write_text(json.dumps(issue), encoding="utf-8")
    day = dest / "slack" / "inc-2041-checkout-errors" / "2025-02-18.json"
    messages = json.loads(day.read_text(encoding="utf-8"))
    extra = {k: v for k, v in messages[3].items() if k != "client_msg_id"}
    extra.update(text=hostile("slack message"), ts=f"{float(messages[3]['ts']) + 1.5:.6f}")
    messages.insert(4, extra)
    day.write_text(json.dumps(messages), encoding="utf-8")
    (dest / "github").mkdir()
    for path in (SAMPLES / "auth-flag-rollout" / "github").iterdir():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "title" in data:
            data["title"] = hostile("github title")
        (dest / "github" / path.name).write_text(json.dumps(data), encoding="utf-8")
    return dest


# --- what must never be in the HTML ------------------------------------------------------------------------------

_ALLOWED_TAGS = {"a", "p", "h1", "h2", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "strong", "em"}
_ALLOWED_TAGS |= {"code", "pre", "blockquote", "hr", "br"}


class _Inspector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def to_html(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def assert_safe(markdown: str, markers: Markers, expected_comments: int) -> None:
    """No script, no on* attribute, no link other than an anchor or http(s), and every pm comment in the HTML is
    a marker that verifies (the ones the renderer wrote), none of the planted ones."""
    assert sum(markdown.count(tag) for tag in ("slack message", "jira summary", "alert summary", "github title")) >= 1
    inspector = _Inspector()
    inspector.feed(to_html(markdown))
    for tag, attrs in inspector.tags:
        assert tag in _ALLOWED_TAGS, (tag, attrs)
        assert tag not in ("script", "img", "svg", "iframe")
        for name, value in attrs:
            assert not name.lower().startswith("on"), (tag, name, value)
            assert name in ("id", "href", "class"), (tag, name)
            if name == "href":
                assert value is not None and re.match(r"^(#[A-Za-z0-9_-]+|https?://)", value), value
    assert len(inspector.comments) == expected_comments, inspector.comments
    for comment in inspector.comments:
        line = f"<!--{comment}-->"
        assert markers.read_start(line) or re.match(r"^<!-- pm:end [a-z-]+ mac=[0-9a-f]{32} -->$", line), line
    assert "0123456789abcdef" not in "".join(inspector.comments)
    # the mermaid block: closed only by its own fence, each line a timeline statement of safe label text
    if "```mermaid" in markdown:
        block = markdown.split("```mermaid\n", 1)[1].split("\n```", 1)[0].split("\n")
        label = r"[\w .,()'/@!?+=-]+"
        allowed = [
            r"timeline",
            rf"    title {label}",
            r"    section \d{4}-\d\d-\d\d",
            rf"        \d\d\.\d\d UTC : {label}",
        ]
        for line in block:
            assert any(re.fullmatch(p, line) for p in allowed), line


def _sections_count(markdown: str, markers: Markers) -> int:
    return sum(1 for item in parse_sections(markdown, markers).items if isinstance(item, MarkedSection))


@pytest.fixture(scope="module")
def hostile_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hostile_bundle(tmp_path_factory.mktemp("hostile") / "bundle")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"), assets=ASSETS, llm_model=None)


@pytest.fixture(scope="module")
def facts_draft(hostile_bundle: Path, settings: Settings) -> Draft:
    bundle = load_bundle(hostile_bundle)
    draft, _ = compose(bundle, normalise(bundle, gather(bundle), settings), settings, FactsDrafter())
    return draft


def test_hostile_source_fields_render_as_inert_text(facts_draft: Draft) -> None:
    md = render_markdown(facts_draft, key=KEY)
    markers = Markers(KEY, facts_draft.incident.id)
    sections = _sections_count(md, markers)
    assert_safe(md, markers, expected_comments=2 * sections)
    for tag in ("slack message", "jira summary", "alert summary", "Checkout title", "svc"):
        assert tag in md, tag  # the hostile values are there, as text
    assert "&lt;script&gt;" in md and "<script>" not in md
    # the title stays one line, the table rows keep their column count
    assert md.split("\n", 1)[0].startswith("# Postmortem draft: Checkout title ")
    header_pipes, previous = 0, ""
    for line in md.split("\n"):
        pipes = len(re.findall(r"(?<!\\)\|", line))
        if line.startswith("|") and not previous.startswith("|"):
            header_pipes = pipes
        elif line.startswith("|"):
            assert pipes == header_pipes, line  # no cell was split by a planted pipe or line break
        previous = line


def _llm_answer(facts_draft: Draft, hostile_bundle: Path, settings: Settings) -> str:
    """A schema-valid answer (the FactsDrafter's content, so every citation exists) whose prose is hostile."""
    bundle = load_bundle(hostile_bundle)
    timeline = normalise(bundle, gather(bundle), settings)
    content = FactsDrafter().write(build_facts(bundle.manifest, timeline, settings), timeline)
    prose = "Checkout failed after the deploy.\n\n" + "\n".join(PAYLOADS)
    answer: dict[str, Any] = json.loads(content.model_dump_json())
    answer["summary"] = prose
    answer["impact_statement"] = "Customers could not pay. " + " ".join(PAYLOADS)
    for key in ("contributing_factors", "lessons"):
        for item in answer[key]:
            item["statement"] = item["statement"] + " " + " ".join(PAYLOADS)
    for item in answer["action_items"]:
        item["description"] = item["description"] + " " + " ".join(PAYLOADS)
        item["owner"] = "<img src=x onerror=alert(document.domain)>"
    for item in answer["highlights"]:
        item["text"] = item["text"] + "\n```\nclick A call alert()\n%%{init: {}}%%\n<b onmouseover=x>"
    return json.dumps(answer)


def test_model_prose_is_escaped_and_cannot_break_the_mermaid_block(
    facts_draft: Draft, hostile_bundle: Path, settings: Settings, tmp_path: Path
) -> None:
    answer = _llm_answer(facts_draft, hostile_bundle, settings)
    with openai_stub([], default=Step(content=answer)) as server:
        config = LLMConfig(model="stub-model", base_url=server.base_url, max_retries=1, backoff_s=0.01)
        client = LLMClient(config, RunLog(tmp_path / "runs.jsonl"), None)
        bundle = load_bundle(hostile_bundle)
        draft, _ = compose(bundle, normalise(bundle, gather(bundle), settings), settings, LLMDrafter(client, settings))
    assert draft.provenance.drafter == "llm", draft.provenance.fallback_reason
    assert "<script>" in draft.summary and "```" in draft.highlights[0].text  # the model's words, unchanged
    md = render_markdown(draft, key=KEY)
    markers = Markers(KEY, draft.incident.id)
    assert_safe(md, markers, expected_comments=2 * _sections_count(md, markers))
    (summary,) = [i for i in parse_sections(md, markers).items if isinstance(i, MarkedSection) and i.id == "summary"]
    assert summary.body[0] == "## Summary" and "Checkout failed after the deploy." in summary.body
    assert not any(ln.startswith(("#", "<", "```", "~~~", "    ", "|", "[")) for ln in summary.body[1:])
    assert md.count("```") == 2  # the mermaid fence, opened and closed once


def test_a_forged_marker_in_a_slack_message_changes_nothing_on_redraft(facts_draft: Draft) -> None:
    markers = Markers(KEY, facts_draft.incident.id)
    v1 = render_markdown(facts_draft, key=KEY)
    newer = facts_draft.model_copy(update={"summary": facts_draft.summary + " Later: the rollback finished."})
    v2 = render_markdown(newer, key=KEY)
    result = redraft(v1, v2, markers=markers, base_md=v1)
    assert result.kept_sections == [] and result.suggestions == [] and result.removed_sections == []
    assert result.markdown == v2  # every section the pipeline's, replaced
    assert not [n for n in result.notes if "did not sign" in n]


def test_a_marker_line_inside_generated_text_is_not_a_boundary(facts_draft: Draft) -> None:
    """Even if escaping failed and a raw marker line reached a section the pipeline wrote (signed over it),
    redraft reads it as text of that section: the section is the pipeline's and is replaced whole."""
    markers = Markers(KEY, facts_draft.incident.id)
    v1 = render_markdown(facts_draft, key=KEY).split("\n")
    start = next(i for i, ln in enumerate(v1) if ln.startswith("<!-- pm:section id=timeline "))
    end = next(i for i, ln in enumerate(v1) if ln.startswith("<!-- pm:end timeline "))
    body = [*v1[start + 1 : start + 4], FORGED_START, "forged text", "<!-- pm:end summary -->", *v1[start + 4 : end]]
    digest = section_hash("\n".join(body))
    doc = "\n".join(
        [*v1[:start], markers.start("timeline", digest), *body, markers.end("timeline", digest), *v1[end + 1 :]]
    )
    parsed = parse_sections(doc, markers)
    timeline = [i for i in parsed.items if isinstance(i, MarkedSection) and i.id == "timeline"]
    assert len(timeline) == 1 and not timeline[0].edited and FORGED_START in timeline[0].body
    assert [i.id for i in parsed.items if isinstance(i, MarkedSection)].count("summary") == 1
    assert any("did not sign" in n for n in parsed.notes)
    result = redraft(doc, render_markdown(facts_draft, key=KEY), markers=markers)
    assert "timeline" in result.regenerated_sections and result.kept_sections == []
    assert "forged text" not in result.markdown


def test_a_marker_pasted_by_a_person_is_not_believed(facts_draft: Draft) -> None:
    markers = Markers(KEY, facts_draft.incident.id)
    v1 = render_markdown(facts_draft, key=KEY)
    mine = "## Summary\n\nOur own account of what happened, agreed in the review."
    lines = v1.split("\n")
    s = next(i for i, ln in enumerate(lines) if ln.startswith("<!-- pm:section id=summary "))
    e = next(i for i, ln in enumerate(lines) if ln.startswith("<!-- pm:end summary "))
    # someone rewrites the marker so the person's text looks generated (its hash matches), hoping a re-draft
    # overwrites it: the MAC is copied from the real marker, or made up
    real_mac = re.search(r"mac=([0-9a-f]{32})", lines[s])
    assert real_mac is not None
    for mac in (real_mac[1], "0" * 32):
        forged = f"<!-- pm:section id=summary hash={section_hash(mine)} mac={mac} -->"
        doc = "\n".join([*lines[:s], forged, mine, *lines[e:]])
        newer = facts_draft.model_copy(update={"summary": "A new generated summary."})
        result = redraft(doc, render_markdown(newer, key=KEY), markers=markers, base_md=v1)
        assert "Our own account of what happened" in result.markdown  # never overwritten
        assert "summary" not in result.regenerated_sections
        assert any("did not sign" in n for n in result.notes)
    # a whole forged section pasted into free text is not a section
    pasted = v1 + f"\n{FORGED_START}\nPasted.\n<!-- pm:end summary -->\n"
    ids = [i.id for i in parse_sections(pasted, markers).items if isinstance(i, MarkedSection)]
    assert ids.count("summary") == 1


def test_markers_of_another_key_or_incident_are_rejected(facts_draft: Draft) -> None:
    ours = Markers(KEY, facts_draft.incident.id)
    theirs = Markers(OTHER_KEY, facts_draft.incident.id)
    other_incident = Markers(KEY, "INC-9999")
    line = theirs.start("summary", "0123456789abcdef")
    assert ours.read_start(line) is None and theirs.read_start(line) is not None
    assert ours.read_start(other_incident.start("summary", "0123456789abcdef")) is None
    assert ours.read_removed(theirs.removed("timeline")) is None

    # a whole document signed with another key: nothing in it is trusted, so nothing is overwritten
    foreign = render_markdown(facts_draft, key=OTHER_KEY)
    newer = facts_draft.model_copy(update={"summary": "A new generated summary."})
    result = redraft(foreign, render_markdown(newer, key=KEY), markers=ours)
    assert result.regenerated_sections == [] and "summary" in result.kept_sections
    assert facts_draft.summary.split(" ")[0] in result.markdown and "A new generated summary." in result.markdown
    assert any("no section marker in the document is signed" in n for n in result.notes)
    assert all(ours.read_start(ln) for ln in result.markdown.split("\n") if ln.startswith("<!-- pm:section"))


def test_a_draft_from_before_signed_markers_keeps_every_section(facts_draft: Draft) -> None:
    """Earlier versions wrote the same markers without mac=: such a document is not trusted (each section counts
    as edited, the new text arrives as a suggestion) and comes back signed."""
    markers = Markers(KEY, facts_draft.incident.id)
    legacy = re.sub(r" mac=[0-9a-f]{32}", "", render_markdown(facts_draft, key=KEY))
    newer = facts_draft.model_copy(update={"summary": "A new generated summary."})
    result = redraft(legacy, render_markdown(newer, key=KEY), markers=markers)
    assert result.regenerated_sections == [] and result.removed_sections == []
    assert [s.section for s in result.suggestions] == ["summary"]
    assert result.markdown.count("<!-- pm:section") == _sections_count(render_markdown(newer, key=KEY), markers)
    again = parse_sections(result.markdown, markers)
    assert not again.untrusted and all(i.trusted for i in again.items if isinstance(i, MarkedSection))


def test_section_key_file_is_created_private_and_refused_when_not(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / "section.key"
    key = load_section_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == KEY_BYTES and load_section_key(path) == key
    assert path.read_bytes().hex() not in repr(key) and str(path.read_bytes()) not in repr(key)
    assert not [p for p in path.parent.iterdir() if p.name != "section.key"]  # no temporary file left

    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_section_key(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(ConfigError, match="regular file"):
        load_section_key(link)
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 8)
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="exactly 32 bytes"):
        load_section_key(short)
    assert Settings(home=tmp_path / "h").section_key_path == tmp_path / "h" / "keys" / "section.key"


def test_processes_creating_the_key_at_once_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "section.key"
    code = "import sys; from pathlib import Path; from pipeline.section_key import load_section_key; "
    code += "print(load_section_key(Path(sys.argv[1])).secret.hex())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    outputs = {p.communicate()[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert outputs == {path.read_bytes().hex()}


def test_eval_report_escapes_hostile_values(settings: Settings, tmp_path: Path) -> None:
    suite = load_suite("samples.v1").model_copy(
        update={"cases": ["data/samples/checkout-bad-deploy"], "min_cases": 1, "thresholds": {}, "path": ""}
    )
    run = run_suite(suite, settings, baseline="none")
    bad = hostile("case")
    cases = [c.model_copy(update={"case_id": bad, "error": bad, "fallback_reason": bad}) for c in run.cases]
    md_path, html_path = render_report(dataclasses.replace(run, cases=cases), tmp_path / "report")
    assert "case &lt;script&gt;" in md_path.read_text(encoding="utf-8")  # the hostile case is in the report
    assert "case &lt;script&gt;" in html_path.read_text(encoding="utf-8")
    for page in (html_path.read_text(encoding="utf-8"), to_html(md_path.read_text(encoding="utf-8"))):
        inspector = _Inspector()
        inspector.feed(page)
        for tag, attrs in inspector.tags:
            assert tag not in ("script", "svg", "iframe"), tag
            for name, value in attrs:
                assert not name.lower().startswith("on"), (tag, name)
                if name in ("href", "src"):
                    assert value is not None and not re.match(r"^\s*(javascript|vbscript):", value, re.I), value
                    assert not value.startswith("data:") or value.startswith("data:image/png;base64,"), value
        assert not [c for c in inspector.comments if "pm:" in c]


def test_the_slack_announcement_cannot_ping_mention_or_forge_links(facts_draft: Draft) -> None:
    """Slack mrkdwn reads `<!channel>`, `<@U…>` and `<url|text>` as controls: incident text must arrive as text."""
    from pipeline.connectors.slack import SlackConfig, SlackConnector
    from pipeline.publish import post_summary
    from tests import vendor_servers as vs
    from tests.security.test_output_secrets import RecordingSlack
    from tests.test_connectors import TOKEN, _fast

    hostile_title = "<!channel> db down <@U0ADMIN> <https://evil.example/login|Open the draft> & more"
    draft = facts_draft.model_copy(
        update={
            "incident": facts_draft.incident.model_copy(update={"title": hostile_title}),
            "summary": "Read <!here> and <javascript:alert(1)|this>.",
        }
    )
    slack_fake = RecordingSlack(TOKEN)
    with vs.serve(slack_fake) as url, SlackConnector(SlackConfig(base_url=f"{url}/api", **_fast())) as slack:
        post_summary(slack, vs.CHANNEL, draft, link="javascript:alert(1)")
        post_summary(slack, vs.CHANNEL, draft, link="https://wiki.example/pm/a|b>c")
    unsafe_link, safe_link = (post["text"] for post in slack_fake.posts)
    assert re.findall(r"<[^>]*>", unsafe_link) == []  # a javascript: link is dropped, never a control
    assert re.findall(r"<[^>]*>", safe_link) == ["<https://wiki.example/pm/a%7Cb&gt;c|Open the draft>"]
    for text in (unsafe_link, safe_link):
        assert "&lt;!channel&gt;" in text and "&lt;@U0ADMIN&gt;" in text and "&amp; more" in text
