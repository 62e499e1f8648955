"""One slixmpp client session, driven by a JSON plan on stdin; prints what it saw as JSON.

The plan:
  jid, password, host, port   the account and where the server listens
  tls                         "starttls" (required) or "plain" (STARTTLS refused)
  resource                    the resource to bind (optional)
  presence                    send initial available presence after login (default true)
  priority                    its priority (default 0)
  send                        stanzas to send once logged in, as XML text
  expect                      wait for this many messages (default 0)
  abort_after                 drop the connection at once when this many messages came,
                              answering nothing more (optional)
  disco                       a JID to ask for disco#info (optional)
  echo                        answer every chat message, to its sender's bare JID, with
                              "echo: " and its body (default false)
  timeout                     seconds to wait for everything (default 10)
  linger                      seconds to keep listening after the final ping, for replies
                              that come late (optional, default 0; counted in the timeout)

The result: {"logged_in", "encrypted", "messages": [XML], "disco": [features] or null,
"errors": [text]}. Before leaving, the client pings the server, so that every stanza it sent
was handled when it exits.

Run as a script, it reads the plan on stdin and prints the result. Other Python code (such as
scripts/compare_servers.py) imports it and awaits `run(plan)`, several sessions at once if it
likes, on its own event loop.
"""

import asyncio
import json
import logging
import ssl
import sys

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath


class Client(slixmpp.ClientXMPP):
    def __init__(self, plan):
        jid = plan["jid"]
        if plan.get("resource"):
            jid += "/" + plan["resource"]
        super().__init__(jid, plan["password"])
        self.plan = plan
        self.result = {
            "logged_in": False,
            "encrypted": False,
            "messages": [],
            "disco": None,
            "errors": [],
        }
        self.done = asyncio.Event()
        self.enable_direct_tls = False
        if plan.get("tls", "starttls") == "plain":
            self.enable_starttls = False
            self.enable_plaintext = True
            self.plugin["feature_mechanisms"].unencrypted_plain = True
        else:
            self.enable_starttls = True
            self.enable_plaintext = False
        # The server's certificate is self-signed.
        self.ssl_context = ssl.create_default_context()
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199", {"keepalive": False})
        self.register_handler(
            Callback("every message", MatchXPath("{jabber:client}message"), self.on_message)
        )
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("disconnected", lambda _: self.done.set())

    def on_failed_auth(self, _event):
        self.result["errors"].append("authentication failed")
        self.done.set()

    def on_message(self, message):
        if self.done.is_set():
            return  # stanzas read before the connection was dropped: unseen
        self.result["messages"].append(str(message))
        if self.plan.get("echo") and message["type"] == "chat" and message["body"]:
            self.send_message(mto=message["from"].bare, mbody="echo: " + message["body"], mtype="chat")
        abort_after = self.plan.get("abort_after")
        if abort_after is not None and len(self.result["messages"]) >= abort_after:
            self.abort()
            self.done.set()
            return
        if len(self.result["messages"]) >= self.plan.get("expect", 0):
            self.maybe_finish()

    async def start(self, _event):
        self.result["logged_in"] = True
        self.result["encrypted"] = self.transport.get_extra_info("ssl_object") is not None
        if self.plan.get("presence", True):
            # Written at once, as send_raw writes the stanzas below: send_presence would queue
            # it behind them.
            presence = self.make_presence(ppriority=self.plan.get("priority", 0))
            self.send_raw(str(presence))
        for xml in self.plan.get("send", []):
            self.send_raw(xml)
        if self.plan.get("disco"):
            info = await self.plugin["xep_0030"].get_info(jid=self.plan["disco"])
            self.result["disco"] = sorted(info["disco_info"]["features"])
        # Every stanza sent before was handled once the server answers.
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain)
        if self.plan.get("linger"):
            await asyncio.sleep(self.plan["linger"])
        self.sent = True
        self.maybe_finish()

    def maybe_finish(self):
        if getattr(self, "sent", False) and len(self.result["messages"]) >= self.plan.get(
            "expect", 0
        ):
            self.done.set()


async def run(plan):
    """Runs one session of `plan` on the running event loop; returns its result."""
    client = Client(plan)
    client.connect(plan["host"], plan["port"])
    try:
        await asyncio.wait_for(client.done.wait(), plan.get("timeout", 10))
    except asyncio.TimeoutError:
        client.result["errors"].append("timed out")
    if client.transport is not None and not client.transport.is_closing():
        client.disconnect()
        try:
            await asyncio.wait_for(client.disconnected, 5)
        except asyncio.TimeoutError:
            client.abort()
    # slixmpp cancels its send loop only when the client is collected, which asyncio reports
    # as a task destroyed while pending once several sessions share a loop: end it here.
    sender = getattr(client, "_run_out_filters", None)
    if sender is not None and not sender.done():
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return client.result


async def main():
    plan = json.load(sys.stdin)
    print(json.dumps(await run(plan)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
