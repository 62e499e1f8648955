//! Normalised addresses: the key of an offline queue and the domain that purges act on.
//!
//! Normalisation (nodeprep for the localpart, IDNA/nameprep and lower-casing for the domain) is
//! done here, once, by the [`jid`] crate, taken to its fixed point ([`canonical_jid`]): one JID,
//! one queue. Backends store and compare the normalised strings as they are and never
//! normalise anything themselves.

use std::fmt;
use std::str::FromStr;

use jid::{BareJid, DomainPart, Jid};

use crate::{OfflineError, Result};

/// The longest normalised localpart, in bytes (RFC 7622; the `jid` crate enforces it).
pub const MAX_LOCALPART_BYTES: usize = 1023;

/// The most bytes a normalised domain can take. A domain is at most 253 bytes in its ASCII
/// (punycode) form, which the `jid` crate checks; the Unicode form stores keep stays below
/// this bound (the longest, four labels of four-byte characters, is under 900 bytes).
pub const MAX_DOMAIN_BYTES: usize = 1023;

/// Rounds of normalisation [`canonical_jid`] tries before it gives up on a JID.
const NORMALISATION_ROUNDS: usize = 4;

/// The canonical form of a JID: the `jid` crate's normal form, without the trailing dot a
/// domain may carry (RFC 7622 §3.2), normalised again until it no longer changes. A JID whose
/// normal form does not parse again (`ß` becoming `ss` can make a label too long), or that
/// does not settle, is refused with [`InvalidInput`](OfflineError::InvalidInput).
///
/// ```
/// use offline_core::canonical_jid;
/// use offline_core::jid::Jid;
///
/// let dotted = Jid::new("juliet@example.com./balcony")?;
/// assert_eq!(canonical_jid(&dotted)?.as_str(), "juliet@example.com/balcony");
/// let shouted = Jid::new("Juliet@Example.COM./Balcony")?;
/// assert_eq!(canonical_jid(&shouted)?.as_str(), "juliet@example.com/Balcony");
/// let sigma = Jid::new("kelvin@x\u{3f9}.example")?; // normalises to xΣ, then to xσ
/// assert_eq!(canonical_jid(&sigma)?.as_str(), "kelvin@xσ.example");
/// let long = Jid::new(&format!("romeo@{}.example", "ß".repeat(40)))?;
/// assert!(canonical_jid(&long).is_err()); // its normal form has an 80-byte label
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn canonical_jid(jid: &Jid) -> Result<Jid> {
    let mut current = jid.clone();
    for _ in 0..NORMALISATION_ROUNDS {
        let text = without_trailing_dot(current.as_str());
        let next = Jid::new(&text).map_err(|e| OfflineError::InvalidInput {
            reason: format!("`{jid}` normalises to `{text}`, which is not a valid JID: {e}"),
            source: Some(Box::new(e)),
        })?;
        let next = with_canonical_ip(next);
        if next.as_str() == current.as_str() {
            return Ok(next);
        }
        current = next;
    }
    Err(OfflineError::invalid_input(format!(
        "`{jid}` does not settle to one normal form"
    )))
}

/// A JID's text with one trailing dot dropped from its domain (RFC 7622 §3.2). Works on the
/// text: the `jid` crate's accessors disagree with it about where the resource starts when a
/// dotted domain is already in normal form.
fn without_trailing_dot(text: &str) -> String {
    let (bare, resource) = match text.split_once('/') {
        Some((bare, resource)) => (bare, Some(resource)),
        None => (text, None),
    };
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    match resource {
        Some(resource) => format!("{bare}/{resource}"),
        None => bare.to_owned(),
    }
}

