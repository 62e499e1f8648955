//! Stanzas as `mod_offline` sees them: which messages to store, the XEP-0203 delay stamp,
//! and the replies sent back to senders.

mod classify;
mod delay;
mod reply;

pub use classify::{Classification, classify};
pub(crate) use delay::{delay_element, format_stamp_seconds, sender_stamp};
pub use reply::{StanzaError, bounce_reply, error_reply, offline_event, user_not_found_reply};

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

/// How deeply a stanza may nest, by default, for the module to store it: the message is level
/// 1, its `<body/>` level 2. XHTML-IM inside a forwarded carbon stays under 20 levels.
pub const DEFAULT_MAX_DEPTH: usize = 48;

/// The highest depth limit that can be configured: the module's recursive work (copies,
/// writing) stays far within a thread's stack at this depth.
pub const MAX_DEPTH_LIMIT: usize = 256;

/// Whether `element` nests at most `limit` levels deep (itself being level 1), found without
/// recursion, so that it is safe on any input.
pub fn depth_within(element: &Element, limit: usize) -> bool {
    let mut pending = vec![(element, 1)];
    while let Some((element, depth)) = pending.pop() {
        if depth > limit {
            return false;
        }
        pending.extend(element.children().map(|child| (child, depth + 1)));
    }
    true
}

/// An element with `element`'s name, namespace and attributes (those XML can carry, when
/// `writable_only`), and no children.
pub(crate) fn shell(element: &Element, writable_only: bool) -> Element {
    let mut shell = Element::builder(element.name(), element.ns()).build();
    for ((namespace, name), value) in element.attrs().iter() {
        if !writable_only || (xml_text(namespace) && xml_text(value)) {
            shell.set_attr(namespace.clone(), name.clone(), value.as_str());
        }
    }
    shell
}

/// A copy of `element` without its prefix declarations (and without the top-level children
/// `drop_child` picks), so that it serialises with generated ones: a parsed stanza may redeclare
/// a prefix in a way `minidom`'s writer rejects (a conflicting or reserved prefix), and the copy
/// declares none. Recursive: call it only on a stanza [`depth_within`] a limit.
pub(crate) fn plain_copy(element: &Element, drop_child: &dyn Fn(&Element) -> bool) -> Element {
    let mut copy = shell(element, false);
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

/// Serialises a plain copy ([`plain_copy`]), or `None` if it holds a name, namespace or text
/// XML cannot carry (which only a stanza built by a server rather than parsed can hold).
/// Writability is checked first: nothing here relies on catching a panic.
pub(crate) fn serialize(plain: &Element) -> Option<String> {
    if !writable(plain) {
        return None;
    }
    let mut out = Vec::new();
    plain.write_to(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Whether a text holds only characters XML 1.0 allows.
pub(crate) fn xml_text(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    })
}

/// Whether `minidom`'s writer writes `element` (a plain copy, declaring no prefixes) without
/// failing: every name an NCName, every namespace, text and attribute value made of
/// characters XML 1.0 allows. Recursive: call it within a depth limit.
fn writable(element: &Element) -> bool {
    NcNameStr::from_str(element.name()).is_ok()
        && xml_text(&element.ns())
        && element
            .attrs()
            .iter()
            .all(|((namespace, _), value)| xml_text(namespace) && xml_text(value))
        && element.nodes().all(|node| match node {
            Node::Element(child) => writable(child),
            Node::Text(text) => xml_text(text),
        })
}

/// A copy of `element` that `minidom`'s writer writes without panicking, or `None` if there is
/// none: `element` nests deeper than `max_depth` (checked without recursion first), or holds a
/// name, namespace or text XML cannot carry. The copy declares no prefixes, so prefixes a
/// parsed stanza redeclares in ways the writer rejects are gone, and the writer makes its own.
///
/// A server writing stanzas it parsed itself can guard its writer with it, as the module does:
///
/// ```
/// use offline_module::minidom::Element;
/// use offline_module::stanza::{DEFAULT_MAX_DEPTH, writable_copy};
///
/// let parsed: Element = "<message xmlns='jabber:client' xmlns:p='urn:p'><composing \
///     xmlns='http://jabber.org/protocol/chatstates' xmlns:tns0='urn:z' p:a='1'/></message>"
///     .parse()?;
/// // String::from(&parsed) would panic: the writer's own `tns0` clashes with the declared one.
/// let copy = writable_copy(&parsed, DEFAULT_MAX_DEPTH).expect("writable");
/// assert!(String::from(&copy).contains("composing"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn writable_copy(element: &Element, max_depth: usize) -> Option<Element> {
    if !depth_within(element, max_depth.min(MAX_DEPTH_LIMIT)) {
        return None;
    }
    let copy = plain_copy(element, &|_| false);
    writable(&copy).then_some(copy)
}
