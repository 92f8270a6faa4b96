//! IAM identity-based policy documents as least-privilege recommendations read them: IAM's
//! grammar (one `Version`, `Statement` as one object or an array, `Sid`, `Effect`, `Action` or
//! `NotAction`, `Resource` or `NotResource`, `Condition`), action patterns matched as IAM
//! matches them (service prefix and action name case-insensitive, `*` and `?` globbing within
//! the name), and the decision a set of policies gives one action, with conditions and
//! resources other than `*` treated as possibly true. A document outside the grammar is an
//! error naming what is wrong: nothing is guessed. Pure: no storage, no I/O.

use std::collections::BTreeSet;

use serde_json::Value;

/// Why a document cannot be read as an identity-based policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not a JSON object")]
    NotAnObject,
    #[error("the policy has no Statement")]
    NoStatement,
    #[error("Version {0:?} is not 2012-10-17 or 2008-10-17")]
    Version(String),
    #[error("the policy has an element {0:?} that identity-based policies do not take")]
    UnknownElement(String),
    #[error("statement {statement}: {problem}")]
    Statement { statement: usize, problem: String },
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Allow,
    Deny,
}

/// One action pattern as written (`*`, `s3:*`, `s3:Get*`, `iam:PassRole`), lower-cased for
/// matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPattern {
    pub written: String,
    /// `None` for `*` (every action of every service).
    service: Option<String>,
    name: String,
}

impl ActionPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self {
                written: text.to_owned(),
                service: None,
                name: "*".into(),
            });
        }
        let Some((service, name)) = text.split_once(':') else {
            return Err(format!("action {text:?} is not service:action or *"));
        };
        let service_ok = !service.is_empty()
            && service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"*?-_".contains(&b));
        if !service_ok || !name_ok {
            return Err(format!("action {text:?} is not service:action or *"));
        }
        Ok(Self {
            written: text.to_owned(),
            service: Some(service.to_ascii_lowercase()),
            name: name.to_ascii_lowercase(),
        })
    }

    /// The service prefix it names (lower-cased), `None` for `*`.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Whether it names one action, without a wildcard.
    pub fn is_exact(&self) -> bool {
        self.service.is_some() && !self.name.contains(['*', '?'])
    }

    /// Whether it matches `action` (`service:Name`), as IAM matches.
    pub fn matches(&self, action: &str) -> bool {
        let Some(service) = &self.service else {
            return true;
        };
        let Some((their_service, their_name)) = action.split_once(':') else {
            return false;
        };
        their_service.eq_ignore_ascii_case(service)
            && glob(
                self.name.as_bytes(),
                their_name.to_ascii_lowercase().as_bytes(),
            )
    }

    /// Whether it may match some action of `service` (lower-cased).
    pub fn may_match_service(&self, service: &str) -> bool {
        self.service.as_deref().is_none_or(|own| own == service)
    }
}

/// `*` (any run) and `?` (any one character) matching, iterative with one backtrack point.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// `Action` or `NotAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actions {
    Action(Vec<ActionPattern>),
    NotAction(Vec<ActionPattern>),
}

/// One statement; its resources and condition kept as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub actions: Actions,
    /// `("Resource" | "NotResource", value)`.
    pub resource: (String, Value),
    pub condition: Option<Value>,
}

impl Statement {
    pub fn matches(&self, action: &str) -> bool {
        match &self.actions {
            Actions::Action(patterns) => patterns.iter().any(|p| p.matches(action)),
            Actions::NotAction(patterns) => !patterns.iter().any(|p| p.matches(action)),
        }
    }

    /// Whether it applies to every request for a matching action: no condition, and
    /// `Resource` holding `*`.
    fn unconditional(&self) -> bool {
        let every_resource = self.resource.0 == "Resource"
            && match &self.resource.1 {
                Value::String(s) => s == "*",
                Value::Array(items) => items.iter().any(|v| v.as_str() == Some("*")),
                _ => false,
            };
        every_resource && self.condition.is_none()
    }

    /// The resources and condition it applies to, as one comparable text.
    fn scope(&self) -> String {
        // The common case, written without building and serializing a value (a verification
        // asks it of every matching statement for every action used).
        if self.resource.0 == "Resource" && self.resource.1 == "*" && self.condition.is_none() {
            return r#"["Resource","*",null]"#.to_owned();
        }
        serde_json::json!([self.resource.0, self.resource.1, self.condition]).to_string()
    }
}