/// The JID with an IPv6 literal domain written one way (`[::1]`, not `[0:0::1]`), which the
/// `jid` crate leaves as written.
fn with_canonical_ip(jid: Jid) -> Jid {
    let domain = jid.domain();
    let Some(address) = domain
        .as_str()
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .and_then(|d| d.parse::<std::net::Ipv6Addr>().ok())
    else {
        return jid;
    };
    let canonical = format!("[{address}]");
    if canonical == domain.as_str() {
        return jid;
    }
    let mut text = match jid.node() {
        Some(node) => format!("{}@{canonical}", node.as_str()),
        None => canonical,
    };
    if let Some(resource) = jid.resource() {
        text = format!("{text}/{}", resource.as_str());
    }
    Jid::new(&text).unwrap_or(jid)
}

/// The owner of an offline queue: a bare JID with a localpart, in canonical form
/// ([`canonical_jid`]).
///
/// JIDs that differ only in case, in anything else stringprep folds, in a domain's trailing
/// dot, or in their resource give the same key, so they share one queue; the key's string
/// form parses back to the same key. Keys order by `(server, user)`, byte-wise.
///
/// ```
/// use offline_core::UserKey;
///
/// let key: UserKey = "Alice@Example.COM/phone".parse()?;
/// assert_eq!(key.server(), "example.com");
/// assert_eq!(key.user(), "alice");
/// assert_eq!(key.to_string(), "alice@example.com");
/// assert!("example.com".parse::<UserKey>().is_err()); // a domain owns no queue
/// # Ok::<(), offline_core::OfflineError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey {
    // Field order matters: the derived `Ord` sorts by server first.
    server: String,
    user: String,
}

impl UserKey {
    /// The key of a bare JID's queue; an error if the JID has no localpart or no canonical
    /// form.
    pub fn new(jid: &BareJid) -> Result<Self> {
        let jid = canonical_jid(&Jid::from(jid.clone()))?;
        let user = jid.node().ok_or_else(|| {
            OfflineError::invalid_input(format!(
                "JID `{jid}` has no localpart and cannot own an offline queue"
            ))
        })?;
        Ok(Self {
            server: jid.domain().as_str().to_owned(),
            user: user.as_str().to_owned(),
        })
    }

    /// Rebuilds a key from parts that were already normalised: for backends reading back keys
    /// they stored from [`server`](Self::server) and [`user`](Self::user). Nothing is checked.
    pub fn from_normalized(server: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            user: user.into(),
        }
    }

    /// The normalised domain part.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The normalised localpart.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain this user belongs to.
    pub fn domain(&self) -> Domain {
        Domain(self.server.clone())
    }

    /// Whether this user belongs to `domain`.
    pub fn is_in(&self, domain: &Domain) -> bool {
        self.server == domain.0
    }
}

impl FromStr for UserKey {
    type Err = OfflineError;

    /// Parses a bare or full JID; a resource is ignored, as a message to a full JID whose
    /// resource is gone is stored for the bare JID.
    fn from_str(s: &str) -> Result<Self> {
        let jid = Jid::new(s).map_err(|e| invalid_jid(s, e))?;
        Self::new(&jid.into_bare())
    }
}

impl TryFrom<&BareJid> for UserKey {
    type Error = OfflineError;

    fn try_from(jid: &BareJid) -> Result<Self> {
        Self::new(jid)
    }
}

impl TryFrom<&Jid> for UserKey {
    type Error = OfflineError;

    fn try_from(jid: &Jid) -> Result<Self> {
        Self::new(&jid.to_bare())
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.server)
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserKey({self})")
    }
}

/// A normalised XMPP domain (a host), the scope of purges and of `remove_domain`.
///
/// ```
/// use offline_core::Domain;
///
/// let domain: Domain = "Example.COM".parse()?;
/// assert_eq!(domain.as_str(), "example.com");
/// # Ok::<(), offline_core::OfflineError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    /// Normalises a domain name as [`canonical_jid`] does; an error if it is not a valid JID
    /// domain or has no canonical form.
    pub fn new(domain: &str) -> Result<Self> {
        let part = DomainPart::new(domain).map_err(|e| invalid_jid(domain, e))?;
        let canonical = canonical_jid(&Jid::from(BareJid::from_parts(None, &part)))?;
        Ok(Self(canonical.domain().as_str().to_owned()))
    }

    /// Rebuilds a domain that was already normalised (read back from storage). Nothing is
    /// checked.
    pub fn from_normalized(domain: impl Into<String>) -> Self {
        Self(domain.into())
    }

    /// The normalised domain name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = OfflineError;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

