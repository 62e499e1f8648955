//! Stanzas as `mod_offline` sees them: which messages to store, the XEP-0203 delay stamp,
//! and the replies sent back to senders.

mod classify;
mod delay;
mod reply;

pub use classify::{Classification, classify};
pub(crate) use delay::{delay_element, format_stamp_seconds, sender_stamp};
pub use reply::{StanzaError, bounce_reply, error_reply, offline_event, user_not_found_reply};

use minidom::Element;
use minidom::rxml::{Namespace, NcNameStr};

/// Namespaces the module reads or writes.
pub mod ns {
    /// Client stanzas; the default namespace of a stored packet.
    pub const CLIENT: &str = "jabber:client";
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
