//! Least-privilege rules over one policy document. What Access Advisor shows unused in the
//! window is removed from the document's `Allow` statements; everything without evidence is
//! kept and said so; `verify` checks a recommended set of policies against the current one
//! with the policy evaluator. Pure: no storage, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::policy::{decide, ActionPattern, Actions, Document, Effect, Statement};

/// What Access Advisor reports of one principal, lower-cased: each service it lists with its
/// last use (epoch ms, `None` never), and, for services tracked at action level, each tracked
/// action (`service:name`) with its last use.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub services: BTreeMap<String, Option<i64>>,
    pub actions: BTreeMap<String, Option<i64>>,
}

impl Usage {
    /// What the change of a policy several principals hold may go by: the services and
    /// actions every one of them has data for, each with its latest use. A holder without
    /// data leaves no evidence at all.
    pub fn merged<'a>(holders: impl IntoIterator<Item = Option<&'a Usage>>) -> Usage {
        let mut merged: Option<Usage> = None;
        for usage in holders {
            let Some(usage) = usage else {
                return Usage::default();
            };
            merged = Some(match merged {
                None => usage.clone(),
                Some(so_far) => Usage {
                    services: latest_of_both(so_far.services, &usage.services),
                    actions: latest_of_both(so_far.actions, &usage.actions),
                },
            });
        }
        merged.unwrap_or_default()
    }

    fn used(&self, last: Option<i64>, since: i64) -> bool {
        last.is_some_and(|ms| ms > since)
    }

    fn service_unused(&self, service: &str, since: i64) -> Option<bool> {
        self.services
            .get(service)
            .map(|&last| !self.used(last, since))
    }

    fn action_unused(&self, action: &str, since: i64) -> Option<bool> {
        self.actions
            .get(&action.to_ascii_lowercase())
            .map(|&last| !self.used(last, since))
    }

    /// Tracked actions used in the window, and one probe action for every service used in
    /// the window that no tracked action stands for (`service:*` matches it through
    /// patterns only).
    fn used_actions(&self, since: i64) -> Vec<String> {
        let mut actions: Vec<String> = self
            .actions
            .iter()
            .filter(|(_, &last)| self.used(last, since))
            .map(|(action, _)| action.clone())
            .collect();
        for (service, &last) in &self.services {
            if self.used(last, since) {
                actions.push(format!("{service}:aardvarkprobe"));
            }
        }
        actions
    }
}

/// The keys of both, each with the later of its two last uses.
fn latest_of_both(
    mut ours: BTreeMap<String, Option<i64>>,
    theirs: &BTreeMap<String, Option<i64>>,
) -> BTreeMap<String, Option<i64>> {
    ours.retain(|key, _| theirs.contains_key(key));
    for (key, last) in ours.iter_mut() {
        *last = (*last).max(theirs[key]);
    }
    ours
}

/// One action pattern taken out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    pub pattern: String,
    /// The statement's `Sid`.
    pub statement: Option<String>,
    /// The service whose data shows it unused.
    pub service: String,
    /// When Access Advisor last saw the service (or the tracked action) used, RFC 3339;
    /// `null` never.
    pub last_used: Option<String>,
    pub reason: String,
}

/// A pattern kept for want of evidence, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptWithoutEvidence {
    pub pattern: String,
    pub reason: String,
}

/// What the rules make of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Narrowed {
    /// The document with what was removed taken out; `None` when no statement is left.
    pub document: Option<Document>,
    pub removed: Vec<Removed>,
    pub kept_without_evidence: Vec<KeptWithoutEvidence>,
}

