//! Findings: the rules of IAM Access Analyzer's unused-access analyzer, over our own data.
//! `unused_role` (no `RoleLastUsed` in the window), `unused_access_key` (an active key not
//! used in it; never used counts from its creation), `unused_password` (a console password
//! not used in it), `unused_permission` (a role or user with services or tracked actions
//! unused in it). Nothing created inside the window has a finding yet. The window's rule is
//! `/api/1/unused`'s: a use counts when it is after the window's start. `FINDINGS_EXCLUDE`
//! rules archive what they match. `evaluate` is pure; `evaluate_account` reads the account's
//! facts, applies the result in storage, then refreshes the least-privilege recommendations of
//! its `unused_permission` findings (`crate::recommend`).

use regex::Regex;
use serde_json::json;

use crate::db::findings::{finding_id, Changes, Cleared, Evaluation, FindingType, Holding};
use crate::db::identity::{AccountFacts, IdentityRecord, UsageFacts, UserCredentials};
use crate::db::recommendations::{AccountPolicies, FreshRecommendation, RecommendationChanges};
use crate::db::{Database, DbError};
use crate::time::rfc3339_seconds_from_millis;

/// The window by default and its bounds, in days.
pub const DEFAULT_DAYS: i64 = 90;
pub const MAX_DAYS: i64 = 365;

/// One `FINDINGS_EXCLUDE` rule.
#[derive(Debug, Clone)]
pub enum Exclusion {
    /// `123456789012` or `account:123456789012`.
    Account(String),
    /// `tag:key` or `tag:key=value`: a principal tag.
    Tag { key: String, value: Option<String> },
    /// An ARN with `*` and `?` wildcards, in any case.
    Arn { glob: String, pattern: Regex },
}

impl PartialEq for Exclusion {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Account(id) => write!(f, "account:{id}"),
            Self::Tag { key, value: None } => write!(f, "tag:{key}"),
            Self::Tag {
                key,
                value: Some(value),
            } => write!(f, "tag:{key}={value}"),
            Self::Arn { glob, .. } => f.write_str(glob),
        }
    }
}

impl Exclusion {
    /// What a rule looks like, for error messages.
    pub const EXPECTED: &'static str = "a list of rules: an account id (123456789012 or account:123456789012), a principal tag (tag:key or tag:key=value) or an ARN glob (arn:aws:iam::*:role/admin-*)";

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let account = text.strip_prefix("account:").unwrap_or(text);
        if crate::arn::is_account_id(account) {
            return Some(Self::Account(account.to_owned()));
        }
        if let Some(tag) = text.strip_prefix("tag:") {
            let (key, value) = match tag.split_once('=') {
                Some((key, value)) => (key, Some(value.to_owned())),
                None => (tag, None),
            };
            return (!key.is_empty()).then(|| Self::Tag {
                key: key.to_owned(),
                value,
            });
        }
        if text.starts_with("arn:") {
            let mut pattern = String::from("(?i)\\A");
            for c in text.chars() {
                match c {
                    '*' => pattern.push_str(".*"),
                    '?' => pattern.push('.'),
                    c => pattern.push_str(&regex::escape(&c.to_string())),
                }
            }
            pattern.push_str("\\z");
            return Some(Self::Arn {
                glob: text.to_owned(),
                pattern: Regex::new(&pattern).ok()?,
            });
        }
        None
    }

    fn matches(&self, account: &str, arn: &str, identity: Option<&IdentityRecord>) -> bool {
        match self {
            Self::Account(id) => id == account,
            Self::Tag { key, value } => identity.is_some_and(|identity| {
                identity
                    .tags
                    .get(key)
                    .is_some_and(|found| value.as_ref().is_none_or(|value| value == found))
            }),
            Self::Arn { pattern, .. } => pattern.is_match(arn),
        }
    }
}

/// The window and exclusions findings are evaluated with.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRules {
    pub days: i64,
    pub exclusions: Vec<Exclusion>,
}

