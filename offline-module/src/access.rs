//! MongooseIM's access classes (`[acl]`) and access rules (`[access]`), evaluated for the
//! recipient of an offline message to find their quota.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use jid::{DomainPart, NodePart};
use regex::Regex;
use serde::Deserialize;

use offline_core::{Quota, UserKey};

/// The `[acl]` and `[access]` sections.
///
/// ```
/// use offline_module::AccessConfig;
/// use offline_module::offline_core::{Quota, UserKey};
///
/// let access: AccessConfig = toml::from_str(r#"
///     [acl]
///     admin = [{user = "alice"}]
///     [access]
///     max_user_offline_messages = [
///       {acl = "admin", value = 5000},
///       {acl = "all", value = 100},
///     ]
/// "#)?;
/// let alice: UserKey = "alice@example.com".parse()?;
/// let bob: UserKey = "bob@example.com".parse()?;
/// assert_eq!(access.quota("max_user_offline_messages", &alice), Quota::messages(5000));
/// assert_eq!(access.quota("max_user_offline_messages", &bob), Quota::messages(100));
/// assert_eq!(access.quota("undefined_rule", &bob), Quota::UNLIMITED);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AccessConfig {
    /// Access classes by name; a user is in a class if any of its patterns matches.
    #[serde(default)]
    pub acl: BTreeMap<String, Vec<AclPattern>>,
    /// Access rules by name: clauses tried in order, the first matching one wins.
    #[serde(default)]
    pub access: BTreeMap<String, Vec<AccessClause>>,
}

/// One clause of an access rule: `{acl = "admin", value = 5000}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClause {
    /// The access class to match; `all` matches everyone, `none` no one, an undefined class
    /// no one.
    pub acl: String,
    /// The rule's value when this clause matches.
    pub value: AccessValue,
}

/// The value of an access rule: a number, or a word such as `allow` or `infinity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessValue {
    /// An integer, such as a message limit.
    Integer(i64),
    /// A word.
    Text(String),
}

impl<'de> Deserialize<'de> for AccessValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;

        impl serde::de::Visitor<'_> for Value {
            type Value = AccessValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "an integer (such as a message limit) or a string (such as \"infinity\" or \
                     \"allow\")",
                )
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<AccessValue, E> {
                Ok(AccessValue::Integer(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<AccessValue, E> {
                i64::try_from(value)
                    .map(AccessValue::Integer)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<AccessValue, E> {
                Ok(AccessValue::Text(value.to_owned()))
            }
        }

        deserializer.deserialize_any(Value)
    }
}

/// Which domains a pattern covers (`match`); MongooseIM's default is `current_domain`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DomainMatch {
    /// Users of the domain being served.
    #[default]
    CurrentDomain,
    /// Users of any domain this server hosts.
    AnyHostedDomain,
    /// Everyone.
    All,
    /// No one.
    None,
}

impl TryFrom<String> for DomainMatch {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "current_domain" => Ok(Self::CurrentDomain),
            "any_hosted_domain" => Ok(Self::AnyHostedDomain),
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown match `{other}`, expected one of `all`, `current_domain`, \
                 `any_hosted_domain`, `none`"
            )),
        }
    }
}

/// One pattern of an access class: every condition given must hold.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawPattern")]
pub struct AclPattern {
    domains: DomainMatch,
    user: Option<String>,
    server: Option<String>,
    resource: Option<String>,
    user_regexp: Option<Regex>,
    server_regexp: Option<Regex>,
    resource_regexp: Option<Regex>,
    user_glob: Option<GlobMatcher>,
    server_glob: Option<GlobMatcher>,
    resource_glob: Option<GlobMatcher>,
}

/// A pattern as written in TOML, before its names are normalised and its expressions compiled.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    #[serde(rename = "match", default)]
    domains: DomainMatch,
    user: Option<String>,
    server: Option<String>,
    resource: Option<String>,
    user_regexp: Option<String>,
    server_regexp: Option<String>,
    resource_regexp: Option<String>,
    user_glob: Option<String>,
    server_glob: Option<String>,
    resource_glob: Option<String>,
}

