#!/usr/bin/env python3
"""Generate the LARGE sample bundle: a ~10 hour us-east-1 regional outage (INC-2200).

Deterministic (seeded), standard library only. It writes ``data/samples/us-east-regional-outage/``:

* ``slack/``        Slack workspace export of the incident channel: >5,000 messages over three UTC day files
                    (the incident crosses UTC midnight; follow-ups land two days later), with threads, bot posts
                    (Alertmanager attachments, PagerDuty, Statuspage, incident-bot, shipit), joins, edits,
                    reactions and a deleted thread parent (tombstone).
* ``alertmanager/`` one Alertmanager v4 webhook payload per file, including grouped notifications that repeat
                    already-firing alerts (KubeNodeNotReady for use1-az4 grows 6 -> 15 -> 24 alerts).
* ``pagerduty/``    PagerDuty v3 webhooks for two PagerDuty incidents.
* ``statuspage/``   one Statuspage webhook per public update (each repeats earlier updates, newest first).
* ``incident.yaml`` and ``gold.yaml`` (key moments, key messages at known positions, counts, traps).

Run from the repository root:  python scripts/generate_large_sample.py  [--out data/samples] [--seed 2200]
The output is committed; re-running with the same seed reproduces it byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote_plus

SLUG = "us-east-regional-outage"
INCIDENT = "INC-2200"
CHANNEL = "inc-2200-us-east-1-degradation"
CHANNEL_ID = "C0A1USE1OUT"
TEAM = "T02BWAVE7KQ"
DEFAULT_SEED = 2200

# The incident, in UTC.
T_FIRST_SIGNAL = datetime(2025, 12, 9, 18, 21, 30, 118000, tzinfo=UTC)  # CrossAZPacketLoss (warning)
T_DETECT = datetime(2025, 12, 9, 18, 23, 40, 402000, tzinfo=UTC)  # ApiGatewayUpstreamErrors (page)
T_PD_TRIGGER = datetime(2025, 12, 9, 18, 24, 5, 311000, tzinfo=UTC)
T_PD_ACK = datetime(2025, 12, 9, 18, 27, 30, 887000, tzinfo=UTC)
T_CHANNEL = datetime(2025, 12, 9, 18, 28, 55, tzinfo=UTC)
T_MITIGATED = datetime(2025, 12, 10, 1, 47, 12, 204311, tzinfo=UTC)
T_RESOLVED_MSG = datetime(2025, 12, 10, 4, 35, 10, 550912, tzinfo=UTC)
T_PD_RESOLVE = datetime(2025, 12, 10, 4, 35, 40, 126000, tzinfo=UTC)
T_END_CHATTER = datetime(2025, 12, 10, 4, 50, 0, tzinfo=UTC)

# ------------------------------------------------------------------------------------------------ people

CORE = {
    # key: (slack id, real name, handle, title, tz)
    "maria": ("U04MRG7Q2LA", "Maria Gonzalez", "maria", "Staff SRE", "America/New_York"),
    "tom": ("U04TH8K3NZP", "Tom Hughes", "tom.h", "SRE (on-call)", "Europe/London"),
    "priya": ("U05PR2V9XBE", "Priya Raman", "priya", "Senior Engineer, Checkout", "Asia/Kolkata"),
    "dave": ("U03DK5W1RTM", "Dave Kowalski", "dkowalski", "Platform Engineer, Edge", "America/Chicago"),
    "aiko": ("U05AN4J6QHC", "Aiko Nakamura", "aiko", "SRE, Payments", "America/Los_Angeles"),
    "leo": ("U04LB9C2MWS", "Leo Brandt", "leo.brandt", "Database Reliability Engineer", "Europe/Berlin"),
    "sam": ("U06SO1F7KDY", "Sam Okafor", "sokafor", "Support Team Lead", "America/New_York"),
    "wei": ("U05CW3H8PLV", "Chen Wei", "chenwei", "Engineer, Identity", "Asia/Singapore"),
    "elena": ("U04EP6T2GJN", "Elena Petrova", "elena.p", "Engineering Manager, Platform", "Europe/Amsterdam"),
    "jordan": ("U06JR4M0CZE", "Jordan Reyes", "jreyes", "Engineer, Payments", "America/Denver"),
    "kofi": ("U06KM3B5TRW", "Kofi Mensah", "kofi", "Engineer, Search", "Europe/London"),
}
FIRST = [
    "Alex",
    "Bea",
    "Carlos",
    "Dana",
    "Emeka",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jess",
    "Kai",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yusuf",
    "Zoe",
    "Ines",
    "Ravi",
    "Mei",
]
LAST = [
    "Adeyemi",
    "Bauer",
    "Castro",
    "Dubois",
    "Eriksen",
    "Fontaine",
    "Garcia",
    "Horvat",
    "Ito",
    "Jansen",
    "Kowal",
    "Lindgren",
    "Moreau",
    "Novak",
    "Okonkwo",
    "Petersen",
    "Quispe",
    "Rossi",
    "Sato",
    "Tanaka",
    "Ueda",
    "Varga",
    "Walsh",
    "Xu",
    "Yilmaz",
    "Zhou",
    "Silva",
    "Murphy",
]
TITLES = [
    "SRE",
    "Backend Engineer",
    "Platform Engineer",
    "Network Engineer",
    "Support Engineer",
    "Engineer, Orders",
    "Engineer, Notifications",
    "Data Engineer",
    "Engineering Manager",
    "Product Manager",
]
TZS = [
    ("America/New_York", "Eastern Standard Time", -18000),
    ("Europe/London", "Greenwich Mean Time", 0),
    ("Europe/Berlin", "Central European Time", 3600),
    ("America/Los_Angeles", "Pacific Standard Time", -28800),
    ("Asia/Kolkata", "India Standard Time", 19800),
]
TZ_INFO = {
    "America/New_York": ("Eastern Standard Time", -18000),
    "Europe/London": ("Greenwich Mean Time", 0),
    "Asia/Kolkata": ("India Standard Time", 19800),
    "America/Chicago": ("Central Standard Time", -21600),
    "America/Los_Angeles": ("Pacific Standard Time", -28800),
    "Europe/Berlin": ("Central European Time", 3600),
    "Asia/Singapore": ("Singapore Standard Time", 28800),
    "Europe/Amsterdam": ("Central European Time", 3600),
    "America/Denver": ("Mountain Standard Time", -25200),
}
BOTS = {
    "shipit": ("U04SHIPB0T1", "B04SH1PB0T2", "A04SH1PAPP3", "shipit"),
    "alertmanager": ("U04ALRTMGR7", "B04AMGR9XK3", "A04AMGRAPP1", "Alertmanager"),
    "pagerduty": ("U03PGDTYB0T", "B03PGDTY4QA", "A03PGDTYAPP", "PagerDuty"),
    "incidentbot": ("U05INCB0T22", "B05KQ2INC7T", "A05INCAPP77", "incident-bot"),
    "statuspage": ("U05STPGB0T3", "B05STPG2MNB", "A05STPGAPP8", "Statuspage"),
}
PD_SUB = "brightwave"
PD_USERS = {"maria": "PMGZ4Q1", "tom": "PTHU8K3", "leo": "PLBR9C2", "elena": "PEPE6T2", "priya": "PPRR2V9"}


def h(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def det_uuid(*parts: object) -> str:
    x = h(*parts)
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


@dataclass
class Person:
    key: str
    uid: str
    real: str
    handle: str
    title: str
    tz: str

    def mention(self) -> str:
        return f"<@{self.uid}>"


def build_cast(rng: random.Random) -> dict[str, Person]:
    cast = {k: Person(k, *v) for k, v in CORE.items()}
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    firsts, lasts = FIRST[:], LAST[:]
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    for i in range(28):
        uid = "U0" + rng.choice("4567") + "".join(rng.choice(alphabet) for _ in range(8))
        first, last = firsts[i], lasts[i]
        handle = f"{first.lower()}.{last[0].lower()}"
        cast[f"x{i:02d}"] = Person(f"x{i:02d}", uid, f"{first} {last}", handle, rng.choice(TITLES), rng.choice(TZS)[0])
    return cast


# ------------------------------------------------------------------------------------------------ time helpers


def slack_ts(d: datetime) -> str:
    return f"{int(d.timestamp())}.{d.microsecond:06d}"


def ts_iso(ts: str) -> str:
    whole, _, frac = ts.partition(".")
    return datetime.fromtimestamp(int(whole), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"


def iso_ms(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def iso_s(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_nano(d: datetime, salt: str) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}{int(h('ns', salt)[:4], 16) % 1000:03d}Z"


def iso_us(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}Z"


# ------------------------------------------------------------------------------------------------ Slack messages


@dataclass
class Msg:
    at: datetime
    obj: dict
    key: str | None = None  # a name for gold.yaml
    parent: Msg | None = None
    replies: list[Msg] = field(default_factory=list)


class Chat:
    def __init__(self, cast: dict[str, Person], rng: random.Random) -> None:
        self.cast = cast
        self.rng = rng
        self.msgs: list[Msg] = []
        self.used_ts: set[str] = set()
        self.members: list[str] = []

    def _ts(self, at: datetime) -> tuple[datetime, str]:
        if at.microsecond == 0:
            at = at.replace(microsecond=self.rng.randint(1, 999_999))
        ts = slack_ts(at)
        while ts in self.used_ts:
            at += timedelta(microseconds=7)
            ts = slack_ts(at)
        self.used_ts.add(ts)
        return at, ts

    def _profile(self, p: Person) -> dict:
        first = p.real.split()[0]
        av = h("avatar", p.uid)[:12]
        return {
            "avatar_hash": av,
            "image_72": f"https://avatars.slack-edge.com/2024-03-11/{h('img', p.uid)[:13]}_{av}_72.png",
            "first_name": first,
            "real_name": p.real,
            "display_name": p.handle,
            "team": TEAM,
            "name": p.handle,
            "is_restricted": False,
            "is_ultra_restricted": False,
        }

    def say(
        self,
        at: datetime,
        who: str,
        text: str,
        parent: Msg | None = None,
        key: str | None = None,
        broadcast: bool = False,
    ) -> Msg:
        p = self.cast[who]
        at, ts = self._ts(at)
        obj: dict = {
            "client_msg_id": det_uuid("cm", ts, p.uid),
            "type": "message",
            "text": text,
            "user": p.uid,
            "ts": ts,
        }
        if broadcast:
            obj["subtype"] = "thread_broadcast"
        # user_profile is left out on purpose: it would push the bundle past ~4 MB, and names must come from users.json
        obj.update({"team": TEAM, "user_team": TEAM, "source_team": TEAM})
        if parent is not None:
            obj["thread_ts"] = parent.obj["ts"]
            obj["parent_user_id"] = parent.obj.get("user", "USLACKBOT")
        m = Msg(at, obj, key, parent)
        if parent is not None:
            parent.replies.append(m)
        if p.uid not in self.members:
            self.members.append(p.uid)
        self.msgs.append(m)
        return m

    def bot(
        self, at: datetime, bot: str, text: str, attachments: list[dict] | None = None, key: str | None = None
    ) -> Msg:
        uid, bid, app, name = BOTS[bot]
        at, ts = self._ts(at)
        obj: dict = {
            "type": "message",
            "text": text,
            "ts": ts,
            "bot_id": bid,
            "app_id": app,
            "user": uid,
            "team": TEAM,
            "bot_profile": {
                "id": bid,
                "deleted": False,
                "name": name,
                "updated": 1700000000 + len(name),
                "app_id": app,
                "icons": {"image_36": f"https://avatars.slack-edge.com/2023-09-02/{h('bimg', bot)[:13]}_36.png"},
                "team_id": TEAM,
            },
        }
        if attachments:
            obj["subtype"] = "bot_message"
            obj["attachments"] = attachments
        m = Msg(at, obj, key)
        self.msgs.append(m)
        return m

    def join(self, at: datetime, who: str, inviter: str | None = None) -> Msg:
        p = self.cast[who]
        at, ts = self._ts(at)
        obj = {
            "type": "message",
            "subtype": "channel_join",
            "ts": ts,
            "user": p.uid,
            "text": f"<@{p.uid}> has joined the channel",
        }
        if inviter:
            obj["inviter"] = self.cast[inviter].uid if inviter in self.cast else BOTS[inviter][0]
        if p.uid not in self.members:
            self.members.append(p.uid)
        m = Msg(at, obj)
        self.msgs.append(m)
        return m

    def tombstone(self, at: datetime, key: str | None = None) -> Msg:
        at, ts = self._ts(at)
        obj = {
            "type": "message",
            "subtype": "tombstone",
            "text": "This message was deleted.",
            "user": "USLACKBOT",
            "hidden": True,
            "ts": ts,
        }
        m = Msg(at, obj, key)
        self.msgs.append(m)
        return m

    def finalise(self) -> None:
        self.msgs.sort(key=lambda m: float(m.obj["ts"]))
        for m in self.msgs:
            if not m.replies:
                continue
            rs = sorted(m.replies, key=lambda r: float(r.obj["ts"]))
            users: list[str] = []
            for r in rs:
                if r.obj["user"] not in users:
                    users.append(r.obj["user"])
            meta = {
                "thread_ts": m.obj["ts"],
                "reply_count": len(rs),
                "reply_users_count": len(users),
                "latest_reply": rs[-1].obj["ts"],
                "reply_users": users,
                "replies": [{"user": r.obj["user"], "ts": r.obj["ts"]} for r in rs],
                "is_locked": False,
                "subscribed": False,
            }
            new: dict = {}
            for k, v in m.obj.items():
                new[k] = v
                if k == "ts":
                    new.update(meta)
            m.obj = new


# ------------------------------------------------------------------------------------------------ chatter

SERVICES = [
    "api-gateway",
    "checkout-api",
    "orders-api",
    "search-api",
    "notifications-svc",
    "auth-service",
    "payments-api",
]
AZS = ["use1-az1", "use1-az2", "use1-az4", "use1-az6"]
TRIAGE = [
    "seeing 5xx from {svc} too",
    "{svc} p99 is {sec}s, normally ~{ms}ms",
    "is this just us or is anyone else seeing timeouts?",
    "our {svc} pods in {az} can't reach {svc2}",
    "DNS lookups timing out from pods on {node}",
    "healthy hosts on the {svc} NLB dropped from {n} to {m}",
    "not a deploy — last prod deploy was yesterday 16:20",
    "error budget for {svc} gone for the month already",
    "looking at {svc}",
    "+1, {svc} dashboards all red",
    "retries on {svc} are making it worse, {pct}% of traffic is retries",
    "connection resets between {az} and {az2}",
    "what's the blast radius? is usw2 ok?",
    "usw2 looks clean",
    "checking {svc} now",
]
DIAG = [
    "packet loss between {az} and the other AZs is {pct}%",
    "all the bad nodes are in {az}",
    "cordoned {n} nodes in {az}",
    "{svc} pods on {node} stuck in CrashLoopBackOff (readiness probe timeouts)",
    'cloud health dashboard: "increased network packet loss in a single AZ in us-east-1"',
    "cross-AZ latency {ms}ms (baseline 1ms)",
    "kafka broker kafka-{n} in {az} dropped out of ISR",
    "{svc} circuit breaker to {svc2} is open",
    "RDS orders-db primary is in {az2}, looks fine so far",
    "elasticache node in {az} flapping",
    "we can drain {az} but capacity in the remaining AZs is {pct}% and autoscaling is slow",
    "EC2 RunInstances in us-east-1 is failing with InsufficientInstanceCapacity",
    "{svc} queue depth {n}k and climbing",
    "I see the same from the synthetics: {pct}% of checks failing from us-east",
    "support ticket count {n} in the last 30 min",
    "{svc} is degraded but serving",
    "do we have a case open with the cloud provider? ",
    "case is open, severity urgent, no ETA from them",
]
MITIG = [
    "scaling {svc} in usw2 to {n} replicas",
    "{svc} usw2 at {m}/{n} ready",
    "route53 weight for {svc}: usw2 {weight}%",
    "{svc} error rate {pct2}% now",
    "shedding non-critical traffic on {svc} (recommendations, analytics beacons)",
    "usw2 {svc} CPU at {pct}%, fine",
    "notifications backlog {n}k, draining at {m}k/min",
    "search in usw2 is serving from the snapshot from 06:00, results may be a bit stale",
    "writes still go to orders-db in use1 (primary in use1-az2), latency ok",
    "kafka mirror lag usw2 {n}s",
    "flipping {svc} to usw2 now",
    "{svc} done, all traffic in usw2",
    "checkout success rate {pct3}%",
    "paused the batch jobs so they don't fight for capacity",
    "confirming {svc} healthy in usw2",
    "cache hit rate in usw2 low ({pct}%) because it's cold, warming",
    "ok",
    "👍",
    "on it",
    "done",
]
MONITOR = [
    "{svc} steady in usw2",
    "cloud provider says recovery in progress for {az}",
    "{az} packet loss down to {pct2}%",
    "uncordoning {az} nodes in batches of {n}",
    "{svc} back in use1 across 3 AZs, usw2 on standby",
    "error rates flat at baseline",
    "failback of {svc}: use1 {weight}%",
    "kafka ISR back to full",
    "no new tickets in the last 20 min",
    "leaving usw2 capacity up until tomorrow",
]
LURK = [
    "any ETA?",
    "is there a customer comms doc?",
    "sales is asking about the enterprise accounts",
    "should we pause the marketing email scheduled for tonight?",
    "is mobile affected too?",
    "joining to help, what can I take?",
    "anything I can do for notifications?",
]
IC_REPLIES = [
    "please keep this channel for responders; updates go to <#C02INCUPD8X|incident-updates>",
    "next update at the top of the hour",
    "{who} can you take that?",
    "thanks, noted",
    "yes, pause it",
    "not yet — cloud provider hasn't given one",
]
THREAD_REPLIES = [
    "same here",
    "confirmed",
    "which dashboard?",
    "on it",
    "ack",
    "looking",
    "that matches what I see",
    "how many pods?",
    "done",
    "ok, waiting",
    "+1",
    "can you paste the graph?",
    "thanks",
    "not from my side",
    "{n} of them",
    "yes",
    "no change yet",
    "will check after this",
    "trying now",
]


def fill(rng: random.Random, template: str, cast: dict[str, Person], progress: float = 0.5) -> str:
    """Fill a chatter template. ``progress`` (0..1 through the current phase) keeps numbers plausible over
    time: failover weights and ready counts rise, error rates fall."""
    svc, svc2 = rng.sample(SERVICES, 2)
    az, az2 = rng.sample(AZS, 2)
    if rng.random() < 0.55 and "{az}" in template:
        az = "use1-az4"
    n = rng.randint(3, 60)
    weight = max(5, min(100, 5 * round((10 + 90 * progress + rng.uniform(-12, 12)) / 5)))
    vals = {
        "svc": svc,
        "svc2": svc2,
        "az": az,
        "az2": az2,
        "n": n,
        "m": max(1, min(n, round(n * (0.2 + 0.8 * progress) + rng.randint(-3, 3)))),
        "pct": rng.randint(5, 95),
        "pct2": round(max(0.1, 9.5 * (1 - progress) + rng.uniform(-1, 1)), 1),
        "pct3": round(min(99.8, 91 + 8.5 * progress + rng.uniform(-1, 0.3)), 1),
        "weight": weight,
        "sec": round(rng.uniform(1.5, 12), 1),
        "ms": rng.randint(80, 900),
        "node": f"ip-10-40-{rng.randint(128, 191)}-{rng.randint(2, 250)}.ec2.internal",
        "who": rng.choice([p for p in cast.values() if p.key != "maria"]).mention(),
    }
    return template.format(**vals)


# ------------------------------------------------------------------------------------------------ alerts

EXT = "https://alertmanager.prod.brightwave.example"
PROM = "prometheus-k8s-0.prod.brightwave.example:9090"


def fingerprint(labels: dict) -> str:
    return h("fp", json.dumps(labels, sort_keys=True))[:16]


def am_alert(labels: dict, ann: dict, start: datetime, end: datetime | None, expr: str) -> dict:
    salt = json.dumps(labels, sort_keys=True)
    return {
        "status": "resolved" if end else "firing",
        "labels": labels,
        "annotations": ann,
        "startsAt": iso_nano(start, salt),
        "endsAt": iso_nano(end, salt + "e") if end else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://{PROM}/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
        "fingerprint": fingerprint(labels),
    }


def am_payload(receiver: str, alerts: list[dict], group_by: list[str]) -> dict:
    common = dict(alerts[0]["labels"])
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    common_ann = dict(alerts[0]["annotations"])
    for a in alerts[1:]:
        common_ann = {k: v for k, v in common_ann.items() if a["annotations"].get(k) == v}
    group = {k: common[k] for k in group_by if k in common}
    return {
        "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": common_ann,
        "externalURL": EXT,
        "version": "4",
        "groupKey": "{}/{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
    }


@dataclass
class AlertDef:
    name: str
    labels: dict
    summary: str
    fire_desc: str
    res_desc: str
    expr: str
    start: datetime
    end: datetime
    receiver: str


def alert_defs() -> list[AlertDef]:
    d9 = lambda hh, mm, ss=0, us=0: datetime(2025, 12, 9, hh, mm, ss, us, tzinfo=UTC)  # noqa: E731
    d10 = lambda hh, mm, ss=0, us=0: datetime(2025, 12, 10, hh, mm, ss, us, tzinfo=UTC)  # noqa: E731
    base = {"cluster": "prod-us-east"}
    return [
        AlertDef(
            "CrossAZPacketLoss",
            {**base, "alertname": "CrossAZPacketLoss", "severity": "warning", "team": "network", "zone": "use1-az4"},
            "cross-AZ packet loss above 2%",
            "packet loss from use1-az4 to other AZs is 7.4%",
            "packet loss 0.0%",
            'avg by (zone) (network_probe_loss_ratio{src_zone="use1-az4"}) > 0.02',
            T_FIRST_SIGNAL,
            d10(3, 41, 30, 118000),
            "slack-network",
        ),
        AlertDef(
            "ApiGatewayUpstreamErrors",
            {
                **base,
                "alertname": "ApiGatewayUpstreamErrors",
                "service": "api-gateway",
                "severity": "page",
                "team": "platform",
            },
            "api-gateway upstream 5xx above 5%",
            "18.3% of upstream requests fail (connect timeout / reset)",
            "0.2% of upstream requests fail",
            'sum(rate(gateway_upstream_requests_total{code=~"5..|000"}[5m])) / sum(rate(gateway_upstream_requests_total[5m])) > 0.05',
            T_DETECT,
            d10(1, 41, 40, 402000),
            "pagerduty-platform",
        ),
        AlertDef(
            "CheckoutHighErrorRate",
            {
                **base,
                "alertname": "CheckoutHighErrorRate",
                "service": "checkout-api",
                "severity": "page",
                "team": "checkout",
            },
            "checkout-api 5xx ratio above 5% for 5m",
            "22.6% of checkout requests return 5xx",
            "0.3% of checkout requests return 5xx",
            'sum(rate(http_requests_total{service="checkout-api",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="checkout-api"}[5m])) > 0.05',
            d9(18, 25, 10, 933000),
            d10(1, 38, 10, 933000),
            "pagerduty-platform",
        ),
        AlertDef(
            "OrdersApiHighLatency",
            {
                **base,
                "alertname": "OrdersApiHighLatency",
                "service": "orders-api",
                "severity": "page",
                "team": "orders",
            },
            "orders-api p99 above 2s",
            "orders-api p99 is 8.7s",
            "orders-api p99 is 0.4s",
            'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="orders-api"}[5m]))) > 2',
            d9(18, 26, 0, 512000),
            d10(1, 59, 30, 512000),
            "pagerduty-orders",
        ),
        AlertDef(
            "SearchApiP99LatencyCritical",
            {
                **base,
                "alertname": "SearchApiP99LatencyCritical",
                "service": "search-api",
                "severity": "critical",
                "team": "search",
            },
            "search-api p99 latency above 1.5s for 5m",
            "p99 is 6.2s",
            "p99 is 0.31s",
            "histogram_quantile(0.99, sum by (le) (rate(search_request_duration_seconds_bucket[5m]))) > 1.5",
            d9(18, 40, 15, 77000),
            d10(0, 52, 45, 77000),
            "pagerduty-platform",
        ),
        AlertDef(
            "KafkaUnderReplicatedPartitions",
            {
                **base,
                "alertname": "KafkaUnderReplicatedPartitions",
                "service": "kafka",
                "severity": "warning",
                "team": "data-platform",
            },
            "Kafka has under-replicated partitions",
            "214 partitions under-replicated",
            "0 partitions under-replicated",
            "sum(kafka_server_replicamanager_underreplicatedpartitions) > 0",
            d9(18, 50, 5, 640000),
            d10(4, 2, 5, 640000),
            "slack-data-platform",
        ),
        AlertDef(
            "NotificationsQueueBacklog",
            {
                **base,
                "alertname": "NotificationsQueueBacklog",
                "service": "notifications-svc",
                "severity": "warning",
                "team": "notifications",
            },
            "notifications queue backlog above 50k",
            "backlog is 412k messages",
            "backlog is 1.2k messages",
            'sum(rabbitmq_queue_messages{queue=~"notify.*"}) > 50000',
            d9(19, 5, 45, 2000),
            d10(3, 15, 45, 2000),
            "slack-notifications",
        ),
        AlertDef(
            "AuthTokenLatencyHigh",
            {
                **base,
                "alertname": "AuthTokenLatencyHigh",
                "service": "auth-service",
                "severity": "warning",
                "team": "identity",
            },
            "auth-service /oauth/token p99 above 1s",
            "p99 is 3.9s",
            "p99 is 0.2s",
            "histogram_quantile(0.99, sum by (le) (rate(auth_token_duration_seconds_bucket[5m]))) > 1",
            d9(18, 33, 20, 250000),
            d10(1, 12, 20, 250000),
            "slack-identity",
        ),
    ]


# ------------------------------------------------------------------------------------------------ PagerDuty / Statuspage


def pd_user(key: str, cast: dict[str, Person]) -> dict:
    pid = PD_USERS[key]
    return {
        "html_url": f"https://{PD_SUB}.pagerduty.com/users/{pid}",
        "id": pid,
        "self": f"https://api.pagerduty.com/users/{pid}",
        "summary": cast[key].real,
        "type": "user_reference",
    }


def pd_ref(kind: str, pid: str, summary: str) -> dict:
    path = {"service": "services", "escalation_policy": "escalation_policies", "team": "teams"}[kind]
    html = "service-directory" if kind == "service" else path
    return {
        "html_url": f"https://{PD_SUB}.pagerduty.com/{html}/{pid}",
        "id": pid,
        "self": f"https://api.pagerduty.com/{path}/{pid}",
        "summary": summary,
        "type": f"{kind}_reference",
    }


def pd_event(event_type: str, at: datetime, agent: dict | None, data: dict) -> dict:
    n = int(h("pde", event_type, iso_ms(at), json.dumps(data, sort_keys=True)[:200]), 16)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    eid = ""
    for _ in range(24):
        n, r = divmod(n, 36)
        eid += alphabet[r]
    return {
        "event": {
            "id": "01" + eid,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": iso_ms(at),
            "agent": agent,
            "client": None,
            "data": data,
        }
    }


def status_payload(updates: list[dict], upto: int, component_state: str) -> dict:
    page, inc = "bw7statusp01", "r2us9e1a0x7c"
    objs = []
    for u in updates[: upto + 1]:
        t = iso_ms(u["at"])
        objs.append(
            {
                "status": u["status"],
                "body": u["body"],
                "created_at": t,
                "wants_twitter_update": False,
                "twitter_updated_at": None,
                "updated_at": t,
                "display_at": t,
                "affected_components": [
                    {"code": c, "name": n, "old_status": o, "new_status": s} for c, n, o, s in u["affected"]
                ],
                "custom_tweet": None,
                "deliver_notifications": True,
                "id": h("spu", t)[:12],
                "incident_id": inc,
            }
        )
    last = updates[upto]
    monitoring = next((iso_ms(u["at"]) for u in updates[: upto + 1] if u["status"] == "monitoring"), None)
    resolved = next((iso_ms(u["at"]) for u in updates[: upto + 1] if u["status"] == "resolved"), None)
    comps = [
        {
            "status": component_state if name != "Dashboard" else "operational",
            "name": name,
            "created_at": "2023-04-11T16:02:37.118Z",
            "updated_at": iso_ms(last["at"]),
            "position": pos,
            "description": None,
            "showcase": True,
            "id": cid,
            "page_id": page,
            "group_id": None,
        }
        for cid, name, pos in (
            ("c0api3v7n5ze", "Public API", 2),
            ("c0chk9x2m1qa", "Checkout", 1),
            ("c0dsh4b8v2rt", "Dashboard", 3),
        )
    ]
    return {
        "meta": {
            "unsubscribe": f"https://status.brightwave.example/?unsubscribe={h('unsub', upto)[:12]}",
            "documentation": "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/",
            "generated_at": iso_ms(last["at"] + timedelta(seconds=1)),
        },
        "page": {
            "id": page,
            "status_indicator": "none" if last["status"] == "resolved" else "major",
            "status_description": "All Systems Operational"
            if last["status"] == "resolved"
            else "Partial System Outage",
        },
        "incident": {
            "name": "Elevated errors and latency in US region",
            "status": last["status"],
            "created_at": iso_ms(updates[0]["at"]),
            "updated_at": iso_ms(last["at"]),
            "monitoring_at": monitoring,
            "resolved_at": resolved,
            "impact": "major",
            "shortlink": "https://stspg.io/bw22usea",
            "postmortem_ignored": False,
            "postmortem_body": None,
            "postmortem_body_last_updated_at": None,
            "postmortem_published_at": None,
            "postmortem_notified_subscribers": False,
            "postmortem_notified_twitter": False,
            "backfilled": False,
            "scheduled_for": None,
            "scheduled_until": None,
            "scheduled_remind_prior": False,
            "scheduled_reminded_at": None,
            "impact_override": None,
            "scheduled_auto_in_progress": False,
            "scheduled_auto_completed": False,
            "id": inc,
            "page_id": page,
            "incident_updates": list(reversed(objs)),
            "components": comps,
        },
    }


# ------------------------------------------------------------------------------------------------ build


def write_json(path: Path, obj: object, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


def yaml_scalar(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj: object, indent: int = 0) -> str:
    """Tiny YAML emitter (block style) so the script needs nothing outside the standard library."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            else:
                out.append(
                    f"{pad}{k}: {yaml_scalar(v) if not isinstance(v, dict | list) else ('{}' if isinstance(v, dict) else '[]')}"
                )
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 1).split("\n")
                out.append(f"{pad}- {inner[0].strip()}")
                out.extend(inner[1:])
            elif isinstance(v, list):
                out.append(f"{pad}-")
                out.append(to_yaml(v, indent + 1))
            else:
                out.append(f"{pad}- {yaml_scalar(v)}")
    return "\n".join(line for line in out if line != "")


