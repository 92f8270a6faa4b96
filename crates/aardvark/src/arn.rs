//! ARNs (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`) and AWS account ids: the one parser
//! the collector, the storage and the settings wizard share. (aws-sim parses ARNs on its own on
//! purpose, so that the simulator cannot share a parsing bug with the collector.)

use std::ops::Range;

/// The fields of an ARN, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth colon (`role/path/name`); may hold colons itself.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Any ARN: six colon-separated fields, the first `arn`.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut fields = text.splitn(6, ':');
        if fields.next()? != "arn" {
            return None;
        }
        Some(Self {
            partition: fields.next()?,
            service: fields.next()?,
            region: fields.next()?,
            account: fields.next()?,
            resource: fields.next()?,
        })
    }

    /// An IAM principal or policy ARN: service `iam`, no region, a 12-digit account and a
    /// resource (`arn:aws:iam::123456789012:role/x`).
    pub fn iam(text: &'a str) -> Option<Self> {
        Self::parse(text).filter(|arn| {
            arn.service == "iam"
                && arn.region.is_empty()
                && is_account_id(arn.account)
                && !arn.resource.is_empty()
        })
    }

    /// Where the account field lies in `text`, for any text with at least four colons (the
    /// field then ends at the fifth colon or the end). Byte offsets, so callers can index
    /// lower-cased or stored copies of the same ARN.
    pub fn account_range(text: &str) -> Option<Range<usize>> {
        let mut colons = text.match_indices(':').map(|(at, _)| at);
        let start = colons.nth(3)? + 1;
        Some(start..colons.next().unwrap_or(text.len()))
    }
}

/// An AWS account id: exactly twelve ASCII digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// An AWS account id, checked once where it enters (a flag, a query parameter) so that what
/// takes one never checks it again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// What an account id must be, for error messages.
    pub const EXPECTED: &'static str = "a 12-digit account id";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for AccountId {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if is_account_id(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Self::EXPECTED)
        }
    }
}

impl std::ops::Deref for AccountId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert_eq!(
            "123456789012".parse::<AccountId>().map(|id| id.to_string()),
            Ok("123456789012".to_owned())
        );
        for not_an_id in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            " 123456789012",
        ] {
            assert_eq!(
                not_an_id.parse::<AccountId>(),
                Err(AccountId::EXPECTED),
                "{not_an_id:?}"
            );
        }
    }

    #[test]
    fn iam_arns_and_their_fields() {
        let arn = Arn::iam("arn:aws-us-gov:iam::123456789012:role/path/a:b").unwrap();
        assert_eq!(arn.partition, "aws-us-gov");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.resource, "role/path/a:b");
        for not_iam in [
            "",
            "arn:aws:iam::123456789012",
            "arn:aws:iam::123456789012:",
            "arn:aws:s3:::bucket",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::12345678901:role/x",
            "nra:aws:iam::123456789012:role/x",
        ] {
            assert!(Arn::iam(not_iam).is_none(), "{not_iam:?} parsed");
        }
        assert_eq!(
            Arn::parse("arn:aws:sts::1:assumed-role/r/s").map(|a| a.service),
            Some("sts")
        );
    }

    #[test]
    fn account_ranges() {
        let text = "arn:aws:iam::123456789012:role/x";
        assert_eq!(&text[Arn::account_range(text).unwrap()], "123456789012");
        assert_eq!(Arn::account_range("a:b:c:d:tail"), Some(8..12));
        assert_eq!(Arn::account_range("a:b:c"), None);
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("000000000000"));
        assert!(!is_account_id("12345678901a"));
        assert!(!is_account_id("1234567890123"));
        assert!(!is_account_id("１２３４５６７８９０１２"));
    }
}