impl Narrowed {
    pub fn changed(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// Applies the rules to `document` for a principal whose use is `usage`, the window starting
/// at `since` (epoch ms).
pub fn narrow(document: &Document, usage: &Usage, since: i64) -> Narrowed {
    let mut removed = Vec::new();
    let mut kept_without_evidence = Vec::new();
    let mut statements = Vec::new();
    for statement in &document.statements {
        let opted_out = statement
            .sid
            .as_deref()
            .is_some_and(|sid| sid.starts_with("NOREPO"));
        let patterns = match (&statement.actions, statement.effect) {
            (Actions::Action(patterns), Effect::Allow) if !opted_out => patterns,
            (Actions::NotAction(_), Effect::Allow) => {
                kept_without_evidence.push(KeptWithoutEvidence {
                    pattern: format!("NotAction in {}", sid_or_index(statement, statements.len())),
                    reason: "NotAction cannot be narrowed without the full action catalogue"
                        .to_owned(),
                });
                statements.push(statement.clone());
                continue;
            }
            _ => {
                statements.push(statement.clone());
                continue;
            }
        };
        let mut kept = Vec::new();
        for pattern in patterns {
            match judge(pattern, usage, since) {
                Judgement::Remove {
                    service,
                    last_used,
                    reason,
                } => removed.push(Removed {
                    pattern: pattern.written.clone(),
                    statement: statement.sid.clone(),
                    service,
                    last_used: last_used.and_then(crate::time::rfc3339_seconds_from_millis),
                    reason,
                }),
                Judgement::KeepWithoutEvidence(reason) => {
                    kept_without_evidence.push(KeptWithoutEvidence {
                        pattern: pattern.written.clone(),
                        reason,
                    });
                    kept.push(pattern.clone());
                }
                Judgement::Keep => kept.push(pattern.clone()),
            }
        }
        if !kept.is_empty() {
            statements.push(Statement {
                actions: Actions::Action(kept),
                ..statement.clone()
            });
        }
    }
    Narrowed {
        document: (!statements.is_empty()).then(|| Document {
            version: document.version.clone(),
            statements,
        }),
        removed,
        kept_without_evidence,
    }
}

fn sid_or_index(statement: &Statement, index: usize) -> String {
    statement
        .sid
        .clone()
        .unwrap_or_else(|| format!("statement {}", index + 1))
}

enum Judgement {
    Keep,
    KeepWithoutEvidence(String),
    Remove {
        service: String,
        last_used: Option<i64>,
        reason: String,
    },
}

fn judge(pattern: &ActionPattern, usage: &Usage, since: i64) -> Judgement {
    let Some(service) = pattern.service() else {
        return Judgement::KeepWithoutEvidence(
            "* matches services Access Advisor does not list".to_owned(),
        );
    };
    if pattern.written.eq_ignore_ascii_case("iam:PassRole") {
        return Judgement::Keep;
    }
    match usage.service_unused(service, since) {
        None => Judgement::KeepWithoutEvidence(format!(
            "Access Advisor does not list {service}: no evidence either way"
        )),
        Some(true) => Judgement::Remove {
            service: service.to_owned(),
            last_used: usage.services[service],
            reason: format!("{service} was not used in the window"),
        },
        Some(false) if pattern.is_exact() => match usage.action_unused(&pattern.written, since) {
            Some(true) => Judgement::Remove {
                service: service.to_owned(),
                last_used: usage.actions[&pattern.written.to_ascii_lowercase()],
                reason: format!(
                    "{} was not used in the window ({service} is tracked at action level)",
                    pattern.written
                ),
            },
            Some(false) | None => Judgement::Keep,
        },
        Some(false) => Judgement::Keep,
    }
}

/// Checks the guarantee: for every action the data shows used in the window, `recommended`
/// decides as `current` does, and no removed pattern matches one. Returns the first action
/// where they differ.
pub fn verify(
    current: &[&Document],
    recommended: &[&Document],
    removed: &[&Removed],
    usage: &Usage,
    since: i64,
) -> Result<(), String> {
    let checked: BTreeSet<String> = usage.used_actions(since).into_iter().collect();
    for removed in removed {
        let pattern = ActionPattern::parse(&removed.pattern)?;
        if let Some(used) = checked.iter().find(|action| pattern.matches(action)) {
            return Err(format!(
                "{} was removed but {used} was used in the window",
                removed.pattern
            ));
        }
    }
    for action in &checked {
        let (before, after) = (
            decide(current.iter().copied(), action),
            decide(recommended.iter().copied(), action),
        );
        if before != after {
            return Err(format!(
                "{action} would be {:?} where it is {:?} today",
                after.decision, before.decision
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Decision;
    use serde_json::json;

    const SINCE: i64 = 1_000;
    const RECENT: Option<i64> = Some(2_000);
    const OLD: Option<i64> = Some(500);

    fn usage() -> Usage {
        Usage {
            services: [
                ("s3".to_owned(), RECENT),
                ("ec2".to_owned(), OLD),
                ("sqs".to_owned(), None),
                ("iam".to_owned(), RECENT),
            ]
            .into(),
            actions: [
                ("s3:getobject".to_owned(), RECENT),
                ("s3:putobject".to_owned(), OLD),
                ("iam:getrole".to_owned(), RECENT),
            ]
            .into(),
        }
    }

    fn doc(value: serde_json::Value) -> Document {
        Document::parse(&value).unwrap()
    }

    #[test]
    fn unused_services_and_tracked_actions_go_the_rest_stays() {
        let current = doc(json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Work", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:List*", "ec2:*", "sqs:SendMessage", "dynamodb:GetItem", "iam:PassRole"], "Resource": "*"},
                {"Sid": "Old", "Effect": "Allow", "Action": ["ec2:Describe*", "sqs:*"], "Resource": "*"},
                {"Sid": "Guard", "Effect": "Deny", "Action": "ec2:*", "Resource": "*"},
                {"Sid": "NOREPOKeep", "Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                {"Sid": "Broad", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
            ]
        }));
        let narrowed = narrow(&current, &usage(), SINCE);
        let removed: Vec<&str> = narrowed
            .removed
            .iter()
            .map(|r| r.pattern.as_str())
            .collect();
        assert_eq!(
            removed,
            [
                "s3:PutObject",
                "ec2:*",
                "sqs:SendMessage",
                "ec2:Describe*",
                "sqs:*"
            ]
        );
        let kept = narrowed.document.clone().unwrap().to_json();
        assert_eq!(
            kept["Statement"][0]["Action"],
            json!([
                "s3:GetObject",
                "s3:List*",
                "dynamodb:GetItem",
                "iam:PassRole"
            ])
        );
        // "Old" lost every action and is dropped; the Deny, the opt-out and NotAction stay.
        let sids: Vec<&str> = kept["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["Work", "Guard", "NOREPOKeep", "Broad"]);
        let without: Vec<&str> = narrowed
            .kept_without_evidence
            .iter()
            .map(|kept| kept.pattern.as_str())
            .collect();
        assert_eq!(without, ["dynamodb:GetItem", "NotAction in Broad"]);
        let removed: Vec<&Removed> = narrowed.removed.iter().collect();
        assert_eq!(
            narrowed.removed[0].last_used.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            verify(
                &[&current],
                &[narrowed.document.as_ref().unwrap()],
                &removed,
                &usage(),
                SINCE
            ),
            Ok(())
        );
    }

    #[test]
    fn a_document_with_nothing_used_is_left_empty() {
        let current = doc(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": ["ec2:*", "sqs:*"], "Resource": "*"}
        }));
        let narrowed = narrow(&current, &usage(), SINCE);
        assert!(narrowed.changed());
        assert_eq!(narrowed.document, None);
    }

    #[test]
    fn verification_catches_a_recommendation_that_takes_away_what_was_used() {
        let current = doc(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": ["s3:*", "iam:Get*"], "Resource": "*"}
        }));
        let too_narrow = doc(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
        }));
        let error = verify(&[&current], &[&too_narrow], &[], &usage(), SINCE).unwrap_err();
        assert!(
            error.contains("iam:getrole") || error.contains("probe"),
            "{error}"
        );
        assert_eq!(
            decide(&[current], "iam:GetRole").decision,
            Decision::Allowed
        );
    }

    #[test]
    fn a_wildcard_over_everything_is_kept_for_want_of_evidence() {
        let admin = doc(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}
        }));
        let narrowed = narrow(&admin, &usage(), SINCE);
        assert!(!narrowed.changed());
        assert_eq!(narrowed.kept_without_evidence.len(), 1);
    }
}
