//! One JID, one queue: keys reach a fixed point and every form of one JID gives one key, for
//! JIDs drawn from pieces that trip normalisation (case, `ß`, final sigma, symbols stringprep
//! maps, trailing dots, resources), and for arbitrary strings.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use offline_core::jid::Jid;
use offline_core::{Domain, UserKey, canonical_jid};
use proptest::prelude::*;

/// Characters that normalisation folds, maps or expands, and plain ones.
const PIECES: &[&str] = &[
    "a", "z", "K", "é", "É", "ß", "ẞ", "\u{3f9}", "Σ", "σ", "ς", "ﬃ", "İ", "ǅ", "中", "𠀀", "-",
    "0", "\u{301}", "Å", "\u{212b}",
];

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(PIECES), 1..12)
            .prop_map(|pieces| pieces.concat()),
        // Labels that normalisation makes longer than the 63 bytes a label may have.
        1 => (20usize..64, prop::sample::select(&["ß", "ﬃ", "İ", "a"][..]))
            .prop_map(|(n, piece)| piece.repeat(n)),
    ]
}

/// `local@label(.label)*[.][/resource]`, in pieces that trip normalisation.
fn tricky_jid() -> impl Strategy<Value = String> {
    (
        label(),
        prop::collection::vec(label(), 1..4),
        any::<bool>(),
        prop::option::of(label()),
    )
        .prop_map(|(local, labels, dot, resource)| {
            let mut jid = format!("{local}@{}", labels.join("."));
            if dot {
                jid.push('.');
            }
            if let Some(resource) = resource {
                jid = format!("{jid}/{resource}");
            }
            jid
        })
}

/// Checks the key rules for one input string.
fn check_key_rules(input: &str) -> Result<(), TestCaseError> {
    let Ok(key) = input.parse::<UserKey>() else {
        return Ok(());
    };
    let again: UserKey = key
        .to_string()
        .parse()
        .map_err(|e| TestCaseError::fail(format!("{key} does not parse back: {e}")))?;
    prop_assert_eq!(&again, &key, "the key of {:?} is not a fixed point", input);
    let domain = Domain::new(key.server())
        .map_err(|e| TestCaseError::fail(format!("{} is not a domain: {e}", key.server())))?;
    prop_assert_eq!(domain, key.domain());
    let bare = input.split('/').next().unwrap_or(input);
    let variants = [
        bare.to_owned(),
        bare.to_uppercase(),
        bare.to_lowercase(),
        format!("{}.", bare.trim_end_matches('.')),
        format!("{}/elsewhere", bare.trim_end_matches('.')),
    ];
    for variant in variants {
        if let Ok(other) = variant.parse::<UserKey>() {
            // Case mapping of some characters differs from stringprep's folding; only the
            // forms stringprep folds must agree, so compare through the canonical key.
            let canonical: UserKey = other.to_string().parse().unwrap();
            prop_assert_eq!(
                &canonical,
                &other,
                "the key of {:?} is not a fixed point",
                variant
            );
            if variant.to_lowercase() == bare.to_lowercase() || variant.starts_with(bare) {
                prop_assert_eq!(&other, &key, "{:?} and {:?} key two queues", variant, input);
            }
        }
    }
    if let Ok(jid) = Jid::new(input)
        && let Ok(canonical) = canonical_jid(&jid)
    {
        let twice = canonical_jid(&canonical).unwrap();
        prop_assert_eq!(
            twice.as_str(),
            canonical.as_str(),
            "canonical_jid is not idempotent"
        );
        // A domain's trailing dot changes nothing else, the resource least of all.
        let (bare, resource) = input
            .split_once('/')
            .map_or((input, None), |(bare, resource)| (bare, Some(resource)));
        let bare = bare.strip_suffix('.').unwrap_or(bare);
        let forms = match resource {
            Some(resource) => [format!("{bare}./{resource}"), format!("{bare}/{resource}")],
            None => [format!("{bare}."), bare.to_owned()],
        };
        for form in forms {
            let Some(other) = Jid::new(&form).ok().and_then(|j| canonical_jid(&j).ok()) else {
                continue;
            };
            prop_assert_eq!(
                other.as_str(),
                canonical.as_str(),
                "{:?} and {:?} are one JID",
                form,
                input
            );
        }
    }
    Ok(())
}

