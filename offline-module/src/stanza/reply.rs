//! Replies to the sender of a message that reached an offline user.

use jid::Jid;
use minidom::Element;
use minidom::rxml::xml_ncname;

use minidom::rxml::NcNameStr;

use super::{MAX_DEPTH_LIMIT, ns, set_attr, shell, writable_copy, xml_text};

/// A stanza error as MongooseIM writes it: legacy `code`, `type`, the defined condition and a
/// human-readable text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StanzaError {
    /// The legacy error code (XEP-0086).
    pub code: &'static str,
    /// The error type: `cancel`, `wait`, `modify`, ...
    pub kind: &'static str,
    /// The defined condition, an element in `urn:ietf:params:xml:ns:xmpp-stanzas`.
    pub condition: &'static str,
    /// The `<text/>` of the error.
    pub text: &'static str,
}

impl StanzaError {
    /// The recipient's queue is full (MongooseIM's text, word for word).
    pub const QUEUE_FULL: Self = Self {
        code: "500",
        kind: "wait",
        condition: "resource-constraint",
        text: "Your contact offline message queue is full. The message has been discarded.",
    };

    /// The store failed; the message was not stored.
    pub const STORE_FAILED: Self = Self {
        code: "500",
        kind: "wait",
        condition: "internal-server-error",
        text: "The offline message store failed. The message has been discarded.",
    };

    /// The message cannot be written as XML.
    pub const MALFORMED: Self = Self {
        code: "400",
        kind: "modify",
        condition: "bad-request",
        text: "The message cannot be stored offline. The message has been discarded.",
    };

    /// The message nests more deeply than the module's limit (`max_stanza_depth`).
    pub const TOO_DEEP: Self = Self {
        code: "406",
        kind: "modify",
        condition: "not-acceptable",
        text: "The message is nested too deeply to be stored offline. The message has been \
               discarded.",
    };

    /// The sender's or the recipient's address has no stable normal form, so the message
    /// could not be delivered as addressed.
    pub const JID_MALFORMED: Self = Self {
        code: "400",
        kind: "modify",
        condition: "jid-malformed",
        text: "An address of the message has no stable normal form. The message has been \
               discarded.",
    };

    /// The message is larger than a store accepts.
    pub const TOO_LARGE: Self = Self {
        code: "406",
        kind: "modify",
        condition: "not-acceptable",
        text: "The message is too large to be stored offline. The message has been discarded.",
    };

    /// Nothing stored the message for the offline recipient.
    pub const BOUNCE: Self = Self {
        code: "503",
        kind: "cancel",
        condition: "service-unavailable",
        text: "Bounce offline message",
    };

    /// The recipient does not exist.
    pub const USER_NOT_FOUND: Self = Self {
        code: "503",
        kind: "cancel",
        condition: "service-unavailable",
        text: "User not found",
    };

    /// `<error code='..' type='..'><condition xmlns='..stanzas'/><text xmlns='..stanzas'>..</text></error>`
    /// in the stanza namespace `namespace` (`jabber:client`, `jabber:server`, ...).
    pub fn to_element(&self, namespace: &str) -> Element {
        let mut error = Element::builder("error", namespace)
            .append(Element::bare(self.condition, ns::STANZAS))
            .append(
                Element::builder("text", ns::STANZAS)
                    .append(self.text)
                    .build(),
            )
            .build();
        set_attr(&mut error, xml_ncname!("code"), self.code);
        set_attr(&mut error, xml_ncname!("type"), self.kind);
        error
    }
}

/// The error reply to a message routed `from` → `to`: the original stanza with `from` and `to`
/// swapped, `type="error"`, the error first and the original children kept.
///
/// The reply is always writable: the children are copied without their prefix declarations
/// (some parsed stanzas redeclare prefixes in ways `minidom`'s writer rejects), and are left
/// out when they nest deeper than [`MAX_DEPTH_LIMIT`](super::MAX_DEPTH_LIMIT) or hold text XML
/// cannot carry; attributes XML cannot carry are left out too.
pub fn error_reply(from: &Jid, to: &Jid, original: &Element, error: &StanzaError) -> Element {
    let mut reply = reply_head(from, to, original);
    set_attr(&mut reply, xml_ncname!("type"), "error");
    reply.append_child(error.to_element(&reply.ns()));
    if let Some(copy) = writable_copy(original, MAX_DEPTH_LIMIT) {
        for node in copy.nodes() {
            reply.append_node(node.clone());
        }
    }
    reply
}

/// The 503 `service-unavailable` "Bounce offline message" reply a server sends when no handler
/// stored a message for an offline user; [`Instrumentation::bounce`](crate::Instrumentation::bounce)
/// builds it and counts it too.
pub fn bounce_reply(from: &Jid, to: &Jid, message: &Element) -> Element {
    error_reply(from, to, message, &StanzaError::BOUNCE)
}