/// A policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub version: Option<String>,
    pub statements: Vec<Statement>,
}

/// A string or an array of strings (IAM takes either wherever a list is allowed).
fn strings(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

impl Document {
    pub fn parse(document: &Value) -> Result<Self, PolicyError> {
        let object = document.as_object().ok_or(PolicyError::NotAnObject)?;
        let mut version = None;
        let mut statements = None;
        for (key, value) in object {
            match key.as_str() {
                "Version" => match value.as_str() {
                    Some(v @ ("2012-10-17" | "2008-10-17")) => version = Some(v.to_owned()),
                    _ => return Err(PolicyError::Version(value.to_string())),
                },
                "Id" => {}
                "Statement" => statements = Some(value),
                other => return Err(PolicyError::UnknownElement(other.to_owned())),
            }
        }
        let statements = match statements.ok_or(PolicyError::NoStatement)? {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            one @ Value::Object(_) => vec![one],
            _ => return Err(PolicyError::NoStatement),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(at, statement)| {
                parse_statement(statement).map_err(|problem| PolicyError::Statement {
                    statement: at + 1,
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            version,
            statements,
        })
    }

    /// The document as IAM takes it: `Version` first, then `Statement` as an array.
    pub fn to_json(&self) -> Value {
        let statements: Vec<Value> = self.statements.iter().map(statement_json).collect();
        let mut object = serde_json::Map::new();
        if let Some(version) = &self.version {
            object.insert("Version".into(), Value::String(version.clone()));
        }
        object.insert("Statement".into(), Value::Array(statements));
        Value::Object(object)
    }
}

fn parse_statement(statement: &Value) -> Result<Statement, String> {
    let object = statement.as_object().ok_or("it is not an object")?;
    let (mut sid, mut effect, mut actions, mut resource, mut condition) =
        (None, None, None, None, None);
    for (key, value) in object {
        match key.as_str() {
            "Sid" => sid = Some(value.as_str().ok_or("Sid is not a string")?.to_owned()),
            "Effect" => {
                effect = Some(match value.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return Err(format!("Effect {value} is not Allow or Deny")),
                })
            }
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err("it has both Action and NotAction".into());
                }
                let patterns = strings(value)
                    .ok_or_else(|| format!("{key} is not a string or a list of strings"))?
                    .into_iter()
                    .map(ActionPattern::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                actions = Some(if key == "Action" {
                    Actions::Action(patterns)
                } else {
                    Actions::NotAction(patterns)
                });
            }
            "Resource" | "NotResource" => {
                if resource.is_some() {
                    return Err("it has both Resource and NotResource".into());
                }
                strings(value)
                    .ok_or_else(|| format!("{key} is not a string or a list of strings"))?;
                resource = Some((key.clone(), value.clone()));
            }
            "Condition" => {
                if !value.is_object() {
                    return Err("Condition is not an object".into());
                }
                condition = Some(value.clone());
            }
            other => {
                return Err(format!(
                    "it has an element {other:?} identity-based policies do not take"
                ))
            }
        }
    }
    Ok(Statement {
        sid,
        effect: effect.ok_or("it has no Effect")?,
        actions: actions.ok_or("it has no Action or NotAction")?,
        resource: resource.ok_or("it has no Resource or NotResource")?,
        condition,
    })
}

fn statement_json(statement: &Statement) -> Value {
    let mut object = serde_json::Map::new();
    if let Some(sid) = &statement.sid {
        object.insert("Sid".into(), Value::String(sid.clone()));
    }
    let effect = match statement.effect {
        Effect::Allow => "Allow",
        Effect::Deny => "Deny",
    };
    object.insert("Effect".into(), Value::String(effect.into()));
    let (key, patterns) = match &statement.actions {
        Actions::Action(p) => ("Action", p),
        Actions::NotAction(p) => ("NotAction", p),
    };
    let written: Vec<Value> = patterns
        .iter()
        .map(|p| Value::String(p.written.clone()))
        .collect();
    object.insert(
        key.into(),
        match written.as_slice() {
            [one] => one.clone(),
            _ => Value::Array(written),
        },
    );
    object.insert(statement.resource.0.clone(), statement.resource.1.clone());
    if let Some(condition) = &statement.condition {
        object.insert("Condition".into(), condition.clone());
    }
    Value::Object(object)
}

/// What a set of policies decides for one action, over every resource and condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// No statement allows it: implicitly denied.
    NotAllowed,
    /// Allowed for some resources or conditions, or denied for some.
    Partly,
    /// Allowed for every resource, whatever the condition, and denied for none.
    Allowed,
    /// Denied for every resource, whatever the condition.
    Denied,
}