/// Cases per run: `PROPTEST_CASES`, else 2,000.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(2_000))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tricky_jids_key_one_queue(input in tricky_jid()) {
        check_key_rules(&input)?;
    }

    #[test]
    fn plain_jids_key_one_queue(
        input in "[a-z0-9]{1,6}@[a-z]{1,6}\\.[a-z]{2,4}\\.?(/[a-zA-Z0-9@/]{1,8})?",
    ) {
        check_key_rules(&input)?;
    }

    #[test]
    fn arbitrary_strings_key_one_queue_or_none(input in ".{0,40}") {
        check_key_rules(&input)?;
    }
}

/// A trailing dot names the same domain: bare, full, case variants and the dotted form share
/// one key, and `Domain` names it.
#[test]
fn the_trailing_dot_form_shares_the_queue() {
    let forms = [
        "juliet@example.com",
        "juliet@example.com.",
        "Juliet@example.com.",
        "juliet@example.com./balcony",
        "JULIET@EXAMPLE.COM./Balcony",
    ];
    let keys: Vec<UserKey> = forms.iter().map(|f| f.parse().unwrap()).collect();
    for (form, key) in forms.iter().zip(&keys) {
        assert_eq!(key.to_string(), "juliet@example.com", "{form}");
    }
    assert_eq!(Domain::new("example.com.").unwrap(), keys[0].domain());
}

/// A domain that normalises in two steps (U+03F9 to Σ to σ) keys one queue.
#[test]
fn normalisation_reaches_a_fixed_point() {
    let once: UserKey = "kelvin@x\u{3f9}.example".parse().unwrap();
    let twice: UserKey = "kelvin@xσ.example".parse().unwrap();
    assert_eq!(once, twice);
    assert_eq!(once.to_string().parse::<UserKey>().unwrap(), once);
    assert_eq!(
        Domain::new("x\u{3f9}.example").unwrap(),
        Domain::new("xσ.example").unwrap()
    );
}

/// A JID whose normal form does not parse again is refused, not keyed.
#[test]
fn a_normal_form_that_does_not_parse_back_is_refused() {
    let jid = format!("romeo@{}.example/orchard", "ß".repeat(40));
    let err = jid.parse::<UserKey>().unwrap_err();
    assert!(err.to_string().contains("not a valid JID"), "{err}");
    assert!(canonical_jid(&Jid::new(&jid).unwrap()).is_err());
}

/// A lower-case full JID with a dotted domain keeps its resource as it is.
#[test]
fn a_dotted_full_jid_keeps_its_resource() {
    for (input, canonical) in [
        ("juliet@example.com./balcony", "juliet@example.com/balcony"),
        ("Juliet@Example.COM./Balcony", "juliet@example.com/Balcony"),
        ("example.com./res", "example.com/res"),
        ("juliet@example.com./a@b/c", "juliet@example.com/a@b/c"),
    ] {
        let jid = Jid::new(input).unwrap();
        assert_eq!(canonical_jid(&jid).unwrap().as_str(), canonical, "{input}");
    }
}

/// An IPv6 literal is one domain however it is written.
#[test]
fn ipv6_literals_key_one_queue() {
    let keys: Vec<UserKey> = [
        "u@[::1]",
        "u@[0:0::1]",
        "U@[0000:0000:0000:0000:0000:0000:0000:0001]",
    ]
    .iter()
    .map(|jid| jid.parse().unwrap())
    .collect();
    assert!(keys.iter().all(|key| key == &keys[0]), "{keys:?}");
    assert_eq!(keys[0].to_string(), "u@[::1]");
    let mapped: UserKey = "u@[::FFFF:1.2.3.4]".parse().unwrap();
    assert_eq!(mapped, "u@[::ffff:1.2.3.4]".parse().unwrap());
}