impl Default for FindingRules {
    fn default() -> Self {
        Self {
            days: DEFAULT_DAYS,
            exclusions: Vec::new(),
        }
    }
}

impl FindingRules {
    /// The rules as text, to tell whether they changed since the last evaluation.
    pub fn fingerprint(&self) -> String {
        let rules: Vec<String> = self.exclusions.iter().map(ToString::to_string).collect();
        json!({"days": self.days, "exclude": rules}).to_string()
    }

    fn excluded_by(
        &self,
        account: &str,
        arn: &str,
        identity: Option<&IdentityRecord>,
    ) -> Option<String> {
        self.exclusions
            .iter()
            .find(|rule| rule.matches(account, arn, identity))
            .map(ToString::to_string)
    }
}

/// Which parts of an account's data this evaluation may judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// Access Advisor data (the account was listed): `unused_permission`.
    pub usage: bool,
    /// Authorization details: `unused_role`.
    pub details: bool,
    /// The credential report: `unused_access_key`, `unused_password`.
    pub credentials: bool,
}

impl Judged {
    pub const ALL: Judged = Judged {
        usage: true,
        details: true,
        credentials: true,
    };

    fn types(self) -> Vec<FindingType> {
        let mut types = Vec::new();
        if self.details {
            types.push(FindingType::UnusedRole);
        }
        if self.credentials {
            types.extend([FindingType::UnusedAccessKey, FindingType::UnusedPassword]);
        }
        if self.usage {
            types.push(FindingType::UnusedPermission);
        }
        types
    }
}

fn date(ms: Option<i64>) -> serde_json::Value {
    ms.and_then(rfc3339_seconds_from_millis)
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// The account's findings as its facts stand at `now_ms`.
pub fn evaluate(
    account: &str,
    facts: &AccountFacts,
    judged: Judged,
    rules: &FindingRules,
    now_ms: i64,
) -> Evaluation {
    let mut evaluator = Evaluator {
        account,
        rules,
        since: crate::unused::window_start(now_ms, rules.days),
        identities: facts
            .identities
            .iter()
            .map(|identity| (identity.arn.as_str(), identity))
            .collect(),
        evaluation: Evaluation {
            account: account.to_owned(),
            types: judged.types(),
            ..Default::default()
        },
    };
    if judged.details {
        for role in facts.identities.iter().filter(|i| i.kind == "role") {
            evaluator.role(role);
        }
    }
    if judged.credentials {
        for user in &facts.credentials {
            evaluator.password(user);
            evaluator.keys(user);
        }
    }
    if judged.usage {
        for principal in &facts.usage {
            evaluator.permissions(principal);
        }
    }
    evaluator.evaluation
}

/// One account's evaluation under way: the rules, the window's start, the principals'
/// identities (for tag exclusions), and what was found so far.
struct Evaluator<'a> {
    account: &'a str,
    rules: &'a FindingRules,
    since: i64,
    identities: std::collections::HashMap<&'a str, &'a IdentityRecord>,
    evaluation: Evaluation,
}