impl TryFrom<RawPattern> for AclPattern {
    type Error = String;

    fn try_from(raw: RawPattern) -> Result<Self, String> {
        let regex = |key: &str, pattern: Option<String>| {
            pattern
                .map(|p| {
                    Regex::new(&p).map_err(|e| format!("{key}: invalid regular expression: {e}"))
                })
                .transpose()
        };
        let glob = |key: &str, pattern: Option<String>| {
            pattern
                .map(|p| {
                    Glob::new(&p)
                        .map(|g| g.compile_matcher())
                        .map_err(|e| format!("{key}: invalid glob pattern: {e}"))
                })
                .transpose()
        };
        let user = raw
            .user
            .map(|u| match NodePart::new(&u) {
                Ok(user) => Ok(user.to_string()),
                Err(e) => Err(format!("user: `{u}` is not a valid localpart: {e}")),
            })
            .transpose()?;
        let server = raw
            .server
            .map(|s| match DomainPart::new(&s) {
                Ok(server) => Ok(server.to_string()),
                Err(e) => Err(format!("server: `{s}` is not a valid domain: {e}")),
            })
            .transpose()?;
        Ok(Self {
            domains: raw.domains,
            user,
            server,
            resource: raw.resource,
            user_regexp: regex("user_regexp", raw.user_regexp)?,
            server_regexp: regex("server_regexp", raw.server_regexp)?,
            resource_regexp: regex("resource_regexp", raw.resource_regexp)?,
            user_glob: glob("user_glob", raw.user_glob)?,
            server_glob: glob("server_glob", raw.server_glob)?,
            resource_glob: glob("resource_glob", raw.resource_glob)?,
        })
    }
}

impl AclPattern {
    /// Whether a local user's bare JID matches. The user belongs to the domain being served,
    /// so `current_domain` and `any_hosted_domain` hold; a bare JID's resource is empty.
    fn matches(&self, user: &UserKey) -> bool {
        let (name, server, resource) = (user.user(), user.server(), "");
        let equals = |expected: &Option<String>, actual: &str| {
            expected.as_deref().is_none_or(|e| e == actual)
        };
        let regex =
            |re: &Option<Regex>, actual: &str| re.as_ref().is_none_or(|re| re.is_match(actual));
        let glob =
            |g: &Option<GlobMatcher>, actual: &str| g.as_ref().is_none_or(|g| g.is_match(actual));
        self.domains != DomainMatch::None
            && equals(&self.user, name)
            && equals(&self.server, server)
            && equals(&self.resource, resource)
            && regex(&self.user_regexp, name)
            && regex(&self.server_regexp, server)
            && regex(&self.resource_regexp, resource)
            && glob(&self.user_glob, name)
            && glob(&self.server_glob, server)
            && glob(&self.resource_glob, resource)
    }
}

impl AccessConfig {
    /// Whether a local user is in the access class `acl`.
    pub fn in_class(&self, acl: &str, user: &UserKey) -> bool {
        match acl {
            "all" => true,
            "none" => false,
            name => self
                .acl
                .get(name)
                .is_some_and(|patterns| patterns.iter().any(|p| p.matches(user))),
        }
    }

    /// The value of rule `rule` for a local user: the value of its first clause whose class
    /// contains the user; `None` if the rule is undefined or no clause matches (MongooseIM's
    /// `deny`).
    pub fn evaluate(&self, rule: &str, user: &UserKey) -> Option<&AccessValue> {
        self.access
            .get(rule)?
            .iter()
            .find(|clause| self.in_class(&clause.acl, user))
            .map(|clause| &clause.value)
    }