fn invalid_jid(input: &str, error: jid::Error) -> OfflineError {
    OfflineError::InvalidInput {
        reason: format!("`{input}` is not a valid JID: {error}"),
        source: Some(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_variants_share_one_key() {
        let a: UserKey = "Alice@EXAMPLE.com".parse().unwrap();
        let b: UserKey = "alice@example.com/Resource".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.server(), "example.com");
        assert_eq!(a.user(), "alice");
    }

    #[test]
    fn jid_without_localpart_is_invalid_input() {
        let err = "example.com".parse::<UserKey>().unwrap_err();
        assert!(matches!(err, OfflineError::InvalidInput { .. }), "{err:?}");
        assert!(err.to_string().contains("no localpart"), "{err}");
    }

    #[test]
    fn malformed_jids_are_invalid_input() {
        for bad in [
            "",
            "@example.com",
            "a@b@example.com",
            "alice@",
            "alice@example.com/",
        ] {
            let err = bad.parse::<UserKey>().unwrap_err();
            assert!(
                matches!(
                    err,
                    OfflineError::InvalidInput {
                        source: Some(_),
                        ..
                    }
                ),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn keys_order_by_server_then_user() {
        let mut keys: Vec<UserKey> = ["b@a.example", "a@b.example", "a@a.example"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a@a.example", "b@a.example", "a@b.example"]);
    }

    #[test]
    fn domain_is_normalised_and_validated() {
        assert_eq!(
            Domain::new("Sub.Example.COM").unwrap().as_str(),
            "sub.example.com"
        );
        assert!(matches!(
            Domain::new("exa mple.com"),
            Err(OfflineError::InvalidInput { .. })
        ));
        assert!(Domain::new("").is_err());
    }

    #[test]
    fn user_belongs_only_to_its_own_domain() {
        let key: UserKey = "alice@example.com".parse().unwrap();
        assert!(key.is_in(&Domain::new("example.com").unwrap()));
        assert!(!key.is_in(&Domain::new("example.com.evil").unwrap()));
        assert!(!key.is_in(&Domain::new("sub.example.com").unwrap()));
    }

    #[test]
    fn keys_and_domains_show_their_normal_form() {
        let key: UserKey = "Alice@Example.COM/r".parse().unwrap();
        assert_eq!(format!("{key:?}"), "UserKey(alice@example.com)");
        let domain = key.domain();
        assert_eq!(format!("{domain:?}"), "Domain(example.com)");
        assert_eq!(domain.as_ref(), "example.com");
    }

    #[test]
    fn the_longest_domains_stay_within_the_documented_bound() {
        // Four labels of as many four-byte characters as their punycode form allows.
        let label = |n: usize| "𠀀".repeat(n);
        let mut labels: Vec<String> = Vec::new();
        for _ in 0..4 {
            let longest = (1..64)
                .filter(|&n| {
                    let mut candidate = labels.clone();
                    candidate.push(label(n));
                    Domain::new(&candidate.join(".")).is_ok()
                })
                .max()
                .unwrap();
            labels.push(label(longest));
        }
        let domain = Domain::new(&labels.join(".")).unwrap();
        assert!(domain.as_str().len() > 253, "{}", domain.as_str().len());
        assert!(domain.as_str().len() <= MAX_DOMAIN_BYTES);
        let user = UserKey::new(&format!("{}@{domain}", "ä".repeat(511)).parse().unwrap()).unwrap();
        assert!(user.user().len() <= MAX_LOCALPART_BYTES);
    }
}
