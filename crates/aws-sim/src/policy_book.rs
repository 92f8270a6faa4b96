//! An account's policies as IAM holds them, changeable through IAM's write calls: each role's,
//! user's and group's inline policies and attached managed policies, and each managed policy's
//! default document; and an evaluator of our own (Allow/Deny, `Action`/`NotAction`, `*` and
//! `?` globbing, case-insensitive), independent of aardvark's, that says whether a set of
//! documents allows an action. With `Scenario::access_advisor_follows_policies`, Access Advisor
//! lists only the services a principal's policies allow, as AWS does.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::identity;
use crate::scenario::{PrincipalKind, ResolvedPrincipal};

#[derive(Debug, Default)]
pub(crate) struct PolicyBook {
    /// Inline policies (name, document) by principal index.
    pub inline: HashMap<usize, Vec<(String, String)>>,
    /// Names of attached managed policies by principal index.
    pub attached: HashMap<usize, Vec<String>>,
    /// Each managed policy's default document, by name: the scenario's, AWS's `SecurityAudit`,
    /// then those `CreatePolicy` made.
    pub managed: BTreeMap<String, String>,
    /// Versions of each managed policy made so far (1 at the start).
    pub versions: HashMap<String, u32>,
    /// Names `CreatePolicy` made, in order.
    pub created: Vec<String>,
}

impl PolicyBook {
    pub fn new(principals: &[ResolvedPrincipal]) -> Self {
        let mut book = Self::default();
        book.managed.insert(
            identity::AUDIT_POLICY.into(),
            identity::AUDIT_DOCUMENT.into(),
        );
        for (index, principal) in principals.iter().enumerate() {
            if principal.kind == PrincipalKind::Policy {
                if let Some((_, document)) = principal.policies.first() {
                    book.managed
                        .insert(principal.name.clone(), document.clone());
                }
                continue;
            }
            book.inline.insert(index, principal.policies.clone());
            book.attached
                .insert(index, principal.identity.managed_policies.clone());
        }
        book
    }

    /// How many principals have `policy` attached.
    pub fn attachments(&self, policy: &str) -> usize {
        self.attached
            .values()
            .filter(|names| names.iter().any(|name| name == policy))
            .count()
    }

    /// Every document that grants principal `index` permissions: its inline and attached
    /// policies and, for a user, its groups'.
    pub fn effective(&self, principals: &[ResolvedPrincipal], index: usize) -> Vec<String> {
        let mut owners = vec![index];
        if principals[index].kind == PrincipalKind::User {
            for group in &principals[index].identity.groups {
                owners.extend(
                    principals
                        .iter()
                        .position(|p| p.kind == PrincipalKind::Group && p.name == *group),
                );
            }
        }
        let mut documents = Vec::new();
        for owner in owners {
            for (_, document) in self.inline.get(&owner).into_iter().flatten() {
                documents.push(document.clone());
            }
            for name in self.attached.get(&owner).into_iter().flatten() {
                documents.extend(self.managed.get(name).cloned());
            }
        }
        documents
    }
}

/// Whether `documents` together allow `action` (`service:Name`): some `Allow` statement
/// matches it and no `Deny` statement does. Conditions and resources are not looked at.
pub fn allows(documents: &[String], action: &str) -> bool {
    let mut allowed = false;
    for document in documents {
        let Ok(document) = serde_json::from_str::<Value>(document) else {
            continue;
        };
        let statements = match &document["Statement"] {
            Value::Array(statements) => statements.iter().collect(),
            statement @ Value::Object(_) => vec![statement],
            _ => Vec::new(),
        };
        for statement in statements {
            let any_matches = |key: &str| match &statement[key] {
                Value::String(pattern) => matches(pattern, action),
                Value::Array(patterns) => patterns
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|pattern| matches(pattern, action)),
                _ => false,
            };
            let hit = if statement.get("Action").is_some() {
                any_matches("Action")
            } else {
                statement.get("NotAction").is_some() && !any_matches("NotAction")
            };
            match (hit, statement["Effect"].as_str()) {
                (true, Some("Deny")) => return false,
                (true, Some("Allow")) => allowed = true,
                _ => {}
            }
        }
    }
    allowed
}

/// IAM's matching of an action pattern: `*` alone is everything; otherwise the service
/// prefixes are equal and the names match with `*` and `?`, both case-insensitive.
fn matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (Some((service, name)), Some((their_service, their_name))) =
        (pattern.split_once(':'), action.split_once(':'))
    else {
        return false;
    };
    service.eq_ignore_ascii_case(their_service)
        && glob(
            name.to_ascii_lowercase().as_bytes(),
            their_name.to_ascii_lowercase().as_bytes(),
        )
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((&c, rest)) => text
            .split_first()
            .is_some_and(|(&t, text)| (c == b'?' || c == t) && glob(rest, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_deny_and_globs() {
        let allow = r#"{"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "EC2:*"], "Resource": "*"}]}"#.to_owned();
        let deny =
            r#"{"Statement": {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}}"#
                .to_owned();
        let not = r#"{"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}"#
            .to_owned();
        assert!(allows(std::slice::from_ref(&allow), "s3:getobjectacl"));
        assert!(allows(std::slice::from_ref(&allow), "ec2:RunInstances"));
        assert!(!allows(std::slice::from_ref(&allow), "s3:PutObject"));
        assert!(!allows(&[allow.clone(), deny], "s3:GetObject"));
        assert!(allows(std::slice::from_ref(&not), "sqs:SendMessage"));
        assert!(!allows(&[not], "iam:GetRole"));
        assert!(matches("ec2:Describe?pcs", "ec2:DescribeVpcs"));
        assert!(!matches("s3:Get*", "s3express:GetObject"));
    }
}
