//! Stanzas as `mod_offline` sees them: which messages to store, the XEP-0203 delay stamp,
//! and the replies sent back to senders.

mod classify;
mod delay;
mod reply;

pub use classify::{Classification, classify};
pub(crate) use delay::{delay_element, format_stamp_seconds, sender_stamp};
pub use reply::{StanzaError, bounce_reply, error_reply, offline_event, user_not_found_reply};

use std::panic::{AssertUnwindSafe, catch_unwind};

use minidom::rxml::{Namespace, NcNameStr};
use minidom::{Element, Node};

/// Namespaces the module reads or writes.
pub mod ns {
    /// Client stanzas; the default namespace of a stored packet.
    pub const CLIENT: &str = "jabber:client";
    /// Server-to-server stanzas.
    pub const SERVER: &str = "jabber:server";
    /// Stanza error conditions (RFC 6120).
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// XEP-0203 delayed delivery.
    pub const DELAY: &str = "urn:xmpp:delay";
    /// XEP-0091 legacy delayed delivery.
    pub const DELAY_LEGACY: &str = "jabber:x:delay";
    /// XEP-0022 message events.
    pub const EVENT: &str = "jabber:x:event";
    /// XEP-0023 message expiration.
    pub const EXPIRE: &str = "jabber:x:expire";
    /// XEP-0085 chat state notifications.
    pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
    /// XEP-0334 message processing hints.
    pub const HINTS: &str = "urn:xmpp:hints";
    /// XEP-0359 stanza ids (`origin-id`).
    pub const SID: &str = "urn:xmpp:sid:0";
}

/// The service discovery feature of offline storage.
pub const FEATURE_MSGOFFLINE: &str = "msgoffline";

/// Sets an unqualified attribute.
pub(crate) fn set_attr(element: &mut Element, name: &NcNameStr, value: &str) {
    element.set_attr(Namespace::NONE, name.to_owned(), value);
}

/// Parses a stored packet; elements without a namespace are taken as `jabber:client`, as
/// packets stored by other servers may have been written without one.
pub fn parse_packet(xml: &str) -> Result<Element, minidom::Error> {
    Element::from_reader_with_prefixes(xml.as_bytes(), String::from(ns::CLIENT))
}

/// An element with `element`'s name, namespace and attributes, and no children.
pub(crate) fn shell(element: &Element) -> Element {
    let mut shell = Element::builder(element.name(), element.ns()).build();
    for ((namespace, name), value) in element.attrs().iter() {
        shell.set_attr(namespace.clone(), name.clone(), value.as_str());
    }
    shell
}

/// A copy of `element` without its prefix declarations (and without the top-level children
/// `drop_child` picks), so that it serialises with generated ones: a parsed stanza may redeclare
/// a prefix in a way `minidom`'s writer rejects.
pub(crate) fn plain_copy(element: &Element, drop_child: &dyn Fn(&Element) -> bool) -> Element {
    let mut copy = shell(element);
    for node in element.nodes() {
        match node {
            Node::Element(child) if drop_child(child) => {}
            Node::Element(child) => {
                copy.append_child(plain_copy(child, &|_| false));
            }
            Node::Text(text) => copy.append_text(text.as_str()),
        }
    }
    copy
}

/// Serialises a stanza, or `None` if it cannot be written as XML (text with characters XML
/// forbids, which only a stanza built by a server rather than parsed can hold).
pub(crate) fn serialize(element: &Element) -> Option<String> {
    if !writable(element) {
        return None;
    }
    let mut out = Vec::new();
    // `minidom`'s writer panics rather than failing on some inputs; never let that take the
    // server down.
    let written = catch_unwind(AssertUnwindSafe(|| element.write_to(&mut out)));
    match written {
        Ok(Ok(())) => String::from_utf8(out).ok(),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Whether every text and attribute value holds only characters XML 1.0 allows.
fn writable(element: &Element) -> bool {
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    };
    element
        .attrs()
        .iter()
        .all(|(_, value)| value.chars().all(xml_char))
        && element.nodes().all(|node| match node {
            Node::Element(child) => writable(child),
            Node::Text(text) => text.chars().all(xml_char),
        })
}