impl Evaluator<'_> {
    /// Used inside the window.
    fn used(&self, ms: Option<i64>) -> bool {
        ms.is_some_and(|ms| ms > self.since)
    }

    /// Created inside the window: too new to tell.
    fn too_new(&self, created: Option<i64>) -> bool {
        created.is_some_and(|ms| ms > self.since)
    }

    /// Records a resource's condition: holding (with the exclusion that archives it, if
    /// any, and its evidence, made only then), or not, and why.
    fn found(
        &mut self,
        kind: FindingType,
        resource: String,
        principal: &str,
        holds: bool,
        reason: &str,
        evidence: impl FnOnce() -> serde_json::Value,
    ) {
        if holds {
            let evidence = evidence();
            let identity = self.identities.get(principal).copied();
            self.evaluation.holding.push(Holding {
                kind,
                excluded_by: self.rules.excluded_by(self.account, principal, identity),
                resource,
                principal: principal.to_owned(),
                evidence,
            });
        } else {
            self.evaluation.cleared.push(Cleared {
                kind,
                resource,
                reason: reason.to_owned(),
            });
        }
    }

    fn role(&mut self, role: &IdentityRecord) {
        let evidence = || {
            json!({
                "created": date(role.created_ms),
                "last_used": date(role.last_used_ms),
                "last_used_region": role.last_used_region,
                "window_days": self.rules.days,
            })
        };
        let holds = !self.used(role.last_used_ms) && !self.too_new(role.created_ms);
        self.found(
            FindingType::UnusedRole,
            role.arn.clone(),
            &role.arn,
            holds,
            "the role was used again",
            evidence,
        );
    }

    fn password(&mut self, user: &UserCredentials) {
        let evidence = || {
            json!({
                "user": user.user_name,
                "created": date(user.created_ms),
                "password_enabled": user.password_enabled,
                "password_last_used": date(user.password_last_used_ms),
                "password_last_used_note": user.password_last_used_note,
                "password_last_changed": date(user.password_last_changed_ms),
                "window_days": self.rules.days,
            })
        };
        let (holds, reason) = if !user.password_enabled {
            (false, "the password was removed")
        } else {
            // A password set inside the window, never used since, is too new to tell.
            let set = user.password_last_changed_ms.or(user.created_ms);
            (
                !self.used(user.password_last_used_ms) && !self.too_new(set),
                "the password was used again",
            )
        };
        self.found(
            FindingType::UnusedPassword,
            user.arn.clone(),
            &user.arn,
            holds,
            reason,
            evidence,
        );
    }

    fn keys(&mut self, user: &UserCredentials) {
        for key in &user.keys {
            let evidence = || {
                json!({
                    "key_id": key.key_id,
                    "slot": key.slot,
                    "active": key.active,
                    "created": date(key.created_ms),
                    "last_used": date(key.last_used_ms),
                    "last_used_region": key.last_used_region,
                    "last_used_service": key.last_used_service,
                    "window_days": self.rules.days,
                })
            };
            let (holds, reason) = if !key.active {
                (false, "the access key was deactivated")
            } else {
                let unused = !self.used(key.last_used_ms) && !self.too_new(key.created_ms);
                (unused, "the access key was used again")
            };
            self.found(
                FindingType::UnusedAccessKey,
                key.resource(&user.arn),
                &user.arn,
                holds,
                reason,
                evidence,
            );
        }
    }

    fn permissions(&mut self, principal: &UsageFacts) {
        let since = self.since;
        let unused = |last: i64| last <= since;
        let created = principal.created_ms.or_else(|| {
            self.identities
                .get(principal.arn.as_str())
                .and_then(|i| i.created_ms)
        });
        let holds = (principal.services.iter().any(|(_, last)| unused(*last))
            || principal.actions.iter().any(|(_, _, last)| unused(*last)))
            && !self.too_new(created);
        let days = self.rules.days;
        let evidence = || {
            let unused_services: Vec<serde_json::Value> = principal
                .services
                .iter()
                .filter(|(_, last)| unused(*last))
                .map(|(namespace, last)| json!({"namespace": namespace, "last_used": date((*last > 0).then_some(*last))}))
                .collect();
            let unused_actions: Vec<serde_json::Value> = principal
                .actions
                .iter()
                .filter(|(_, _, last)| unused(*last))
                .map(|(namespace, action, last)| json!({"action": format!("{namespace}:{action}"), "last_used": date((*last > 0).then_some(*last))}))
                .collect();
            json!({
                "created": date(created),
                "services": principal.services.len(),
                "unused_services": unused_services,
                "unused_actions": unused_actions,
                "window_days": days,
            })
        };
        self.found(
            FindingType::UnusedPermission,
            principal.arn.clone(),
            &principal.arn,
            holds,
            "every permission was used in the window",
            evidence,
        );
    }
}