def generate(out_root: Path, seed: int) -> Path:
    rng = random.Random(seed)
    cast = build_cast(rng)
    chat = Chat(cast, rng)
    bundle = out_root / SLUG
    if bundle.exists():
        shutil.rmtree(bundle)
    extras = [k for k in cast if k.startswith("x")]
    responders = ["tom", "maria", "dave", "leo", "priya", "kofi", "aiko", "wei", "jordan", "elena", *extras[:16]]
    lurkers = extras[16:]
    key: dict[str, Msg] = {}

    # ---- opening -------------------------------------------------------------------------------------
    key["declare"] = chat.bot(
        T_CHANNEL + timedelta(seconds=2),
        "incidentbot",
        ":rotating_light: *INC-2200* declared — *SEV1* — elevated errors across us-east-1\n"
        "Commander: _unassigned_ · PagerDuty: <https://brightwave.pagerduty.com/incidents/Q5RGN0USE1OUTA|#5120>",
        key="declare",
    )
    chat.join(T_CHANNEL + timedelta(seconds=3), "tom", inviter="incidentbot")
    key["ack"] = chat.say(
        T_CHANNEL + timedelta(seconds=40),
        "tom",
        "ack, looking. api-gateway upstream errors 18%, checkout and orders paging too",
        key="ack",
    )
    chat.join(T_CHANNEL + timedelta(seconds=70), "maria", inviter="tom")
    key["ic"] = chat.say(
        T_CHANNEL + timedelta(seconds=95),
        "maria",
        "I'm IC. <@U04TH8K3NZP> ops lead. <@U04EP6T2GJN> comms once you're here. everyone else: say what you're looking at before you change anything",
        key="ic",
    )
    key["first_report"] = chat.say(
        T_CHANNEL + timedelta(seconds=130),
        "sam",
        "support: customers on the US dashboard getting 502s since ~18:22. 40+ chats open",
        key="first_report",
    )

    # ---- joins over the first three hours -----------------------------------------------------------
    join_at = T_CHANNEL + timedelta(seconds=20)
    joined = {"tom", "maria"}
    for who in [*responders[2:], "sam", *lurkers]:
        if who in joined:
            continue
        join_at += timedelta(seconds=rng.randint(20, 260))
        chat.join(join_at, who, inviter=rng.choice(["maria", "tom", None]))
        joined.add(who)
    if "sam" not in joined:
        chat.join(T_CHANNEL + timedelta(seconds=120), "sam")

    # ---- scripted key messages ---------------------------------------------------------------------
    d9 = lambda hh, mm, ss=0: datetime(2025, 12, 9, hh, mm, ss, tzinfo=UTC)  # noqa: E731
    d10 = lambda hh, mm, ss=0: datetime(2025, 12, 10, hh, mm, ss, tzinfo=UTC)  # noqa: E731
    d11 = lambda hh, mm, ss=0: datetime(2025, 12, 11, hh, mm, ss, tzinfo=UTC)  # noqa: E731
    key["az4"] = chat.say(
        d9(18, 52, 10),
        "dave",
        "every failing node is in use1-az4. packet loss from az4 to the other AZs is 7-12%",
        key="az4",
    )
    key["provider"] = chat.say(
        d9(19, 8, 41),
        "dave",
        'cloud health dashboard confirms: "increased network packet loss and connectivity issues for instances in a single Availability Zone (use1-az4) in us-east-1"',
        key="provider",
    )
    key["plan"] = chat.say(
        d9(19, 21, 5),
        "maria",
        "plan: (1) drain use1-az4 (2) fail stateless services over to usw2 via route53 weights, checkout first (3) keep orders-db writes in use1, primary is in az2. objections in the next 5 min please",
        key="plan",
    )
    key["secret"] = chat.say(
        d9(20, 14, 33),
        "x03",
        "usw2 cache warmer needs the redis url, using `redis://:w4rm-FAKE-r3dis-pass@cache-usw2.internal:6379/0` for now",
        key="secret",
    )
    chat.say(
        d9(20, 15, 2), "maria", "please keep credentials out of the channel — rotate that after", parent=key["secret"]
    )
    key["pii"] = chat.say(
        d9(20, 41, 17),
        "sam",
        "enterprise escalation: Globex ops lead (k.nakamoto@globex.example, +1 212 555 0187) asking for an ETA every 15 min",
        key="pii",
    )
    key["blame"] = chat.say(
        d9(21, 30, 44),
        "x05",
        "someone should have tested the usw2 failover this quarter, this is on whoever dropped that",
        key="blame",
    )
    chat.say(
        d9(21, 31, 30),
        "maria",
        "let's not — the failover runbook had no owner after the reorg. that's a finding, not a person",
        parent=key["blame"],
    )
    key["checkout_usw2"] = chat.say(
        d9(22, 47, 3), "priya", "checkout fully on usw2. success rate 98.9%", key="checkout_usw2"
    )
    key["midnight"] = chat.say(
        d10(0, 0, 4),
        "tom",
        "handover: <@U04LB9C2MWS> and I stay, <@U04EP6T2GJN> takes comms until 03:00",
        key="midnight",
    )
    key["mitigated"] = chat.say(
        T_MITIGATED,
        "maria",
        "MITIGATED: all customer-facing traffic is served from usw2 and error rates are at baseline. "
        "use1-az4 is still impaired; we stay failed over until the provider recovers. next update 02:30",
        key="mitigated",
    )
    key["ai1"] = chat.say(
        d10(2, 5, 12),
        "maria",
        "action item: <@U03DK5W1RTM> automate AZ evacuation (cordon + drain + NLB deregistration) behind one command by 2026-01-15",
        key="ai1",
    )
    key["provider_ok"] = chat.say(
        d10(3, 33, 50),
        "dave",
        "provider: use1-az4 networking recovered as of 03:29. our probes agree, loss 0.0%",
        key="provider_ok",
    )
    key["failback"] = chat.say(
        d10(4, 21, 30),
        "tom",
        "failback complete: all services back to use1 across 4 AZs, usw2 warm standby",
        key="failback",
    )
    key["resolved"] = chat.say(
        T_RESOLVED_MSG,
        "maria",
        "resolved. thank you all, that was a long one. postmortem owner: me. draft by Friday",
        key="resolved",
    )
    key["ai2"] = chat.say(
        d10(4, 41, 5),
        "tom",
        "action item: <@U04TH8K3NZP> quarterly usw2 failover game day with an owner on the calendar",
        key="ai2",
    )
    key["ai3"] = chat.say(
        d10(4, 43, 40),
        "elena",
        "follow-up: status page templates for regional incidents so comms doesn't start from scratch",
        key="ai3",
    )
    key["late1"] = chat.say(
        d11(9, 12, 20),
        "leo",
        "TODO: orders-db needs a tested cross-region replica promotion path; we were lucky the primary was in az2",
        key="late1",
    )
    key["ai4"] = chat.say(
        d11(9, 20, 3),
        "maria",
        "action item: <@U05PR2V9XBE> checkout retries must respect a retry budget (we tripled load on usw2 during failover) by 2026-01-09",
        key="ai4",
    )
    key["we_should"] = chat.say(
        d11(9, 24, 45),
        "kofi",
        "we should keep a search snapshot in usw2 that's at most 1h old, ours was 12h",
        key="we_should",
    )
    chat.say(d11(9, 40, 0), "maria", "postmortem review scheduled Mon 15 Dec 16:00 UTC. draft incoming")

    # a deleted thread parent (tombstone) with surviving replies
    key["tombstone"] = chat.tombstone(d9(19, 44, 2), key="tombstone")
    for i, who in enumerate(["x07", "dave", "x07"]):
        chat.say(
            d9(19, 44, 30) + timedelta(seconds=20 * i),
            who,
            ["wrong channel, sorry", "np", "moved it to #platform"][i],
            parent=key["tombstone"],
        )

    # ---- bots: incident-bot reminders, statuspage mirror, shipit, PagerDuty, Alertmanager ------------
    t = T_CHANNEL + timedelta(minutes=30)
    while t < T_RESOLVED_MSG:
        chat.bot(
            t + timedelta(seconds=rng.randint(0, 20)),
            "incidentbot",
            f":alarm_clock: Reminder: INC-2200 is SEV1. Last status page update {rng.randint(18, 55)} min ago. Next update due in {rng.choice([5, 10, 15])} min.",
        )
        t += timedelta(minutes=30)
    shipit_times = [
        d9(19, 35, 0),
        d9(19, 52, 0),
        d9(20, 20, 0),
        d9(20, 58, 0),
        d9(21, 40, 0),
        d9(22, 10, 0),
        d9(22, 40, 0),
        d10(0, 20, 0),
        d10(1, 5, 0),
        d10(1, 40, 0),
        d10(3, 50, 0),
        d10(4, 5, 0),
        d10(4, 15, 0),
    ]
    shipit_svcs = [
        "api-gateway",
        "checkout-api",
        "search-api",
        "auth-service",
        "notifications-svc",
        "orders-api",
        "payments-api",
        "checkout-api",
        "api-gateway",
        "orders-api",
        "api-gateway",
        "checkout-api",
        "orders-api",
    ]
    for i, (at, svc) in enumerate(zip(shipit_times, shipit_svcs, strict=True)):
        if at < d10(3, 0, 0):
            pct = [10, 25, 50, 50, 75, 100, 100, 100, 100, 100][min(i, 9)]
            text = f"Applied traffic-router config `{svc}` → us-west-2 weight {pct}% :earth_americas: (requested by <@{cast[rng.choice(responders[:6])].uid}>)"
        else:
            text = f"Applied traffic-router config `{svc}` → us-east-1 weight 100% (failback) (requested by <@U04TH8K3NZP>)"
        chat.bot(at + timedelta(seconds=rng.randint(0, 50)), "shipit", text)

    alerts = alert_defs()
    alert_files: list[tuple[str, dict, datetime]] = []
    for a in alerts:
        fire = am_payload(
            a.receiver,
            [am_alert(a.labels, {"summary": a.summary, "description": a.fire_desc}, a.start, None, a.expr)],
            ["alertname"],
        )
        res = am_payload(
            a.receiver,
            [am_alert(a.labels, {"summary": a.summary, "description": a.res_desc}, a.start, a.end, a.expr)],
            ["alertname"],
        )
        fire_at = a.start + timedelta(seconds=30)
        res_at = a.end + timedelta(seconds=30)
        alert_files.append((f"alertmanager/{fire_at.strftime('%Y%m%dT%H%M%SZ')}-{a.name}-firing.json", fire, fire_at))
        alert_files.append((f"alertmanager/{res_at.strftime('%Y%m%dT%H%M%SZ')}-{a.name}-resolved.json", res, res_at))
    # KubeNodeNotReady for use1-az4: one group whose notifications grow (6 -> 15 -> 24 alerts), then resolve
    nodes = [f"ip-10-40-{rng.randint(128, 191)}-{rng.randint(2, 250)}.ec2.internal" for _ in range(24)]
    node_start = [d9(18, 31, 0) + timedelta(seconds=int(i * 600 / 23) + rng.randint(0, 9)) for i in range(24)]
    node_end = [d10(3, 45, 0) + timedelta(seconds=int(i * 1200 / 23) + rng.randint(0, 9)) for i in range(24)]
    expr_node = 'kube_node_status_condition{condition="Ready",status="true"} == 0'

    def node_alert(i: int, resolved: bool) -> dict:
        labels = {
            "alertname": "KubeNodeNotReady",
            "cluster": "prod-us-east",
            "node": nodes[i],
            "severity": "warning",
            "team": "platform",
            "zone": "use1-az4",
        }
        return am_alert(
            labels,
            {
                "summary": "Kubernetes node is not ready",
                "description": f"{nodes[i]} has been unready for more than 5 minutes",
            },
            node_start[i],
            node_end[i] if resolved else None,
            expr_node,
        )

    for when, count in ((d9(18, 36, 30), 6), (d9(18, 41, 30), 15), (d9(18, 46, 30), 24)):
        p = am_payload(
            "slack-platform",
            [node_alert(i, False) for i in range(count) if node_start[i] <= when],
            ["alertname", "zone"],
        )
        alert_files.append((f"alertmanager/{when.strftime('%Y%m%dT%H%M%SZ')}-KubeNodeNotReady-use1-az4.json", p, when))
    res_when = d10(4, 10, 30)
    p = am_payload("slack-platform", [node_alert(i, True) for i in range(24)], ["alertname", "zone"])
    alert_files.append(
        (f"alertmanager/{res_when.strftime('%Y%m%dT%H%M%SZ')}-KubeNodeNotReady-use1-az4.json", p, res_when)
    )
    alert_files.sort(key=lambda x: x[2])
    for rel, payload, _ in alert_files:
        write_json(bundle / rel, payload)
    # the Alertmanager Slack app mirrors paging/critical alerts into the channel (attachments only)
    for _rel, payload, when in alert_files:
        if when < T_CHANNEL:
            continue
        a0 = payload["alerts"][0]
        n = len(payload["alerts"])
        title = f"[{payload['status'].upper()}:{n}] {a0['labels']['alertname']} ({a0['labels'].get('service', a0['labels'].get('zone', ''))})"
        chat.bot(
            when + timedelta(seconds=rng.randint(2, 8)),
            "alertmanager",
            "",
            attachments=[
                {
                    "id": 1,
                    "color": "E01E5A" if payload["status"] == "firing" else "2EB67D",
                    "fallback": title,
                    "title": title,
                    "title_link": f"{EXT}/#/alerts",
                    "text": f"*Summary:* {a0['annotations']['summary']}\n*Description:* {a0['annotations']['description']}",
                    "mrkdwn_in": ["text"],
                }
            ],
        )

    # ---- PagerDuty v3 webhooks -------------------------------------------------------------------------
    svc_p = pd_ref("service", "PSV1PLT", "api-gateway (prod)")
    svc_o = pd_ref("service", "PSV3ORD", "orders-api (prod)")
    pol_p = pd_ref("escalation_policy", "PEP1PLT", "Platform on-call")
    pol_o = pd_ref("escalation_policy", "PEP3ORD", "Orders on-call")
    team = [pd_ref("team", "PTM1PLT", "Platform")]
    prio = {
        "html_url": f"https://{PD_SUB}.pagerduty.com/account/incident_priorities",
        "id": "PQ1PRI1",
        "self": "https://api.pagerduty.com/priorities/PQ1PRI1",
        "summary": "P1",
        "type": "priority_reference",
    }

    def inc(
        iid: str,
        num: int,
        status: str,
        title: str,
        svc: dict,
        pol: dict,
        assignees: list[dict],
        created: datetime,
        priority=None,
    ) -> dict:
        return {
            "id": iid,
            "type": "incident",
            "self": f"https://api.pagerduty.com/incidents/{iid}",
            "html_url": f"https://{PD_SUB}.pagerduty.com/incidents/{iid}",
            "number": num,
            "status": status,
            "incident_key": h("ik", iid)[:32],
            "created_at": iso_s(created),
            "title": title,
            "service": svc,
            "assignees": assignees,
            "escalation_policy": pol,
            "teams": team,
            "priority": priority,
            "urgency": "high",
            "conference_bridge": None,
            "resolve_reason": None,
        }

    P1, P2 = "Q5RGN0USE1OUTA", "Q5RGN0USE1ORDB"
    t1 = "[FIRING:1] ApiGatewayUpstreamErrors (page)"
    t2 = "[FIRING:1] OrdersApiHighLatency orders-api (page)"
    c2 = datetime(2025, 12, 9, 18, 26, 25, 17000, tzinfo=UTC)
    tom, maria, leo = pd_user("tom", cast), pd_user("maria", cast), pd_user("leo", cast)
    pd_events = [
        pd_event(
            "incident.triggered", T_PD_TRIGGER, svc_p, inc(P1, 5120, "triggered", t1, svc_p, pol_p, [tom], T_PD_TRIGGER)
        ),
        pd_event("incident.triggered", c2, svc_o, inc(P2, 5121, "triggered", t2, svc_o, pol_o, [leo], c2)),
        pd_event(
            "incident.acknowledged", T_PD_ACK, tom, inc(P1, 5120, "acknowledged", t1, svc_p, pol_p, [tom], T_PD_TRIGGER)
        ),
        pd_event(
            "incident.acknowledged",
            datetime(2025, 12, 9, 18, 29, 2, 440000, tzinfo=UTC),
            leo,
            inc(P2, 5121, "acknowledged", t2, svc_o, pol_o, [leo], c2),
        ),
        pd_event(
            "incident.priority_updated",
            datetime(2025, 12, 9, 18, 30, 12, 5000, tzinfo=UTC),
            maria,
            inc(P1, 5120, "acknowledged", t1, svc_p, pol_p, [tom], T_PD_TRIGGER, prio),
        ),
    ]
    notes = [
        (d9(19, 10, 0), "tom", "Cloud provider confirms packet loss in use1-az4. Draining az4."),
        (d9(20, 5, 0), "maria", "Failing stateless services over to usw2; checkout first."),
        (d9(22, 50, 0), "maria", "Checkout on usw2, 98.9% success. Remaining: orders-api read path, search."),
        (d10(1, 48, 0), "maria", "Mitigated: all customer-facing traffic on usw2, errors at baseline."),
        (d10(3, 35, 0), "tom", "Provider reports az4 recovered 03:29. Starting failback."),
        (
            d10(16, 2, 0),
            "leo",
            "Late note for the postmortem: orders-db primary was in use1-az2 throughout; no data loss, no replica promotion needed.",
        ),
    ]
    for i, (at, who, text) in enumerate(notes):
        agent = pd_user(who, cast)
        pd_events.append(
            pd_event(
                "incident.annotated",
                at + timedelta(milliseconds=rng.randint(0, 999)),
                agent,
                {
                    "incident": {
                        "id": P1,
                        "type": "incident_reference",
                        "self": f"https://api.pagerduty.com/incidents/{P1}",
                        "html_url": f"https://{PD_SUB}.pagerduty.com/incidents/{P1}",
                        "summary": t1,
                    },
                    "id": f"PNT{i:02d}USE",
                    "content": text,
                    "trimmed": False,
                    "type": "incident_note",
                },
            )
        )
    pd_events.append(
        pd_event(
            "incident.resolved",
            datetime(2025, 12, 10, 2, 5, 0, 310000, tzinfo=UTC),
            leo,
            inc(P2, 5121, "resolved", t2, svc_o, pol_o, [], c2),
        )
    )
    pd_events.append(
        pd_event(
            "incident.resolved",
            T_PD_RESOLVE,
            maria,
            inc(P1, 5120, "resolved", t1, svc_p, pol_p, [], T_PD_TRIGGER, prio),
        )
    )
    pd_events.sort(key=lambda e: e["event"]["occurred_at"])
    pd_files = []
    for i, ev in enumerate(pd_events, 1):
        rel = f"pagerduty/{i:02d}-{ev['event']['event_type'].split('.')[1]}.json"
        write_json(bundle / rel, ev)
        pd_files.append((rel, ev))
    for _rel, ev in pd_files:
        e = ev["event"]
        at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
        if at < T_CHANNEL or at > T_END_CHATTER or e["event_type"] == "incident.annotated":
            continue
        d = e["data"]
        who = (e["agent"] or {}).get("summary", "")
        verb = e["event_type"].split(".")[1].replace("_", " ")
        chat.bot(
            at + timedelta(seconds=3),
            "pagerduty",
            f"Incident <{d['html_url']}|#{d['number']}> {d['title']} *{verb}* by {who}",
        )

    # ---- Statuspage --------------------------------------------------------------------------------------
    A = ("c0api3v7n5ze", "Public API")
    C = ("c0chk9x2m1qa", "Checkout")
    sp_updates = [
        (
            d9(18, 41, 12),
            "investigating",
            "We are investigating elevated errors and latency affecting the API, dashboard and checkout for customers in the US region.",
            "major_outage",
        ),
        (
            d9(19, 22, 40),
            "identified",
            "A network problem at our cloud provider in one US availability zone is causing errors. We are moving traffic away from the affected zone.",
            "major_outage",
        ),
        (
            d9(20, 16, 5),
            "identified",
            "We are failing services over to our secondary US region. Checkout is being moved first.",
            "partial_outage",
        ),
        (
            d9(21, 12, 30),
            "identified",
            "Checkout failover is in progress. Some requests may still fail or be slow.",
            "partial_outage",
        ),
        (
            d9(22, 7, 50),
            "identified",
            "Most API traffic is now served from our secondary region. Search results may be up to 12 hours old.",
            "partial_outage",
        ),
        (
            d9(23, 2, 15),
            "identified",
            "Checkout is fully served from our secondary region. Remaining services are being moved.",
            "degraded_performance",
        ),
        (d10(0, 1, 40), "identified", "Work continues; error rates are decreasing.", "degraded_performance"),
        (
            d10(1, 55, 20),
            "monitoring",
            "All customer-facing services are operating normally from our secondary region. We are monitoring while the cloud provider recovers.",
            "operational",
        ),
        (
            d10(2, 50, 35),
            "monitoring",
            "Services remain healthy. The cloud provider is still working on the affected zone.",
            "operational",
        ),
        (
            d10(3, 45, 10),
            "monitoring",
            "The cloud provider reports recovery. We are moving traffic back to our primary region.",
            "operational",
        ),
        (
            d10(4, 40, 25),
            "resolved",
            "This incident has been resolved. Between 18:21 and 01:47 UTC customers in the US region saw elevated errors and latency.",
            "operational",
        ),
    ]
    updates = []
    prev = "operational"
    for at, status, body, comp in sp_updates:
        updates.append(
            {
                "at": at + timedelta(milliseconds=rng.randint(0, 999)),
                "status": status,
                "body": body,
                "affected": [(*A, prev, comp), (*C, prev, comp)],
            }
        )
        prev = comp
    sp_files = []
    for i, (u, (_, _, _, comp)) in enumerate(zip(updates, sp_updates, strict=True)):
        rel = f"statuspage/{i + 1:02d}-{u['status']}.json"
        write_json(bundle / rel, status_payload(updates, i, comp))
        sp_files.append(rel)
        chat.bot(
            u["at"] + timedelta(seconds=4),
            "statuspage",
            f"*Elevated errors and latency in US region* — {u['status'].title()}\n{u['body']}",
        )

    # ---- human chatter -----------------------------------------------------------------------------------
    phases = [
        (T_CHANNEL + timedelta(minutes=3), d9(18, 50), TRIAGE, 8.5),
        (d9(18, 50), d9(20, 0), DIAG, 11.5),
        (d9(20, 0), d10(1, 47), MITIG, 10.5),
        (d10(1, 47), d10(4, 35), MONITOR, 4.8),
        (d10(4, 35), T_END_CHATTER, MONITOR, 1.0),
    ]
    recent_parents: list[Msg] = []
    chatter: list[Msg] = []
    active = responders[:]
    for start, end, templates, rate in phases:
        minute = start
        while minute < end:
            count = max(0, int(rng.gauss(rate, rate * 0.35)))
            for _ in range(count):
                at = minute + timedelta(seconds=rng.uniform(0, 59.999))
                if at >= end:
                    continue
                progress = (at - start) / (end - start)
                recent_parents = [p for p in recent_parents if (at - p.at) < timedelta(minutes=25)]
                r = rng.random()
                if r < 0.24 and recent_parents:
                    parent = rng.choice(recent_parents)
                    if parent.at >= at:
                        continue
                    who = rng.choice(active)
                    text = fill(rng, rng.choice(THREAD_REPLIES + templates[:4]), cast, progress)
                    m = chat.say(at, who, text, parent=parent, broadcast=rng.random() < 0.01)
                elif r < 0.27:
                    who = rng.choice(lurkers)
                    m = chat.say(at, who, rng.choice(LURK))
                    recent_parents.append(m)
                    chat.say(
                        at + timedelta(seconds=rng.randint(20, 140)),
                        "maria",
                        fill(rng, rng.choice(IC_REPLIES), cast, progress),
                        parent=m,
                    )
                else:
                    who = rng.choice(active)
                    m = chat.say(at, who, fill(rng, rng.choice(templates), cast, progress))
                    if rng.random() < 0.3:
                        recent_parents.append(m)
                if rng.random() < 0.035:
                    m.obj["edited"] = {
                        "user": m.obj["user"],
                        "ts": slack_ts(at + timedelta(seconds=rng.randint(5, 120), microseconds=1)),
                    }
                if rng.random() < 0.08:
                    names = rng.sample(
                        ["eyes", "+1", "white_check_mark", "pray", "thinking_face", "fire"], rng.randint(1, 2)
                    )
                    m.obj["reactions"] = [
                        {"name": n, "users": [cast[u].uid for u in rng.sample(active, rng.randint(1, 5))], "count": 0}
                        for n in names
                    ]
                    for rc in m.obj["reactions"]:
                        rc["count"] = len(rc["users"])
                chatter.append(m)
            minute += timedelta(minutes=1)

    chat.finalise()

    # ---- write the Slack export -------------------------------------------------------------------------
    days: dict[str, list[dict]] = {}
    where: dict[str, tuple[str, int]] = {}
    for m in chat.msgs:
        day = m.at.strftime("%Y-%m-%d")
        days.setdefault(day, []).append(m.obj)
        where[m.obj["ts"]] = (f"slack/{CHANNEL}/{day}.json", len(days[day]) - 1)
    for day, msgs in days.items():
        write_json(bundle / "slack" / CHANNEL / f"{day}.json", msgs, indent=4)
    channel_meta = [
        {
            "id": CHANNEL_ID,
            "name": CHANNEL,
            "created": int(T_CHANNEL.timestamp()),
            "creator": BOTS["incidentbot"][0],
            "is_archived": False,
            "is_general": False,
            "members": chat.members,
            "topic": {
                "value": "INC-2200 | SEV1 | us-east-1 degradation | IC: @maria | updates in #incident-updates",
                "creator": CORE["maria"][0],
                "last_set": int(T_CHANNEL.timestamp()) + 120,
            },
            "purpose": {
                "value": "Responders only. Customer comms in #incident-updates.",
                "creator": BOTS["incidentbot"][0],
                "last_set": int(T_CHANNEL.timestamp()),
            },
        }
    ]
    write_json(bundle / "slack/channels.json", channel_meta, indent=4)
    for name in ("groups.json", "dms.json", "mpims.json"):
        (bundle / "slack" / name).write_text("[]\n", encoding="utf-8")
    users = []
    for p in cast.values():
        label, off = TZ_INFO[p.tz]
        first, _, last = p.real.partition(" ")
        av = h("avatar", p.uid)[:12]
        img = f"https://avatars.slack-edge.com/2024-03-11/{h('img', p.uid)[:13]}_{av}"
        users.append(
            {
                "id": p.uid,
                "team_id": TEAM,
                "name": p.handle,
                "deleted": False,
                "color": h("color", p.uid)[:6],
                "real_name": p.real,
                "tz": p.tz,
                "tz_label": label,
                "tz_offset": off,
                "profile": {
                    "title": p.title,
                    "phone": "",
                    "skype": "",
                    "real_name": p.real,
                    "real_name_normalized": p.real,
                    "display_name": p.handle,
                    "display_name_normalized": p.handle,
                    "fields": None,
                    "status_text": "",
                    "status_emoji": "",
                    "status_expiration": 0,
                    "avatar_hash": av,
                    "email": f"{p.real.lower().replace(' ', '.')}@brightwave.example",
                    "first_name": first,
                    "last_name": last,
                    "image_24": f"{img}_24.png",
                    "image_72": f"{img}_72.png",
                    "image_192": f"{img}_192.png",
                    "team": TEAM,
                },
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": False,
                "is_app_user": False,
                "updated": 1733900000 + int(h("upd", p.uid)[:5], 16) % 900000,
                "is_email_confirmed": True,
            }
        )
    for bkey, (uid, bid, app, name) in BOTS.items():
        users.append(
            {
                "id": uid,
                "team_id": TEAM,
                "name": name.lower(),
                "deleted": False,
                "color": h("color", uid)[:6],
                "real_name": name,
                "tz": "America/Los_Angeles",
                "tz_label": "Pacific Standard Time",
                "tz_offset": -28800,
                "profile": {
                    "real_name": name,
                    "display_name": "",
                    "avatar_hash": h("bav", bkey)[:12],
                    "api_app_id": app,
                    "always_active": True,
                    "bot_id": bid,
                    "first_name": name,
                    "last_name": "",
                    "team": TEAM,
                },
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": True,
                "is_app_user": False,
                "updated": 1700000000 + int(h("bupd", bkey)[:5], 16) % 900000,
            }
        )
    write_json(bundle / "slack/users.json", users, indent=4)

    # ---- manifest + gold ----------------------------------------------------------------------------------
    (bundle / "incident.yaml").write_text(
        to_yaml(
            {
                "id": INCIDENT,
                "title": "us-east-1 AZ network degradation: regional failover to us-west-2",
                "severity": "SEV1",
                "services": [
                    "api-gateway",
                    "checkout-api",
                    "orders-api",
                    "search-api",
                    "notifications-svc",
                    "auth-service",
                ],
                "visibility": "public",
                "channel": CHANNEL,
            }
        )
        + "\n",
        encoding="utf-8",
    )

    msgs_all = [m.obj for m in chat.msgs]
    by_day = {f"slack/{CHANNEL}/{d}.json": len(v) for d, v in days.items()}
    subtype_counts: dict[str, int] = {}
    for o in msgs_all:
        st = o.get("subtype", "bot" if "bot_id" in o else "human")
        subtype_counts[st] = subtype_counts.get(st, 0) + 1
    replies = sum(1 for o in msgs_all if "thread_ts" in o and o["thread_ts"] != o["ts"])
    parents = sum(1 for o in msgs_all if o.get("reply_count"))
    edited = sum(1 for o in msgs_all if "edited" in o)

    def kpos(name: str) -> dict:
        m = key[name]
        f, i = where[m.obj["ts"]]
        return {
            "name": name,
            "ts": m.obj["ts"],
            "at": ts_iso(m.obj["ts"]),
            "file": f,
            "index": i,
            "text_starts": m.obj["text"][:60],
        }

    fire_file = {
        a.name: next(rel for rel, p, _ in alert_files if rel.endswith(f"{a.name}-firing.json")) for a in alerts
    }
    ack_file = next(
        rel
        for rel, ev in pd_files
        if ev["event"]["event_type"] == "incident.acknowledged" and ev["event"]["data"]["id"] == P1
    )
    res_file = next(
        rel
        for rel, ev in pd_files
        if ev["event"]["event_type"] == "incident.resolved" and ev["event"]["data"]["id"] == P1
    )
    late_note = next(rel for rel, ev in pd_files if "Late note" in json.dumps(ev))

    def mom(at: str, source: str, kind: str, file: str, note: str, **extra: object) -> dict:
        d: dict = {"at": at, "source": source, "kind": kind, "file": file, "note": note}
        d.update(extra)
        return d

    moments = {
        "started": mom(
            iso_us(T_FIRST_SIGNAL),
            "alertmanager",
            "alert_firing",
            fire_file["CrossAZPacketLoss"],
            "CrossAZPacketLoss (warning) for use1-az4 is the first signal; customers report 502s 'since ~18:22'.",
        ),
        "detected": mom(
            iso_us(T_DETECT),
            "alertmanager",
            "alert_firing",
            fire_file["ApiGatewayUpstreamErrors"],
            "first paging alert; PagerDuty #5120 triggered 18:24:05.",
            also_acceptable=[iso_us(T_PD_TRIGGER)],
        ),
        "acknowledged": mom(
            iso_us(T_PD_ACK),
            "pagerduty",
            "acknowledged",
            ack_file,
            "Tom acknowledged #5120; 'ack, looking' in Slack at 18:29:35.",
            also_acceptable=[ts_iso(key["ack"].obj["ts"])],
        ),
        "mitigated": mom(
            ts_iso(key["mitigated"].obj["ts"]),
            "slack",
            "message",
            where[key["mitigated"].obj["ts"]][0],
            "'MITIGATED: all customer-facing traffic is served from usw2' — after UTC midnight, in the second day file.",
            position=f"/{where[key['mitigated'].obj['ts']][1]}",
        ),
        "resolved": mom(
            iso_us(T_PD_RESOLVE),
            "pagerduty",
            "incident_resolved",
            res_file,
            "PagerDuty #5120 resolved by Maria; Slack 'resolved.' at 04:35:10; Statuspage Resolved 04:40:25.",
            also_acceptable=[ts_iso(key["resolved"].obj["ts"])],
        ),
    }

    def secs(a: str, b: str) -> int:
        pa = datetime.fromisoformat(a.replace("Z", "+00:00"))
        pb = datetime.fromisoformat(b.replace("Z", "+00:00"))
        return int((pb - pa).total_seconds())

    st0 = moments["started"]["at"]
    gold = {
        "incident": INCIDENT,
        "bundle": SLUG,
        "generated_by": "scripts/generate_large_sample.py",
        "seed": seed,
        "failure_mode": "cloud dependency: network packet loss in one us-east-1 AZ (use1-az4) for ~7 h; mitigated by regional failover to us-west-2; failback after provider recovery",
        "moments": moments,
        "metrics_s": {
            "time_to_detect": secs(st0, moments["detected"]["at"]),
            "time_to_acknowledge": secs(st0, moments["acknowledged"]["at"]),
            "time_to_mitigate": secs(st0, moments["mitigated"]["at"]),
            "time_to_resolve": secs(st0, moments["resolved"]["at"]),
        },
        "contributing_factors": [
            {
                "category": "dependency",
                "why": "cloud provider packet loss in use1-az4 from ~18:20 to 03:29 UTC",
                "evidence_keys": ["provider", "provider_ok"],
            },
            {
                "category": "recovery",
                "why": "the usw2 failover was manual, untested this quarter and took ~7 h to complete service by service",
                "evidence_keys": ["plan", "blame", "mitigated"],
            },
            {
                "category": "capacity",
                "why": "remaining AZs lacked headroom (InsufficientInstanceCapacity) and retries tripled load on usw2",
                "evidence_keys": ["ai4"],
            },
        ],
        "factor_categories_expected": ["dependency", "recovery"],
        "factor_categories_acceptable": ["capacity", "communication", "alerting_noise"],
        "factor_categories_not_expected": [
            {
                "category": "change",
                "why": "no deploy preceded the incident; traffic-router config changes are the mitigation",
            }
        ],
        "key_messages": [
            kpos(k)
            for k in [
                "declare",
                "ack",
                "ic",
                "first_report",
                "az4",
                "provider",
                "plan",
                "checkout_usw2",
                "midnight",
                "mitigated",
                "ai1",
                "provider_ok",
                "failback",
                "resolved",
                "ai2",
                "ai3",
                "late1",
                "ai4",
                "we_should",
            ]
        ],
        "action_items": [
            {
                "description": "Automate AZ evacuation (cordon + drain + NLB deregistration) behind one command",
                "owner": "Dave Kowalski",
                "owner_slack_id": CORE["dave"][0],
                "due": "2026-01-15",
                "type": "mitigate",
                "key": "ai1",
                "form": "action item: @user ... by DATE",
                "owner_stated": True,
            },
            {
                "description": "Quarterly usw2 failover game day with an owner",
                "owner": "Tom Hughes",
                "owner_slack_id": CORE["tom"][0],
                "type": "process",
                "key": "ai2",
                "form": "action item: @user ...",
                "owner_stated": True,
            },
            {
                "description": "Status page templates for regional incidents",
                "owner": None,
                "type": "process",
                "key": "ai3",
                "form": "follow-up: ...",
                "owner_stated": False,
            },
            {
                "description": "Tested cross-region replica promotion path for orders-db",
                "owner": "Leo Brandt",
                "owner_slack_id": CORE["leo"][0],
                "type": "mitigate",
                "key": "late1",
                "form": "TODO: ...",
                "owner_stated": False,
            },
            {
                "description": "Checkout retries respect a retry budget",
                "owner": "Priya Raman",
                "owner_slack_id": CORE["priya"][0],
                "due": "2026-01-09",
                "type": "prevent",
                "key": "ai4",
                "form": "action item: @user ... by DATE",
                "owner_stated": True,
            },
            {
                "description": "Keep a search snapshot in usw2 at most 1h old",
                "owner": None,
                "type": "mitigate",
                "key": "we_should",
                "form": "we should ...",
                "owner_stated": False,
            },
        ],
        "counts": {
            "slack_messages_total": len(msgs_all),
            "slack_messages_by_file": by_day,
            "slack_by_subtype": dict(sorted(subtype_counts.items())),
            "thread_parents": parents,
            "thread_replies": replies,
            "edited": edited,
            "alertmanager_files": len(alert_files),
            "alertmanager_alert_records": sum(len(p["alerts"]) for _, p, _ in alert_files),
            "alertmanager_unique_alerts": len(
                {(a["fingerprint"], a["startsAt"]) for _, p, _ in alert_files for a in p["alerts"]}
            ),
            "pagerduty_files": len(pd_files),
            "statuspage_files": len(sp_files),
            "statuspage_unique_updates": len(updates),
        },
        "traps": [
            {
                "kind": "crosses_utc_midnight",
                "file": f"slack/{CHANNEL}/",
                "expect": "three day files (2025-12-09, 2025-12-10, 2025-12-11); mitigation is in the second; ordering must be by ts, not by file",
            },
            {
                "kind": "volume",
                "expect": f"{len(msgs_all)} Slack messages: the timeline must be budgeted/map-reduced, not truncated silently",
            },
            {
                "kind": "grouped_alerts_repeat",
                "file": "alertmanager/*KubeNodeNotReady-use1-az4.json",
                "expect": "notifications of one group carry 6, 15 and 24 alerts; the same node alert repeats — dedupe by fingerprint+startsAt (24 unique), then collapse as a storm",
            },
            {
                "kind": "cross_source_duplicate",
                "expect": "every paging alert appears as an Alertmanager webhook, an Alertmanager Slack attachment, and (for two) a PagerDuty trigger",
            },
            {
                "kind": "two_pagerduty_incidents",
                "file": "pagerduty/",
                "expect": "#5120 (api-gateway) and #5121 (orders-api); #5121 resolves at 02:05 — that is not the incident's resolution",
            },
            {"kind": "late_event", "file": late_note, "expect": "PagerDuty note 11.5 h after resolution"},
            {
                "kind": "tombstone_with_replies",
                "file": where[key["tombstone"].obj["ts"]][0],
                "ts": key["tombstone"].obj["ts"],
                "expect": "deleted parent (subtype tombstone, user USLACKBOT) keeps 3 replies",
            },
            {
                "kind": "secret_password_in_url",
                "file": where[key["secret"].obj["ts"]][0],
                "ts": key["secret"].obj["ts"],
                "value_hint": "redis://:w4rm-FAKE-r3dis-pass@cache-usw2.internal",
                "expect": "redacted",
            },
            {
                "kind": "pii_email_phone",
                "file": where[key["pii"].obj["ts"]][0],
                "ts": key["pii"].obj["ts"],
                "value_hint": "k.nakamoto@globex.example, +1 212 555 0187",
                "expect": "redacted",
            },
            {
                "kind": "blame_bait",
                "file": where[key["blame"].obj["ts"]][0],
                "ts": key["blame"].obj["ts"],
                "value_hint": "someone should have tested the usw2 failover",
                "expect": "flagged; the factor is recovery (untested runbook without an owner)",
            },
            {
                "kind": "bot_attachment_only",
                "expect": "Alertmanager Slack posts have empty text and content in attachments",
            },
            {
                "kind": "follow_ups_two_days_later",
                "file": f"slack/{CHANNEL}/2025-12-11.json",
                "expect": "action items stated on 2025-12-11, after resolution; they are action items, not timeline moments",
            },
        ],
        "quarantine": [],
        "unrecognised": [],
    }
    for item in gold["action_items"]:
        m = key[item["key"]]
        item["file"], item["ts"] = where[m.obj["ts"]][0], m.obj["ts"]
    header = (
        "# Gold annotations for the LARGE bundle. GENERATED by scripts/generate_large_sample.py — do not edit by hand.\n"
        "# Times are UTC. metrics_s are whole seconds from 'started'. key_messages[].index is the position in its day file.\n"
    )
    (bundle / "gold.yaml").write_text(header + to_yaml(gold) + "\n", encoding="utf-8")
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "samples")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    bundle = generate(args.out, args.seed)
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    n = sum(len(json.loads(p.read_text())) for p in (bundle / "slack" / CHANNEL).glob("*.json"))
    print(f"wrote {bundle} ({total / 1e6:.2f} MB, {n} Slack messages)")


if __name__ == "__main__":
    main()