/// The 503 `service-unavailable` "User not found" reply to a message for a user who does not
/// exist.
pub fn user_not_found_reply(from: &Jid, to: &Jid, message: &Element) -> Element {
    error_reply(from, to, message, &StanzaError::USER_NOT_FOUND)
}

/// The XEP-0022 `offline` event for a stored message, from its recipient to its sender:
/// the message's attributes (`from`/`to` swapped) with one child,
/// `<x xmlns='jabber:x:event'><id>{message id}</id><offline/></x>`.
pub fn offline_event(from: &Jid, to: &Jid, message: &Element) -> Element {
    let id = match message.attr("id") {
        Some(id) if !id.is_empty() && xml_text(id) => {
            Element::builder("id", ns::EVENT).append(id).build()
        }
        _ => Element::bare("id", ns::EVENT),
    };
    let event = Element::builder("x", ns::EVENT)
        .append(id)
        .append(Element::bare("offline", ns::EVENT))
        .build();
    let mut reply = reply_head(from, to, message);
    reply.append_child(event);
    reply
}

/// A childless copy of a stanza routed `from` → `to`, addressed back: `from` and `to` swapped,
/// every other attribute XML can carry kept. A stanza whose own name or namespace XML cannot
/// carry (a server built it so) is answered as a `jabber:client` message.
fn reply_head(from: &Jid, to: &Jid, original: &Element) -> Element {
    let mut reply = if NcNameStr::from_str(original.name()).is_ok() && xml_text(&original.ns()) {
        shell(original, true)
    } else {
        Element::bare("message", ns::CLIENT)
    };
    set_attr(&mut reply, xml_ncname!("from"), to.as_str());
    set_attr(&mut reply, xml_ncname!("to"), from.as_str());
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jids() -> (Jid, Jid) {
        (
            Jid::new("romeo@example.net/orchard").unwrap(),
            Jid::new("juliet@example.com").unwrap(),
        )
    }

    fn message(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn queue_full_reply_is_exact() {
        let (romeo, juliet) = jids();
        let original = message(
            "<message xmlns='jabber:client' from='romeo@example.net/orchard' \
             to='juliet@example.com' type='chat' id='m1'><body>hi</body>\
             <thread>t1</thread></message>",
        );
        let reply = error_reply(&romeo, &juliet, &original, &StanzaError::QUEUE_FULL);
        let expected = message(
            "<message xmlns='jabber:client' from='juliet@example.com' \
             to='romeo@example.net/orchard' type='error' id='m1'>\
             <error code='500' type='wait'>\
             <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Your contact offline message \
             queue is full. The message has been discarded.</text></error>\
             <body>hi</body><thread>t1</thread></message>",
        );
        assert_eq!(reply, expected, "{}", String::from(&reply));
    }

    #[test]
    fn bounce_and_user_not_found_are_503_cancel() {
        let (romeo, juliet) = jids();
        let original =
            message("<message xmlns='jabber:client' type='chat'><body>hi</body></message>");
        let bounce = bounce_reply(&romeo, &juliet, &original);
        assert_eq!(
            String::from(&bounce),
            "<message xmlns='jabber:client' from='juliet@example.com' \
             to='romeo@example.net/orchard' type='error'><error code='503' type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Bounce offline message</text>\
             </error><body>hi</body></message>"
        );
        let missing = user_not_found_reply(&romeo, &juliet, &original);
        let text = missing
            .get_child("error", ns::CLIENT)
            .unwrap()
            .get_child("text", ns::STANZAS);
        assert_eq!(text.unwrap().text(), "User not found");
    }

    #[test]
    fn offline_event_names_the_message_id() {
        let (romeo, juliet) = jids();
        let original = message(
            "<message xmlns='jabber:client' type='chat' id='m7'><body>hi</body>\
             <x xmlns='jabber:x:event'><offline/></x></message>",
        );
        assert_eq!(
            String::from(&offline_event(&romeo, &juliet, &original)),
            "<message xmlns='jabber:client' from='juliet@example.com' id='m7' \
             to='romeo@example.net/orchard' type='chat'><x xmlns='jabber:x:event'>\
             <id>m7</id><offline/></x></message>"
        );
        let anonymous = message("<message xmlns='jabber:client'><body>hi</body></message>");
        let event = offline_event(&romeo, &juliet, &anonymous);
        let x = event.get_child("x", ns::EVENT).unwrap();
        assert_eq!(
            String::from(x),
            "<x xmlns='jabber:x:event'><id/><offline/></x>"
        );
    }
}
