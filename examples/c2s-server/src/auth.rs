//! Accounts and SASL PLAIN (RFC 4616) through the `sasl` crate's server side.

use std::collections::BTreeMap;

use offline_module::jid::BareJid;
use sasl::common::Identity;
use sasl::secret;
use sasl::server::mechanisms::Plain;
use sasl::server::{Mechanism, MechanismError, Response, Validator, ValidatorError};

/// The SASL mechanisms offered, in order of preference.
pub(crate) const MECHANISMS: [&str; 1] = ["PLAIN"];

/// The accounts the server knows, by bare JID.
#[derive(Debug, Default)]
pub(crate) struct Accounts(BTreeMap<BareJid, String>);

/// Why a login failed, as a SASL `<failure/>` condition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A mechanism the server does not offer.
    InvalidMechanism,
    /// The initial response cannot be read.
    MalformedRequest,
    /// An authorization identity other than the account itself.
    InvalidAuthzid,
    /// Unknown account or wrong password.
    NotAuthorized,
}

impl Refusal {
    /// The `<failure/>` child naming the condition.
    pub(crate) fn condition(&self) -> &'static str {
        match self {
            Self::InvalidMechanism => "invalid-mechanism",
            Self::MalformedRequest => "malformed-request",
            Self::InvalidAuthzid => "invalid-authzid",
            Self::NotAuthorized => "not-authorized",
        }
    }
}

impl Accounts {
    /// The accounts of `passwords`.
    pub(crate) fn new(passwords: BTreeMap<BareJid, String>) -> Self {
        Self(passwords)
    }

    /// Whether `user` has an account.
    pub(crate) fn exists(&self, user: &BareJid) -> bool {
        self.0.contains_key(user)
    }

    /// Runs `PLAIN` on the client's initial response, for an account of `domain`; returns
    /// the authenticated account.
    pub(crate) fn plain(&self, domain: &str, initial: &[u8]) -> Result<BareJid, Refusal> {
        let check = PlainCheck {
            accounts: self,
            domain,
        };
        let identity = match Plain::new(check).respond(initial) {
            Ok(Response::Success(Identity::Username(user), _)) => user,
            Ok(_) => return Err(Refusal::NotAuthorized),
            Err(MechanismError::ValidatorError(_)) => return Err(Refusal::NotAuthorized),
            Err(_) => return Err(Refusal::MalformedRequest),
        };
        let account = account(&identity, domain).ok_or(Refusal::NotAuthorized)?;
        // `authzid NUL authcid NUL password`: an authzid, if any, must be the account itself.
        let authzid = initial.split(|&b| b == 0).next().unwrap_or_default();
        if !authzid.is_empty() {
            let named = std::str::from_utf8(authzid)
                .ok()
                .and_then(|a| a.parse::<BareJid>().ok());
            if named.as_ref() != Some(&account) {
                return Err(Refusal::InvalidAuthzid);
            }
        }
        Ok(account)
    }
}

/// The account a SASL user name names on `domain`, normalised as JIDs are.
fn account(user: &str, domain: &str) -> Option<BareJid> {
    if user.contains(['@', '/']) {
        return None;
    }
    format!("{user}@{domain}").parse().ok()
}

/// Checks PLAIN passwords against the accounts of one domain.
struct PlainCheck<'a> {
    accounts: &'a Accounts,
    domain: &'a str,
}

impl Validator<secret::Plain> for PlainCheck<'_> {
    fn validate(&self, identity: &Identity, value: &secret::Plain) -> Result<(), ValidatorError> {
        let Identity::Username(user) = identity else {
            return Err(ValidatorError::AuthenticationFailed);
        };
        let expected = account(user, self.domain).and_then(|jid| self.accounts.0.get(&jid));
        match expected {
            Some(password) if same(password.as_bytes(), value.0.as_bytes()) => Ok(()),
            _ => Err(ValidatorError::AuthenticationFailed),
        }
    }
}

/// Compares secrets in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(BTreeMap::from([(
            "alice@localhost".parse().unwrap(),
            "secret".to_owned(),
        )]))
    }

    #[test]
    fn plain_logs_in_with_the_right_password_only() {
        let accounts = accounts();
        let alice: BareJid = "alice@localhost".parse().unwrap();
        assert_eq!(
            accounts.plain("localhost", b"\0alice\0secret"),
            Ok(alice.clone())
        );
        // Localparts are case-folded, as JIDs are.
        assert_eq!(
            accounts.plain("localhost", b"\0Alice\0secret"),
            Ok(alice.clone())
        );
        assert_eq!(
            accounts.plain("localhost", b"alice@localhost\0alice\0secret"),
            Ok(alice)
        );
        for refused in [
            &b"\0alice\0secreT"[..],
            b"\0alice\0secre",
            b"\0bob\0secret",
            b"\0alice@localhost\0secret",
        ] {
            assert_eq!(
                accounts.plain("localhost", refused),
                Err(Refusal::NotAuthorized),
                "{refused:?}"
            );
        }
        assert_eq!(
            accounts.plain("elsewhere", b"\0alice\0secret"),
            Err(Refusal::NotAuthorized)
        );
        assert_eq!(
            accounts.plain("localhost", b"bob@localhost\0alice\0secret"),
            Err(Refusal::InvalidAuthzid)
        );
        assert_eq!(
            accounts.plain("localhost", b"alice"),
            Err(Refusal::MalformedRequest)
        );
    }
}