/// Evaluates one account from what storage holds of it and applies the result.
pub async fn evaluate_account(
    db: &Database,
    account: &str,
    judged: Judged,
    rules: &FindingRules,
    run_id: Option<i64>,
) -> Result<Changes, DbError> {
    let mut delay = std::time::Duration::from_millis(100);
    for attempt in 1.. {
        let facts = db.account_facts(account).await?;
        let now = chrono::Utc::now();
        let evaluation = evaluate(account, &facts, judged, rules, now.timestamp_millis());
        let stored_now = crate::time::format_stored(now.naive_utc());
        match db.apply_evaluation(&evaluation, run_id, &stored_now).await {
            Err(err) if err.is_transient() && attempt < EVALUATION_ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(err) => return Err(err),
            Ok(changes) => {
                if judged.usage {
                    let at = Evaluated {
                        now_ms: now.timestamp_millis(),
                        run_id,
                        stored_now: &stored_now,
                    };
                    match refresh_recommendations(db, &facts, &evaluation, rules, at).await {
                        Ok(changed) => {
                            tracing::debug!(account, ?changed, "recommendations refreshed")
                        }
                        Err(err) => {
                            tracing::warn!(account, error = %err, "recommendations not refreshed; they stay as they were")
                        }
                    }
                }
                return Ok(changes);
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// When an evaluation was made: its time (epoch ms, and as stored) and its run.
#[derive(Clone, Copy)]
pub struct Evaluated<'a> {
    pub now_ms: i64,
    pub run_id: Option<i64>,
    pub stored_now: &'a str,
}

/// Recomputes the recommendation of every role and user `evaluation` found with unused
/// permissions (from the account's `facts` and stored policies) and stores those that
/// changed; a recommendation that fails its verification is stored as not offered, logged,
/// and counted in `/metrics`. When what the rules read is what the stored recommendations
/// were computed from (`recommend::inputs_digest`), nothing is computed or written.
pub async fn refresh_recommendations(
    db: &Database,
    facts: &AccountFacts,
    evaluation: &Evaluation,
    rules: &FindingRules,
    at: Evaluated<'_>,
) -> Result<RecommendationChanges, DbError> {
    let account = evaluation.account.as_str();
    let principals: Vec<&str> = evaluation
        .holding
        .iter()
        .filter(|holding| holding.kind == FindingType::UnusedPermission)
        .map(|holding| holding.principal.as_str())
        .collect();
    let inputs = crate::recommend::inputs_digest(
        &facts.identities,
        &db.policy_references(account).await?,
        &facts.usage,
        &principals,
        crate::unused::window_start(at.now_ms, rules.days),
        rules.days,
    );
    if let Some((stored, current)) = db.recommendation_inputs(account).await? {
        if stored == inputs {
            return Ok(RecommendationChanges {
                unchanged: current,
                ..RecommendationChanges::default()
            });
        }
    }
    let fresh = if principals.is_empty() {
        Vec::new()
    } else {
        let policies = db.account_policies(account).await?;
        recommendations(facts, &policies, evaluation, rules, at.now_ms)
    };
    db.store_recommendations(account, &fresh, &inputs, at.run_id, at.stored_now)
        .await
}

/// The recommendations of the roles and users `evaluation` found with unused permissions.
pub fn recommendations(
    facts: &AccountFacts,
    policies: &AccountPolicies,
    evaluation: &Evaluation,
    rules: &FindingRules,
    now_ms: i64,
) -> Vec<FreshRecommendation> {
    let account = crate::recommend::Account::new(
        &facts.identities,
        &policies.inline,
        &policies.managed,
        &facts.usage,
        crate::unused::window_start(now_ms, rules.days),
        rules.days,
    );
    let mut fresh = Vec::new();
    for holding in &evaluation.holding {
        if holding.kind != FindingType::UnusedPermission {
            continue;
        }
        let Some(recommendation) = account.recommend(&holding.principal) else {
            continue;
        };
        if let Some(reason) = &recommendation.rejected {
            tracing::warn!(principal = %holding.principal, reason, "recommendation not offered: its verification failed");
        }
        fresh.push(FreshRecommendation {
            finding_id: finding_id(holding.kind, &holding.resource),
            principal: holding.principal.clone(),
            offered: recommendation.offered(),
            steps: recommendation.steps.len() as i64,
            body: serde_json::to_string(&recommendation).expect("a recommendation serializes"),
        });
    }
    fresh
}

/// Accounts evaluated at once, when every account is evaluated again and as a collection's
/// accounts end (on SQLite their writes take turns: `Database::begin_write`). Each evaluation
/// holds its account's facts and policies: accounts that end together would otherwise hold
/// all of theirs at once.
pub const EVALUATIONS_AT_ONCE: usize = 8;

/// Attempts at applying an evaluation when the database is busy or the connection lost.
const EVALUATION_ATTEMPTS: u32 = 3;

/// Evaluates every account again when the rules changed since the last evaluation (a server
/// starting with another window or other exclusions); returns how many accounts it evaluated.
pub async fn reevaluate_if_rules_changed(
    db: &Database,
    rules: &FindingRules,
) -> Result<usize, DbError> {
    let fingerprint = rules.fingerprint();
    let previous = db.findings_rules().await?;
    if previous.as_deref() == Some(fingerprint.as_str()) {
        return Ok(0);
    }
    let accounts = db.accounts_with_facts().await?;
    let evaluated = accounts.len();
    // Several accounts at once, each its own task: one account's rules and recommendations
    // are computed on one core while another's statements run (in one task, the computing
    // would hold up the statements between them, and SQLite's write turn with them), and
    // PostgreSQL writes different accounts' findings side by side.
    use futures::{StreamExt, TryStreamExt};
    let rules = std::sync::Arc::new(rules.clone());
    let evaluations = accounts.into_iter().map(|account| {
        let (db, rules) = (db.clone(), rules.clone());
        tokio::spawn(
            async move { evaluate_account(&db, &account, Judged::ALL, &rules, None).await },
        )
    });
    futures::stream::iter(evaluations)
        .buffer_unordered(EVALUATIONS_AT_ONCE)
        .map(|joined| joined.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic())))
        .try_collect::<Vec<_>>()
        .await?;
    db.set_findings_rules(&fingerprint).await?;
    Ok(evaluated)
}

/// [`reevaluate_if_rules_changed`], its outcome logged: findings that cannot be evaluated
/// now stay as they were.
pub async fn keep_rules_current(db: &Database, rules: &FindingRules) {
    match reevaluate_if_rules_changed(db, rules).await {
        Ok(0) => {}
        Ok(accounts) => {
            tracing::info!(
                accounts,
                "findings evaluated again: their window or exclusions changed"
            )
        }
        Err(err) => {
            tracing::warn!(error = %err, "findings not evaluated again with the new window or exclusions")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::identity::{AccessKeyRecord, UsageFacts};

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn role(name: &str, created: i64, last_used: Option<i64>) -> IdentityRecord {
        IdentityRecord {
            arn: format!("arn:aws:iam::123456789012:role/{name}"),
            kind: "role".into(),
            created_ms: Some(created),
            last_used_ms: last_used,
            ..Default::default()
        }
    }

    fn holding(evaluation: &Evaluation) -> Vec<(FindingType, String)> {
        evaluation
            .holding
            .iter()
            .map(|h| (h.kind, h.resource.rsplit('/').next().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn the_windows_edge_is_the_unused_rule() {
        let since = NOW - 90 * DAY;
        let facts = AccountFacts {
            identities: vec![
                role("at-the-edge", 0, Some(since)),
                role("just-inside", 0, Some(since + 1000)),
                role("created-at-the-edge", since, None),
                role("created-inside", since + 1000, None),
            ],
            ..Default::default()
        };
        let judged = Judged {
            usage: false,
            details: true,
            credentials: false,
        };
        let evaluation = evaluate(
            "123456789012",
            &facts,
            judged,
            &FindingRules::default(),
            NOW,
        );
        assert_eq!(
            holding(&evaluation),
            [
                (FindingType::UnusedRole, "at-the-edge".into()),
                (FindingType::UnusedRole, "created-at-the-edge".into())
            ]
        );
        assert_eq!(evaluation.types, [FindingType::UnusedRole]);
        assert_eq!(evaluation.cleared.len(), 2);
    }

    #[test]
    fn keys_passwords_and_permissions() {
        let user = UserCredentials {
            arn: "arn:aws:iam::123456789012:user/u".into(),
            user_name: "u".into(),
            created_ms: Some(0),
            password_enabled: true,
            password_last_used_ms: None,
            password_last_changed_ms: Some(NOW - 10 * DAY),
            keys: vec![
                AccessKeyRecord {
                    slot: 1,
                    key_id: Some("AKIA1".into()),
                    active: true,
                    created_ms: Some(0),
                    ..Default::default()
                },
                AccessKeyRecord {
                    slot: 2,
                    key_id: None,
                    active: false,
                    created_ms: Some(0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let usage = UsageFacts {
            arn: "arn:aws:iam::123456789012:role/r".into(),
            kind: "role".into(),
            created_ms: Some(0),
            services: vec![("s3".into(), NOW - DAY)],
            actions: vec![("s3".into(), "GetObject".into(), 0)],
        };
        let facts = AccountFacts {
            credentials: vec![user],
            usage: vec![usage],
            ..Default::default()
        };
        let evaluation = evaluate(
            "123456789012",
            &facts,
            Judged::ALL,
            &FindingRules::default(),
            NOW,
        );
        assert_eq!(
            holding(&evaluation),
            [
                (FindingType::UnusedAccessKey, "AKIA1".into()),
                (FindingType::UnusedPermission, "r".into())
            ],
            "a password set 10 days ago is too new; an inactive key is no finding"
        );
        let reasons: Vec<&str> = evaluation
            .cleared
            .iter()
            .map(|c| c.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "the password was used again",
                "the access key was deactivated"
            ]
        );
        assert_eq!(
            evaluation.cleared[1].resource,
            "arn:aws:iam::123456789012:user/u#access_key_2"
        );
        assert_eq!(
            evaluation.holding[1].evidence["unused_actions"][0]["action"],
            "s3:GetObject"
        );
    }

    #[test]
    fn exclusion_rules_parse_and_match() {
        let rules: Vec<Exclusion> = [
            "123456789012",
            "account:210987654321",
            "tag:env",
            "tag:team=core",
            "arn:aws:iam::*:role/Admin-?",
        ]
        .iter()
        .map(|r| Exclusion::parse(r).unwrap())
        .collect();
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "account:123456789012",
                "account:210987654321",
                "tag:env",
                "tag:team=core",
                "arn:aws:iam::*:role/Admin-?"
            ]
        );
        for bad in ["", "12345", "tag:", "role/*", "account:abc"] {
            assert!(Exclusion::parse(bad).is_none(), "{bad}");
        }
        let mut tagged = role("x", 0, None);
        tagged.tags.insert("team".into(), "core".into());
        let arn = "arn:aws:iam::555555555555:role/x";
        assert!(rules[3].matches("555555555555", arn, Some(&tagged)));
        assert!(!rules[2].matches("555555555555", arn, Some(&tagged)));
        assert!(
            rules[4].matches("1", "arn:aws:iam::555555555555:role/admin-1", None),
            "any case"
        );
        assert!(!rules[4].matches("1", "arn:aws:iam::555555555555:role/admin-12", None));
        assert!(rules[0].matches("123456789012", arn, None));
    }
}