    /// The message quota rule `rule` gives a user: an integer is the limit (a negative one
    /// admits nothing); anything else (`infinity`, no matching clause, an undefined rule) is
    /// no limit, as in MongooseIM.
    pub fn quota(&self, rule: &str, user: &UserKey) -> Quota {
        match self.evaluate(rule, user) {
            Some(AccessValue::Integer(limit)) => {
                Quota::messages(u64::try_from(*limit).unwrap_or(0))
            }
            _ => Quota::UNLIMITED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> AccessConfig {
        toml::from_str(toml).unwrap()
    }

    fn user(jid: &str) -> UserKey {
        jid.parse().unwrap()
    }

    #[test]
    fn first_matching_clause_wins() {
        let access = config(
            r#"
            [acl]
            admin = [{user = "Alice"}, {user = "carol", server = "example.org"}]
            [access]
            limit = [{acl = "admin", value = 5000}, {acl = "all", value = 100}, {acl = "all", value = 1}]
            "#,
        );
        assert_eq!(
            access.quota("limit", &user("alice@example.com")),
            Quota::messages(5000)
        );
        assert_eq!(
            access.quota("limit", &user("carol@example.org")),
            Quota::messages(5000)
        );
        assert_eq!(
            access.quota("limit", &user("carol@example.com")),
            Quota::messages(100)
        );
    }

    #[test]
    fn words_undefined_rules_and_no_match_mean_unlimited() {
        let access = config(
            r#"
            [access]
            words = [{acl = "all", value = "infinity"}]
            nobody = [{acl = "none", value = 5}, {acl = "undefined_class", value = 6}]
            "#,
        );
        let bob = user("bob@example.com");
        assert_eq!(access.quota("words", &bob), Quota::UNLIMITED);
        assert_eq!(access.quota("nobody", &bob), Quota::UNLIMITED);
        assert_eq!(access.quota("missing", &bob), Quota::UNLIMITED);
        assert_eq!(access.evaluate("nobody", &bob), None);
    }

    #[test]
    fn match_all_none_and_default() {
        let access = config(
            r#"
            [acl]
            local = [{}]
            everyone = [{match = "all"}]
            hosted = [{match = "any_hosted_domain"}]
            noone = [{match = "none"}, {match = "none", user = "bob"}]
            "#,
        );
        let bob = user("bob@example.com");
        for class in ["local", "everyone", "hosted"] {
            assert!(access.in_class(class, &bob), "{class}");
        }
        assert!(!access.in_class("noone", &bob));
    }

    #[test]
    fn regexps_globs_and_resources() {
        let access = config(
            r#"
            [acl]
            ae = [{user_regexp = "^a.*e$"}]
            hosts = [{server_glob = "*.example.com"}]
            mobile = [{resource = "mobile"}]
            bare = [{resource_regexp = "^$"}]
            "#,
        );
        assert!(access.in_class("ae", &user("alice@x.org")));
        assert!(!access.in_class("ae", &user("bob@x.org")));
        assert!(access.in_class("hosts", &user("bob@sub.example.com")));
        assert!(!access.in_class("hosts", &user("bob@example.com")));
        assert!(
            !access.in_class("mobile", &user("bob@example.com")),
            "a bare JID has no resource"
        );
        assert!(access.in_class("bare", &user("bob@example.com")));
    }

    #[test]
    fn negative_limits_admit_nothing() {
        let access = config("[access]\nlimit = [{acl = \"all\", value = -3}]");
        assert_eq!(
            access.quota("limit", &user("bob@example.com")),
            Quota::messages(0)
        );
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_key() {
        let cases = [
            (
                "admin = [{user_regexp = \"(\"}]",
                "user_regexp: invalid regular expression",
            ),
            (
                "admin = [{server_glob = \"[\"}]",
                "server_glob: invalid glob pattern",
            ),
            (
                "admin = [{user = \"a b\"}]",
                "user: `a b` is not a valid localpart",
            ),
            ("admin = [{nickname = \"x\"}]", "unknown field `nickname`"),
            (
                "admin = [{match = \"sometimes\"}]",
                "unknown match `sometimes`",
            ),
        ];
        for (acl, expected) in cases {
            let err = toml::from_str::<AccessConfig>(&format!("[acl]\n{acl}")).unwrap_err();
            assert!(err.to_string().contains(expected), "{acl}: {err}");
        }
    }
}
