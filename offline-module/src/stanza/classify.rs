//! Which messages addressed to an offline user are stored, dropped or passed on.

use minidom::Element;

use super::ns;

/// What to do with a message that reached a user with no available resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// Store it for delivery at the user's next available presence.
    Store {
        /// The sender asked for a XEP-0022 `offline` event (an `<x xmlns='jabber:x:event'>`
        /// with `<offline/>` and no `<id/>`).
        offline_event: bool,
    },
    /// Drop it silently: no storage, no bounce (`error` and `headline` messages).
    Drop,
    /// Not for offline storage: the server's next handler (the stub, or the 503 bounce)
    /// decides.
    Pass,
}

/// Classifies a message, in this order:
///
/// | message | outcome |
/// |---|---|
/// | not a `<message/>` of `jabber:client` or `jabber:server` (a presence, an iq, ...) | [`Pass`](Classification::Pass) |
/// | `type="error"` | [`Drop`](Classification::Drop) |
/// | `type="headline"` | [`Drop`](Classification::Drop) (RFC 6121 §8.5.2) |
/// | `type="groupchat"` | stored like `chat` if `store_groupchat`, else [`Pass`](Classification::Pass) |
/// | a XEP-0334 `<no-store/>` hint | [`Pass`](Classification::Pass) |
/// | a XEP-0334 `<store/>` hint | stored |
/// | a XEP-0022 `jabber:x:event` with `<id/>` | [`Pass`](Classification::Pass) |
/// | only XEP-0085 chat-state children (delay stamps aside) | [`Pass`](Classification::Pass) |
/// | anything else (`chat`, `normal`, no type; body optional) | stored |
///
/// ```
/// use offline_module::stanza::{Classification, classify};
///
/// let composing: minidom::Element = "<message xmlns='jabber:client' type='chat'>\
///     <composing xmlns='http://jabber.org/protocol/chatstates'/></message>".parse().unwrap();
/// assert_eq!(classify(&composing, false), Classification::Pass);
/// ```
pub fn classify(message: &Element, store_groupchat: bool) -> Classification {
    if !(message.is("message", ns::CLIENT) || message.is("message", ns::SERVER)) {
        return Classification::Pass;
    }
    match message.attr("type") {
        Some("error" | "headline") => return Classification::Drop,
        Some("groupchat") if !store_groupchat => return Classification::Pass,
        _ => {}
    }
    if message.has_child("no-store", ns::HINTS) {
        return Classification::Pass;
    }
    // As MongooseIM reads a message: the last x:event child decides, else chat states alone
    // are not stored. Delay stamps, which storing strips, do not count as content.
    let event = message.children().filter(|c| c.ns() == ns::EVENT).last();
    let offline_event =
        event.is_some_and(|e| e.has_child("offline", ns::EVENT) && !e.has_child("id", ns::EVENT));
    let store = Classification::Store { offline_event };
    if message.has_child("store", ns::HINTS) {
        return store;
    }
    if let Some(event) = event {
        return if event.has_child("id", ns::EVENT) {
            Classification::Pass
        } else {
            store
        };
    }
    let content = |c: &&Element| c.ns() != ns::DELAY && c.ns() != ns::DELAY_LEGACY;
    let has_chat_state = message.children().any(|c| c.ns() == ns::CHATSTATES);
    let has_other = message
        .children()
        .filter(content)
        .any(|c| c.ns() != ns::CHATSTATES);
    if has_chat_state && !has_other {
        return Classification::Pass;
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: Classification = Classification::Store {
        offline_event: false,
    };

    fn message(type_attr: &str, children: &str) -> Element {
        format!("<message xmlns='jabber:client' to='juliet@example.com' {type_attr}>{children}</message>")
            .parse()
            .unwrap()
    }

    /// One row of the decision table: the stanza, `store_groupchat`, the outcome.
    fn row(type_attr: &str, children: &str, store_groupchat: bool, expected: Classification) {
        let stanza = message(type_attr, children);
        assert_eq!(
            classify(&stanza, store_groupchat),
            expected,
            "{}",
            String::from(&stanza)
        );
    }

    #[test]
    fn only_messages_are_stored() {
        for other in [
            "<presence xmlns='jabber:client' type='subscribe'/>",
            "<iq xmlns='jabber:client' type='set' id='1'><query xmlns='jabber:iq:roster'/></iq>",
            "<message xmlns='urn:example:not-a-stanza'><body>hi</body></message>",
        ] {
            let stanza: Element = other.parse().unwrap();
            assert_eq!(classify(&stanza, true), Classification::Pass, "{other}");
        }
        let s2s: Element = "<message xmlns='jabber:server' type='chat'><body>hi</body></message>"
            .parse()
            .unwrap();
        assert_eq!(classify(&s2s, false), STORE);
    }

    #[test]
    fn chat_with_body_is_stored() {
        row("type='chat'", "<body>hi</body>", false, STORE);
    }

    #[test]
    fn normal_and_untyped_messages_are_stored() {
        row("type='normal'", "<body>hi</body>", false, STORE);
        row("", "<body>hi</body>", false, STORE);
        row("type='unknown-type'", "<body>hi</body>", false, STORE);
    }

    #[test]
    fn empty_message_is_stored() {
        row("type='chat'", "", false, STORE);
        row("", "   ", false, STORE);
    }

    #[test]
    fn receipt_only_is_stored() {
        row(
            "type='chat'",
            "<received xmlns='urn:xmpp:receipts' id='m1'/>",
            false,
            STORE,
        );
        row(
            "type='chat'",
            "<request xmlns='urn:xmpp:receipts'/>",
            false,
            STORE,
        );
    }

    #[test]
    fn chat_state_with_body_is_stored() {
        let children = "<active xmlns='http://jabber.org/protocol/chatstates'/><body>hi</body>";
        row("type='chat'", children, false, STORE);
    }

    #[test]
    fn chat_state_alone_is_not_stored() {
        let composing = "<composing xmlns='http://jabber.org/protocol/chatstates'/>";
        row("type='chat'", composing, false, Classification::Pass);
        row(
            "type='chat'",
            &format!(" {composing} "),
            false,
            Classification::Pass,
        );
    }

    #[test]
    fn x_event_with_id_is_not_stored() {
        let event = "<x xmlns='jabber:x:event'><composing/><id>m1</id></x>";
        row("type='chat'", event, false, Classification::Pass);
        row(
            "type='chat'",
            &format!("<body>b</body>{event}"),
            false,
            Classification::Pass,
        );
    }

    #[test]
    fn x_event_offline_request_is_stored_with_an_event() {
        let request = "<body>b</body><x xmlns='jabber:x:event'><offline/><delivered/></x>";
        let expected = Classification::Store {
            offline_event: true,
        };
        row("type='chat'", request, false, expected);
        let without_offline = "<body>b</body><x xmlns='jabber:x:event'><delivered/></x>";
        row("type='chat'", without_offline, false, STORE);
    }

    #[test]
    fn no_store_hint_is_not_stored() {
        let hint = "<body>b</body><no-store xmlns='urn:xmpp:hints'/>";
        row("type='chat'", hint, false, Classification::Pass);
        let both = "<no-store xmlns='urn:xmpp:hints'/><store xmlns='urn:xmpp:hints'/>";
        row("type='chat'", both, false, Classification::Pass);
    }

    #[test]
    fn store_hint_forces_storing() {
        let state = "<composing xmlns='http://jabber.org/protocol/chatstates'/>";
        row(
            "type='chat'",
            &format!("{state}<store xmlns='urn:xmpp:hints'/>"),
            false,
            STORE,
        );
        let event = "<x xmlns='jabber:x:event'><id>m1</id></x><store xmlns='urn:xmpp:hints'/>";
        row("type='chat'", event, false, STORE);
        let offline_request =
            "<x xmlns='jabber:x:event'><offline/></x><store xmlns='urn:xmpp:hints'/>";
        let expected = Classification::Store {
            offline_event: true,
        };
        row("type='chat'", offline_request, false, expected);
    }

    #[test]
    fn error_is_dropped() {
        row(
            "type='error'",
            "<body>b</body>",
            false,
            Classification::Drop,
        );
        let forced = "<body>b</body><store xmlns='urn:xmpp:hints'/>";
        row("type='error'", forced, true, Classification::Drop);
    }

    #[test]
    fn headline_is_dropped() {
        row(
            "type='headline'",
            "<body>news</body>",
            false,
            Classification::Drop,
        );
    }

    #[test]
    fn groupchat_follows_the_option() {
        row(
            "type='groupchat'",
            "<body>all</body>",
            false,
            Classification::Pass,
        );
        row("type='groupchat'", "<body>all</body>", true, STORE);
        let state = "<composing xmlns='http://jabber.org/protocol/chatstates'/>";
        row("type='groupchat'", state, true, Classification::Pass);
    }
}
