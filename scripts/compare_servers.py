"""Sends the same messages to an offline user on several XMPP servers and tabulates what each
server did with them: stored (delivered when the user came online), bounced (an error came
back to the sender), dropped (neither), or both.

Run by scripts/compare-servers, which starts the servers; by hand:

    python scripts/compare_servers.py --server "ejabberd 23.01" 15222 \\
        --server "Prosody 0.12.3" 25222 --server "this project" 35222 --output table.md

Every server must serve the domain `localhost` on 127.0.0.1 over plain TCP with SASL PLAIN,
with the accounts alice (password alice-pw) and bob (bob-pw), and offline storage limited to
3 messages per user where it can be limited. The client is the slixmpp session of the example
server's end-to-end tests (examples/c2s-server/tests/clients/client.py), so the Python that
runs this needs slixmpp.

For each stanza of the set, in its own round: bob logs in (no presence), sends it to
alice@localhost (offline) with a distinct id and listens a while for replies; then alice logs
in with available presence and records what is delivered. One stanza per round keeps the
results apart from the limit of 3; the limit is tried separately at the end (4 chats in a
row). The servers are driven at the same time, each on its own.
"""

import argparse
import asyncio
import json
import logging
import pathlib
import sys
import time
import xml.etree.ElementTree as ET

CLIENTS = pathlib.Path(__file__).resolve().parent.parent / "examples/c2s-server/tests/clients"
sys.path.insert(0, str(CLIENTS))
sys.dont_write_bytecode = True  # no __pycache__ left in the work tree
import client as xmpp_client  # noqa: E402  (examples/c2s-server/tests/clients/client.py)

DOMAIN = "localhost"
ALICE = f"alice@{DOMAIN}"
NOBODY = f"nobody@{DOMAIN}"
QUOTA = 3

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"
NS_EVENT = "jabber:x:event"
NS_EXPIRE = "jabber:x:expire"
SENDER_STAMP = "2001-01-01T00:00:00Z"

