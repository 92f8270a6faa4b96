//! Least-privilege rules over one policy document (issue 26, in progress: the steps, storage,
//! API and CLI are not built yet). What a principal's Access Advisor data shows unused in the
//! window is removed from the document's `Allow` statements; everything without evidence is
//! kept and said so; the result is verified with the policy evaluator before it is offered.
//! Pure: no storage, no I/O.

use std::collections::{BTreeMap, BTreeSet};

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

/// One action pattern taken out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub pattern: String,
    pub statement: Option<String>,
    pub reason: String,
}

/// What the rules make of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Narrowed {
    /// The document with what was removed taken out; `None` when no statement is left.
    pub document: Option<Document>,
    pub removed: Vec<Removed>,
    /// Patterns kept for want of evidence, with why.
    pub kept_without_evidence: Vec<(String, String)>,
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
                kept_without_evidence.push((
                    format!("NotAction in {}", sid_or_index(statement, statements.len())),
                    "NotAction cannot be narrowed without the full action catalogue".to_owned(),
                ));
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
                Judgement::Remove(reason) => removed.push(Removed {
                    pattern: pattern.written.clone(),
                    statement: statement.sid.clone(),
                    reason,
                }),
                Judgement::KeepWithoutEvidence(reason) => {
                    kept_without_evidence.push((pattern.written.clone(), reason));
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
    Remove(String),
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
        Some(true) => Judgement::Remove(format!("{service} was not used in the window")),
        Some(false) if pattern.is_exact() => match usage.action_unused(&pattern.written, since) {
            Some(true) => Judgement::Remove(format!(
                "{} was not used in the window ({service} is tracked at action level)",
                pattern.written
            )),
            Some(false) => Judgement::Keep,
            None => Judgement::Keep,
        },
        Some(false) => Judgement::Keep,
    }
}

/// Checks the guarantee: for every action the data shows used in the window, `recommended`
/// decides as `current` does. Returns the first action where they differ.
pub fn verify(
    current: &[Document],
    recommended: &[Document],
    usage: &Usage,
    since: i64,
) -> Result<(), String> {
    let checked: BTreeSet<String> = usage.used_actions(since).into_iter().collect();
    for action in &checked {
        let (before, after) = (decide(current, action), decide(recommended, action));
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
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(without, ["dynamodb:GetItem", "NotAction in Broad"]);
        assert_eq!(
            verify(&[current], &[narrowed.document.unwrap()], &usage(), SINCE),
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
        let error = verify(
            std::slice::from_ref(&current),
            &[too_narrow],
            &usage(),
            SINCE,
        )
        .unwrap_err();
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
