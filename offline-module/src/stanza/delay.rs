//! XEP-0203 delay stamps: the one the module adds on delivery, and a sender's it may trust.

use minidom::Element;
use minidom::rxml::xml_ncname;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{ns, set_attr};

/// `<delay xmlns='urn:xmpp:delay' from='{domain}' stamp='{UTC, µs}Z'>Offline Storage</delay>`,
/// the stamp MongooseIM appends to every message it delivers from offline storage.
pub(crate) fn delay_element(domain: &str, timestamp: i64) -> Element {
    let mut delay = Element::builder("delay", ns::DELAY)
        .append("Offline Storage")
        .build();
    set_attr(&mut delay, xml_ncname!("from"), domain);
    set_attr(
        &mut delay,
        xml_ncname!("stamp"),
        &format_stamp_micros(timestamp),
    );
    delay
}

/// RFC 3339 in UTC with six fractional digits: `2023-11-14T22:13:20.000000Z`.
pub(crate) fn format_stamp_micros(timestamp: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    utc(timestamp)
        .format(format)
        .unwrap_or_else(|_| String::from("9999-12-31T23:59:59.999999Z"))
}

/// RFC 3339 in UTC to the second: `2023-11-14T22:13:20Z`.
pub(crate) fn format_stamp_seconds(timestamp: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    utc(timestamp)
        .format(format)
        .unwrap_or_else(|_| String::from("9999-12-31T23:59:59Z"))
}

/// The time `timestamp` µs after the epoch, clamped to what can be written as a date.
fn utc(timestamp: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp) * 1000).unwrap_or_else(|_| {
        let edge = if timestamp < 0 {
            PrimitiveDateTime::MIN
        } else {
            PrimitiveDateTime::MAX
        };
        edge.assume_offset(UtcOffset::UTC)
    })
}

/// The stamp of the sender's top-level XEP-0203 `<delay/>`, in µs since the epoch, if there
/// is one, it parses as RFC 3339 and it is not before the epoch.
pub(crate) fn sender_stamp(message: &Element) -> Option<i64> {
    let stamp = message.get_child("delay", ns::DELAY)?.attr("stamp")?;
    let parsed = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    let micros = i64::try_from(parsed.unix_timestamp_nanos() / 1000).ok()?;
    (micros >= 0).then_some(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20.123456Z
    const T: i64 = 1_700_000_000_123_456;

    #[test]
    fn stamps_are_utc_with_six_fractional_digits() {
        assert_eq!(format_stamp_micros(T), "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            format_stamp_micros(1_700_000_000_000_000),
            "2023-11-14T22:13:20.000000Z"
        );
        assert_eq!(format_stamp_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_stamp_seconds(T), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn unwritable_times_are_clamped_not_panicking() {
        assert_eq!(format_stamp_micros(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert!(format_stamp_seconds(i64::MIN).starts_with("-9999-01-01"));
    }

    #[test]
    fn delay_element_is_exactly_mongooseims() {
        let delay = delay_element("example.com", T);
        assert_eq!(
            String::from(&delay),
            "<delay xmlns='urn:xmpp:delay' from='example.com' \
             stamp='2023-11-14T22:13:20.123456Z'>Offline Storage</delay>"
        );
    }

    #[test]
    fn sender_stamps_are_read_from_xep_0203_delay_only() {
        let parse = |children: &str| -> Element {
            format!("<message xmlns='jabber:client'>{children}</message>")
                .parse()
                .unwrap()
        };
        let with = parse("<delay xmlns='urn:xmpp:delay' stamp='2023-11-14T23:13:20.5+01:00'/>");
        assert_eq!(sender_stamp(&with), Some(1_700_000_000_500_000));
        let legacy = parse("<x xmlns='jabber:x:delay' stamp='20231114T22:13:20'/>");
        assert_eq!(sender_stamp(&legacy), None);
        let garbage = parse("<delay xmlns='urn:xmpp:delay' stamp='yesterday'/>");
        assert_eq!(sender_stamp(&garbage), None);
        let ancient = parse("<delay xmlns='urn:xmpp:delay' stamp='1969-12-31T23:59:59Z'/>");
        assert_eq!(sender_stamp(&ancient), None);
    }
}