# The stanza set: (id, what the row says, the stanza). `{id}` is the stanza's id.
STANZAS = [
    (
        "s1",
        "chat with body",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body></message>",
    ),
    (
        "s2",
        "normal (no type) with body",
        "<message to='{to}' id='{id}'><body>{id}</body></message>",
    ),
    (
        "s3",
        "headline with body",
        "<message to='{to}' id='{id}' type='headline'><body>{id}</body></message>",
    ),
    (
        "s4",
        "type=error",
        "<message to='{to}' id='{id}' type='error'><body>{id}</body>"
        "<error type='cancel'><item-not-found xmlns='" + NS_STANZAS + "'/></error></message>",
    ),
    (
        "s5",
        "groupchat with body",
        "<message to='{to}' id='{id}' type='groupchat'><body>{id}</body></message>",
    ),
    (
        "s6",
        "chat state only (`<composing/>`)",
        "<message to='{to}' id='{id}' type='chat'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    ),
    (
        "s7",
        "body + chat state (`<active/>`)",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    ),
    (
        "s8",
        "XEP-0334 `<no-store/>` with body",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body>"
        "<no-store xmlns='urn:xmpp:hints'/></message>",
    ),
    (
        "s9",
        "XEP-0334 `<store/>` on chat state only",
        "<message to='{to}' id='{id}' type='chat'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
        "<store xmlns='urn:xmpp:hints'/></message>",
    ),
    (
        "s10",
        "XEP-0022 `<offline/>` event request with body",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body>"
        "<x xmlns='" + NS_EVENT + "'><offline/></x></message>",
    ),
    (
        "s11",
        "XEP-0023 expire (3600 s) with body",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body>"
        "<x xmlns='" + NS_EXPIRE + "' seconds='3600'/></message>",
    ),
    (
        "s12",
        f"sender's `<delay stamp='{SENDER_STAMP}'/>` with body",
        "<message to='{to}' id='{id}' type='chat'><body>{id}</body>"
        "<delay xmlns='" + NS_DELAY + "' stamp='" + SENDER_STAMP + "'/></message>",
    ),
    (
        "s13",
        f"chat to a user without an account (`{NOBODY}`)",
        "<message to='" + NOBODY + "' id='{id}' type='chat'><body>{id}</body></message>",
    ),
    (
        "s14",
        "XEP-0022 event notification (`<composing/>` with id), no body",
        "<message to='{to}' id='{id}'><x xmlns='" + NS_EVENT + "'><composing/><id>s1</id></x>"
        "</message>",
    ),
]
QUOTA_IDS = [f"q{n}" for n in range(1, QUOTA + 2)]
QUOTA_STANZA = "<message to='{to}' id='{id}' type='chat'><body>{id}</body></message>"


# --- Sessions ------------------------------------------------------------------------------


async def session(port, user, linger, **plan):
    """One client session of `user` on the server at `port`; returns client.py's result."""
    plan.update(
        jid=f"{user}@{DOMAIN}",
        password=f"{user}-pw",
        host="127.0.0.1",
        port=port,
        tls="plain",
        linger=linger,
        timeout=linger + 20,
    )
    return await xmpp_client.run(plan)


async def alice_logs_in(port, linger):
    """Alice comes online (available presence): what her queue held."""
    return await session(port, "alice", linger, presence=True)


async def drive(port, linger):
    """Runs the stanza set and the quota run against one server; returns what was seen."""
    seen = {"queue_at_start": await alice_logs_in(port, linger), "rounds": {}}
    for sid, _, stanza in STANZAS:
        bob = await session(
            port, "bob", linger, presence=False, send=[stanza.format(to=ALICE, id=sid)]
        )
        alice = await alice_logs_in(port, linger)
        seen["rounds"][sid] = {"bob": bob, "alice": alice}
    # The queue is empty after the last round's login; this one makes sure.
    seen["queue_before_quota"] = await alice_logs_in(port, linger)
    sends = [QUOTA_STANZA.format(to=ALICE, id=q) for q in QUOTA_IDS]
    bob = await session(port, "bob", linger, presence=False, send=sends)
    alice = await alice_logs_in(port, linger)
    seen["rounds"]["quota"] = {"bob": bob, "alice": alice}
    return seen


# --- Reading what came back ----------------------------------------------------------------


def split(tag):
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        ns, name = tag[1:].split("}", 1)
        return ns, name
    return "", tag


def children(element, name, namespaces):
    return [c for c in element if split(c.tag) in {(ns, name) for ns in namespaces}]


def child(element, name, namespaces):
    found = children(element, name, namespaces)
    return found[0] if found else None


# slixmpp writes a stanza's jabber:client children without a namespace.
CLIENT = ("", NS_CLIENT)


def error_of(message):
    """An error reply as {code, type, condition, text}."""
    error = child(message, "error", CLIENT)
    if error is None:
        return {"code": None, "type": None, "condition": "(no error element)", "text": None}
    conditions = [
        name for ns, name in (split(c.tag) for c in error) if ns == NS_STANZAS and name != "text"
    ]
    condition = conditions[0] if conditions else "(no condition)"
    text = child(error, "text", (NS_STANZAS,))
    return {
        "code": error.get("code"),
        "type": error.get("type"),
        "condition": condition,
        "text": text.text if text is not None else None,
    }


def event_for(message):
    """The id a XEP-0022 event names, and its events, or None."""
    x = child(message, "x", (NS_EVENT,))
    if x is None:
        return None
    named = child(x, "id", (NS_EVENT,))
    events = sorted(split(c.tag)[1] for c in x if split(c.tag)[1] != "id")
    return (named.text if named is not None else message.get("id")), events


def delivery_of(message):
    """What a delivered message carries that the table reports."""
    delays = [
        {
            "from": d.get("from"),
            "text": (d.text or "").strip() or None,
            "stamp": d.get("stamp", ""),
        }
        for d in children(message, "delay", (NS_DELAY,))
    ]
    legacy = len(children(message, "x", (NS_LEGACY_DELAY,)))
    expire = child(message, "x", (NS_EXPIRE,))
    return {
        "delays": delays,
        "legacy_delays": legacy,
        "expire": expire.get("seconds") if expire is not None else None,
    }


def outcome(sid, round_seen, sent_xml):
    """What the server did with stanza `sid`: a dict the cell is made of."""
    result = {"delivered": [], "errors": [], "events": [], "other": [], "problems": []}
    for who in ("bob", "alice"):
        problems = round_seen[who]["errors"]
        if problems or not round_seen[who]["logged_in"]:
            result["problems"].append(f"{who}: {', '.join(problems) or 'not logged in'}")
    for text in round_seen["bob"]["messages"]:
        message = ET.fromstring(text)
        event = event_for(message)
        if message.get("type") == "error":
            if message.get("id") == sid:
                result["errors"].append(error_of(message))
        elif event is not None:
            if event[0] == sid:
                result["events"].append(event[1])
        elif message.get("id") == sid:
            result["other"].append(text)
    for text in round_seen["alice"]["messages"]:
        message = ET.fromstring(text)
        if message.get("id") == sid:
            result["delivered"].append(delivery_of(message))
    result["sent_expire"] = NS_EXPIRE in sent_xml
    result["asked_event"] = NS_EVENT in sent_xml and "<offline/>" in sent_xml
    return result


def stray(seen, ids_of_round):
    """Messages alice got in a round that belong to another round (late deliveries)."""
    notes = []
    for round_id, round_seen in seen["rounds"].items():
        for text in round_seen["alice"]["messages"]:
            mid = ET.fromstring(text).get("id")
            if mid not in ids_of_round[round_id]:
                notes.append(f"alice got `{mid}` in round {round_id}")
    for login in ("queue_at_start", "queue_before_quota"):
        for text in seen[login]["messages"]:
            notes.append(f"alice got `{ET.fromstring(text).get('id')}` at {login}")
    return notes


# --- The table ---------------------------------------------------------------------------


def describe_delay(delay):
    parts = [f"from {delay['from']}" if delay["from"] else "no from"]
    if delay["text"]:
        parts.append(f'"{delay["text"]}"')
    if delay["stamp"] == SENDER_STAMP:
        parts.append(f"the sender's stamp {SENDER_STAMP}")
    elif "." in delay["stamp"]:
        parts.append("stamp with fractional seconds")
    else:
        parts.append("stamp in whole seconds")
    return ", ".join(parts)


def describe_error(error):
    parts = ["bounced", error["code"] or "(no code)", error["type"] or "(no type)"]
    parts.append(error["condition"])
    if error["text"]:
        parts.append(f'"{error["text"]}"')
    return " ".join(parts)


def kind(result):
    stored, bounced = bool(result["delivered"]), bool(result["errors"])
    return {(True, True): "both", (True, False): "stored", (False, True): "bounced"}.get(
        (stored, bounced), "dropped"
    )


def cell(result, details=True):
    pieces = []
    if result["delivered"]:
        delivered = result["delivered"][0]
        if not details:
            text = "stored"
        else:
            delays = delivered["delays"]
            inner = (
                f"{len(delays)} delay{'s' if len(delays) != 1 else ''}: "
                + "; ".join(describe_delay(d) for d in delays)
                if delays
                else "no delay"
            )
            if delivered["legacy_delays"]:
                inner += f"; {delivered['legacy_delays']} legacy jabber:x:delay"
            if result["sent_expire"]:
                inner += (
                    f"; expire seconds={delivered['expire']}"
                    if delivered["expire"] is not None
                    else "; expire removed"
                )
            text = f"stored ({inner})"
        if len(result["delivered"]) > 1:
            text += f", delivered {len(result['delivered'])} times"
        pieces.append(text)
    for error in result["errors"]:
        pieces.append(describe_error(error))
    if not pieces:
        pieces.append("dropped")
    for events in result["events"]:
        pieces.append(f"+ XEP-0022 event to the sender ({', '.join(events) or 'empty'})")
    if result["asked_event"] and result["delivered"] and not result["events"]:
        pieces.append("(no XEP-0022 event to the sender)")
    for other in result["other"]:
        pieces.append(f"+ other reply: `{other}`")
    for problem in result["problems"]:
        pieces.append(f"(client problem: {problem})")
    return " ".join(pieces).replace("|", "\\|")


def table(servers, seen_by_server, heading):
    labels = [label for label, _ in servers]
    rows = []
    outcomes = {label: {} for label in labels}
    for sid, what, stanza in STANZAS:
        row = [f"{sid}: {what}"]
        for label in labels:
            result = outcome(sid, seen_by_server[label]["rounds"][sid], stanza)
            outcomes[label][sid] = result
            row.append(cell(result))
        rows.append(row)
    for n, qid in enumerate(QUOTA_IDS, 1):
        row = [f"{qid}: quota run, chat {n} of {len(QUOTA_IDS)} in a row (limit {QUOTA})"]
        for label in labels:
            result = outcome(qid, seen_by_server[label]["rounds"]["quota"], QUOTA_STANZA)
            outcomes[label][qid] = result
            row.append(cell(result, details=False))
        rows.append(row)

    lines = [heading, "", "| stanza | " + " | ".join(labels) + " |"]
    lines.append("|" + " --- |" * (len(labels) + 1))
    lines += ["| " + " | ".join(row) + " |" for row in rows]

    # Mechanical hints for whoever updates the hand-written notes below the table.
    ours, others = labels[-1], labels[:-1]
    lines += ["", f"Rows where the outcome (stored, bounced, dropped) of {ours} differs:", ""]
    for other in others:
        differing = [
            sid for sid in outcomes[ours] if kind(outcomes[ours][sid]) != kind(outcomes[other][sid])
        ]
        lines.append(f"- from {other}: {', '.join(differing) or 'none'}")
    ids_of_round = {sid: {sid} for sid, _, _ in STANZAS} | {"quota": set(QUOTA_IDS)}
    for label in labels:
        for note in stray(seen_by_server[label], ids_of_round):
            lines.append(f"- note, {label}: {note}")
    return "\n".join(lines) + "\n"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        nargs=2,
        action="append",
        metavar=("LABEL", "PORT"),
        required=True,
        help="a server to compare, listening on 127.0.0.1:PORT (the last one is ours)",
    )
    parser.add_argument("--heading", default="### Results", help="the line above the table")
    parser.add_argument(
        "--linger",
        type=float,
        default=2.0,
        help="seconds each session listens after its last ping (default 2)",
    )
    parser.add_argument("--output", help="write the Markdown table here (default: stdout)")
    parser.add_argument("--raw", help="also write every stanza each client saw here, as JSON")
    args = parser.parse_args()
    servers = [(label, int(port)) for label, port in args.server]

    started = time.monotonic()
    seen = await asyncio.gather(*(drive(port, args.linger) for _, port in servers))
    seen_by_server = dict(zip((label for label, _ in servers), seen))
    print(f"compare_servers: driven in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.raw:
        pathlib.Path(args.raw).write_text(json.dumps(seen_by_server, indent=1))
    markdown = table(servers, seen_by_server, args.heading)
    if args.output:
        pathlib.Path(args.output).write_text(markdown)
    else:
        sys.stdout.write(markdown)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
