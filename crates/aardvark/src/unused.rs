//! Unused access, from our own collection: the rules (a service is *used* when its
//! `lastAuthenticated` is after the window's start, otherwise, 0 included, *unused*; a
//! principal younger than the window is *too new* to tell) and the answer's shape, shared by
//! `GET /api/1/unused` and `aardvark report unused`. Struct fields are declared in sorted
//! order: that is the JSON key order.

use regex::Regex;
use serde::Serialize;

use crate::db::usage::DetailedPrincipal;
use crate::db::vocabulary::AdvisorFilter;

/// The window's length by default, and its bounds, in days.
pub const DEFAULT_DAYS: i64 = 90;
pub const MAX_DAYS: i64 = 3650;

const DAY_MS: i64 = 86_400_000;

/// What a principal is, as its ARN says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PrincipalKind {
    Role,
    User,
    Group,
    Policy,
}
crate::named::named!(PrincipalKind { Role => "role", User => "user", Group => "group", Policy => "policy" });

/// Which principals an unused-access question is about. Conditions combine with AND.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub account: Option<crate::arn::AccountId>,
    /// Case-insensitive substring of the ARN.
    pub phrase: Option<String>,
    /// Exact ARN, in any case.
    pub arn: Option<String>,
    pub kind: Option<PrincipalKind>,
}

impl Selection {
    /// The read path's filter for this selection: the account and kind as a regex over the
    /// ARN; the account also as the phrase when there is none, so that the directory's
    /// index of account fields finds its principals.
    pub fn filter(&self) -> AdvisorFilter {
        let regex = (self.account.is_some() || self.kind.is_some()).then(|| {
            // Twelve digits: nothing to escape.
            let account = self.account.as_ref().map_or("[^:]*", |id| id.as_str());
            let kind = self.kind.map_or("[^/:]+", |kind| kind.as_str());
            Regex::new(&format!(r"\Aarn:[^:]*:iam::{account}:{kind}/")).expect("a valid regex")
        });
        AdvisorFilter {
            phrase: self
                .phrase
                .clone()
                .or_else(|| self.account.as_ref().map(ToString::to_string)),
            arns: self.arn.clone().map(|arn| vec![arn]),
            regex,
        }
    }
}

/// The start of a window of `days` days ending at `now_ms` (epoch milliseconds).
pub fn window_start(now_ms: i64, days: i64) -> i64 {
    now_ms - days.saturating_mul(DAY_MS)
}

/// One service in an unused-access answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceUse {
    /// Epoch milliseconds; 0 when not used in AWS's tracking window.
    #[serde(rename = "lastAuthenticated")]
    pub last_authenticated: i64,
    #[serde(rename = "serviceName")]
    pub service_name: Option<String>,
    #[serde(rename = "serviceNamespace")]
    pub service_namespace: Option<String>,
}

/// One principal's used and unused services in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PrincipalUnused {
    /// Its account id.
    pub account: String,
    pub arn: String,
    /// Its `CreateDate` (RFC 3339, UTC); `null` when it was never listed by this build.
    pub created: Option<String>,
    /// `role`, `user`, `group` or `policy`.
    pub kind: String,
    /// Its newest use of any service (epoch milliseconds; 0: none in AWS's window).
    pub last_used: i64,
    /// Younger than the window: its data cannot show that many days of non-use, so it is
    /// never counted as unused in summaries.
    pub too_new: bool,
    /// Services not used in the window, by namespace.
    pub unused: Vec<ServiceUse>,
    /// No service used in the window.
    pub unused_principal: bool,
    /// Services used in the window, by namespace.
    pub used: Vec<ServiceUse>,
}