/// The decision, with the scopes (resources and condition) of the statements that match: two
/// sets of policies treat an action alike exactly when these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub allowed_in: BTreeSet<String>,
    pub denied_in: BTreeSet<String>,
}

/// What `policies` together decide for `action` (`service:Name`).
pub fn decide<'a>(policies: impl IntoIterator<Item = &'a Document>, action: &str) -> Verdict {
    let mut verdict = Verdict {
        decision: Decision::NotAllowed,
        allowed_in: BTreeSet::new(),
        denied_in: BTreeSet::new(),
    };
    let (mut allowed_everywhere, mut denied_everywhere) = (false, false);
    for statement in policies
        .into_iter()
        .flat_map(|p| &p.statements)
        .filter(|s| s.matches(action))
    {
        let everywhere = statement.unconditional();
        match statement.effect {
            Effect::Allow => {
                allowed_everywhere |= everywhere;
                verdict.allowed_in.insert(statement.scope());
            }
            Effect::Deny => {
                denied_everywhere |= everywhere;
                verdict.denied_in.insert(statement.scope());
            }
        }
    }
    verdict.decision = if denied_everywhere {
        Decision::Denied
    } else if allowed_everywhere && verdict.denied_in.is_empty() {
        Decision::Allowed
    } else if verdict.allowed_in.is_empty() {
        Decision::NotAllowed
    } else {
        Decision::Partly
    };
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(document: Value) -> Document {
        Document::parse(&document).unwrap()
    }

    fn decision(policies: &[&Document], action: &str) -> Decision {
        decide(policies.iter().copied(), action).decision
    }

    #[test]
    fn patterns_match_as_iam_matches() {
        let p = |text| ActionPattern::parse(text).unwrap();
        assert!(p("*").matches("s3:GetObject"));
        assert!(p("s3:*").matches("S3:getobject"));
        assert!(p("S3:Get*").matches("s3:GetObjectAcl"));
        assert!(!p("s3:Get*").matches("s3:PutObject"));
        assert!(!p("s3:Get*").matches("s3express:GetObject"));
        assert!(p("iam:*Report").matches("iam:GenerateCredentialReport"));
        assert!(p("ec2:Describe?pcs").matches("ec2:DescribeVpcs"));
        assert!(!p("ec2:Describe?pcs").matches("ec2:DescribeVvpcs"));
        assert!(p("ec2:*Vpc*").matches("ec2:CreateVpcEndpoint"));
        assert!(p("iam:PassRole").is_exact());
        assert!(!p("iam:Pass*").is_exact());
        assert!(!p("*").is_exact());
        for bad in [
            "s3",
            ":GetObject",
            "s3:",
            "s3:Get Object",
            "s3:Get/Object",
            "",
        ] {
            assert!(ActionPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The IAM User Guide's example of explicit and implicit denies: `AllowGetList` allows
    /// `iam:Get*` and `iam:List*`, `DenyReports` denies `iam:*Report`.
    #[test]
    fn the_user_guides_explicit_and_implicit_denies() {
        let guide = policy(json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "AllowGetList", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
                {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"}
            ]
        }));
        assert_eq!(decision(&[&guide], "iam:GetUser"), Decision::Allowed);
        assert_eq!(decision(&[&guide], "iam:ListRoles"), Decision::Allowed);
        assert_eq!(
            decision(&[&guide], "iam:CreatePolicy"),
            Decision::NotAllowed,
            "implicitly denied"
        );
        assert_eq!(
            decision(&[&guide], "iam:GetOrganizationsAccessReport"),
            Decision::Denied
        );
        // Another policy granting the reports does not lift the explicit deny.
        let reports = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "iam:GenerateCredentialReport", "Resource": "*"}
        }));
        assert_eq!(
            decision(&[&guide, &reports], "iam:GenerateCredentialReport"),
            Decision::Denied
        );
        assert_eq!(
            decision(&[&reports], "iam:GenerateCredentialReport"),
            Decision::Allowed
        );
    }

    /// The User Guide's `NotAction` examples: allow everything but IAM; deny everything but
    /// IAM (an allow elsewhere lifts nothing it denies).
    #[test]
    fn not_action_matches_every_action_it_does_not_name() {
        let all_but_iam = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
        }));
        assert_eq!(decision(&[&all_but_iam], "s3:GetObject"), Decision::Allowed);
        assert_eq!(
            decision(&[&all_but_iam], "iam:CreateUser"),
            Decision::NotAllowed
        );
        let deny_all_but_iam = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}
        }));
        let admin = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}
        }));
        assert_eq!(
            decision(&[&admin, &deny_all_but_iam], "s3:GetObject"),
            Decision::Denied
        );
        assert_eq!(
            decision(&[&admin, &deny_all_but_iam], "iam:CreateUser"),
            Decision::Allowed
        );
    }

    #[test]
    fn conditions_and_resources_are_possibly_true() {
        let conditional = policy(json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::logs/*"},
                {"Effect": "Allow", "Action": "ec2:*", "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
                {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "arn:aws:sqs:*:*:prod-*"}
            ]
        }));
        let one = std::slice::from_ref(&conditional);
        let one_ref = [&conditional];
        assert_eq!(decision(&one_ref, "s3:GetObject"), Decision::Partly);
        assert_eq!(decision(&one_ref, "ec2:RunInstances"), Decision::Partly);
        assert_eq!(decision(&one_ref, "sqs:SendMessage"), Decision::Allowed);
        assert_eq!(decision(&one_ref, "sqs:DeleteQueue"), Decision::Partly);
        // The same decision in other scopes is another verdict.
        let elsewhere = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}
        }));
        assert_eq!(decision(&[&elsewhere], "s3:GetObject"), Decision::Partly);
        assert_ne!(
            decide(one, "s3:GetObject"),
            decide(&[elsewhere], "s3:GetObject")
        );
    }

    #[test]
    fn documents_outside_the_grammar_are_refused_with_the_reason() {
        let refused = |document: Value| Document::parse(&document).unwrap_err().to_string();
        assert_eq!(refused(json!([1])), "the policy is not a JSON object");
        assert_eq!(
            refused(json!({"Version": "2012-10-17"})),
            "the policy has no Statement"
        );
        assert!(refused(json!({"Version": "2020-01-01", "Statement": []})).contains("2020-01-01"));
        assert!(refused(json!({"Statement": [], "Principal": "*"})).contains("Principal"));
        let statement = |s: Value| refused(json!({"Version": "2012-10-17", "Statement": [s]}));
        assert_eq!(
            statement(json!({"Action": "s3:*", "Resource": "*"})),
            "statement 1: it has no Effect"
        );
        assert!(
            statement(json!({"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}))
                .contains("is not Allow or Deny")
        );
        assert!(statement(
            json!({"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"})
        )
        .contains("both Action and NotAction"));
        assert!(
            statement(json!({"Effect": "Allow", "Action": "s3", "Resource": "*"}))
                .contains("not service:action")
        );
        assert!(statement(json!({"Effect": "Allow", "Action": "s3:*"})).contains("no Resource"));
        assert!(
            statement(json!({"Effect": "Allow", "Action": [], "Resource": "*"}))
                .contains("not a string or a list")
        );
        assert!(statement(
            json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": {"AWS": "*"}})
        )
        .contains("\"Principal\""));
    }

    #[test]
    fn a_document_reads_back_as_iam_takes_it() {
        let original = json!({
            "Version": "2012-10-17",
            "Statement": {"Sid": "One", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::b/*"], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
        });
        let document = policy(original);
        let written = document.to_json();
        assert_eq!(written["Version"], "2012-10-17");
        assert!(written["Statement"].is_array());
        assert_eq!(Document::parse(&written).unwrap(), document);
    }

    #[test]
    fn the_scope_of_every_resource_is_written_as_json_writes_it() {
        let statement = Statement {
            sid: None,
            effect: Effect::Allow,
            actions: Actions::Action(Vec::new()),
            resource: ("Resource".into(), json!("*")),
            condition: None,
        };
        assert_eq!(
            statement.scope(),
            json!([
                statement.resource.0,
                statement.resource.1,
                statement.condition
            ])
            .to_string()
        );
    }
}