/// Applies the rules to a stored principal for the window that starts at `since_ms`.
pub fn assess(principal: DetailedPrincipal, since_ms: i64) -> PrincipalUnused {
    let mut services: Vec<ServiceUse> = principal
        .services
        .into_iter()
        .map(|service| ServiceUse {
            last_authenticated: service.last_authenticated.unwrap_or(0),
            service_name: service.service_name.map(|name| name.into_owned()),
            service_namespace: service.service_namespace.map(|ns| ns.into_owned()),
        })
        .collect();
    services.sort_by(|a, b| a.service_namespace.cmp(&b.service_namespace));
    let last_used = services
        .iter()
        .map(|service| service.last_authenticated)
        .max()
        .unwrap_or(0);
    let (used, unused): (Vec<ServiceUse>, Vec<ServiceUse>) = services
        .into_iter()
        .partition(|service| service.last_authenticated > since_ms);
    let created_ms = principal.details.created_ms;
    PrincipalUnused {
        account: crate::arn::Arn::parse(&principal.arn)
            .map_or_else(String::new, |arn| arn.account.to_owned()),
        created: created_ms.and_then(crate::time::rfc3339_seconds_from_millis),
        kind: principal.details.kind,
        last_used,
        too_new: created_ms.is_some_and(|ms| ms > since_ms),
        unused_principal: used.is_empty(),
        arn: principal.arn,
        unused,
        used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::usage::PrincipalDetails;
    use crate::db::vocabulary::StoredService;
    use std::borrow::Cow;

    fn principal(created_ms: Option<i64>, uses: &[(&str, i64)]) -> DetailedPrincipal {
        DetailedPrincipal {
            arn: "arn:aws:iam::123456789012:role/app".into(),
            details: PrincipalDetails {
                kind: "role".into(),
                created_ms,
            },
            services: uses
                .iter()
                .map(|(ns, last)| StoredService {
                    last_authenticated: Some(*last),
                    service_name: Some(Cow::Owned(format!("Service {ns}"))),
                    service_namespace: Some(Cow::Owned((*ns).to_owned())),
                    last_authenticated_entity: None,
                    total_authenticated_entities: Some(0),
                })
                .collect(),
        }
    }

    fn namespaces(services: &[ServiceUse]) -> Vec<&str> {
        services
            .iter()
            .map(|s| s.service_namespace.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn services_straddling_the_window() {
        let since = 1_000_000;
        let assessed = assess(
            principal(
                Some(10),
                &[
                    ("never", 0),
                    ("outside", since - 1),
                    ("edge", since),
                    ("inside", since + 1),
                    ("future", since + 10 * DAY_MS),
                ],
            ),
            since,
        );
        assert_eq!(namespaces(&assessed.used), ["future", "inside"]);
        assert_eq!(namespaces(&assessed.unused), ["edge", "never", "outside"]);
        assert!(!assessed.unused_principal && !assessed.too_new);
        assert_eq!(assessed.last_used, since + 10 * DAY_MS);
        assert_eq!(assessed.account, "123456789012");
    }

    #[test]
    fn unused_and_too_new_principals() {
        let since = 5_000;
        let unused = assess(principal(Some(since), &[("s3", since), ("ec2", 0)]), since);
        assert!(
            unused.unused_principal && !unused.too_new,
            "created at the window's start"
        );
        let young = assess(principal(Some(since + 1), &[("s3", 0)]), since);
        assert!(young.unused_principal && young.too_new);
        let unknown = assess(principal(None, &[]), since);
        assert!(unknown.unused_principal && !unknown.too_new && unknown.created.is_none());
        assert_eq!(unknown.last_used, 0);
    }

    #[test]
    fn selections_become_filters() {
        let filter = Selection {
            account: Some("123456789012".parse().unwrap()),
            kind: Some(PrincipalKind::User),
            ..Selection::default()
        }
        .filter();
        let regex = filter.regex.unwrap();
        assert!(regex.is_match("arn:aws:iam::123456789012:user/a/b"));
        assert!(!regex.is_match("arn:aws:iam::123456789012:role/user/b"));
        assert!(!regex.is_match("arn:aws:iam::223456789012:user/a"));
        assert_eq!(filter.phrase.as_deref(), Some("123456789012"));
        let plain = Selection::default().filter();
        assert!(plain.regex.is_none() && plain.phrase.is_none() && plain.arns.is_none());
    }
}
