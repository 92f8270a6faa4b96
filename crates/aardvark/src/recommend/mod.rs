//! Least-privilege recommendations: for a role or user, the steps that take from its policies
//! what Access Advisor shows it did not use in the window (`rules` decides what goes), each
//! with the current and recommended documents and the evidence, verified before it is offered.
//! A policy several principals share (a group's, a customer-managed one attached elsewhere) is
//! narrowed only by what none of them used; an AWS-managed policy is never edited (the step is
//! a customer-managed copy of what is kept, then its detachment). Pure: it reads one account's
//! stored facts and writes nothing.

mod rules;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arn::Arn;
use crate::db::identity::{IdentityRecord, ManagedPolicy, UsageFacts};
use crate::policy::{Actions, Document};
pub use rules::{narrow, verify, KeptWithoutEvidence, Narrowed, Removed, Usage};

/// IAM's size limit of a managed policy, in characters other than white space.
pub const MANAGED_POLICY_LIMIT: usize = 6_144;

/// IAM's size limit of the inline policies of one role, user or group together.
pub fn inline_limit(owner_kind: &str) -> usize {
    match owner_kind {
        "role" => 10_240,
        "group" => 5_120,
        _ => 2_048,
    }
}

/// A document's size as IAM counts it against its limits.
pub fn iam_size(document: &Value) -> usize {
    document
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// What kind of policy a step changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Inline,
    CustomerManaged,
    AwsManaged,
}

/// A policy and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyPlace {
    /// The role, user or group it is embedded in or attached to.
    pub attached_to: String,
    /// Managed policies' ARN.
    pub arn: Option<String>,
    pub kind: PolicyKind,
    pub name: String,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepAction {
    /// Put the recommended document in place of the inline policy.
    ReplaceInlinePolicy,
    /// Delete the inline policy: nothing of it is left.
    DeleteInlinePolicy,
    /// Make the recommended document the customer-managed policy's default version.
    CreatePolicyVersion,
    /// Create a customer-managed policy named `new_policy_name` with the recommended
    /// document and attach it where the policy is attached.
    CreatePolicy,
    /// Detach the managed policy.
    DetachPolicy,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    pub action: StepAction,
    /// The document today; `null` for `CREATE_POLICY`.
    #[schema(value_type = Option<Object>)]
    pub current: Option<Value>,
    /// `CREATE_POLICY`'s name.
    pub new_policy_name: Option<String>,
    pub policy: PolicyPlace,
    /// The document to put in place; `null` for deletions and detachments.
    #[schema(value_type = Option<Object>)]
    pub recommended: Option<Value>,
    /// What the step takes away, and why.
    pub removed: Vec<Removed>,
    /// The other roles and users the change reaches (a group's members, a shared policy's
    /// holders), the first `SHARED_WITH_NAMED` in ARN order: it removes only what none of them
    /// used.
    pub shared_with: Vec<String>,
    /// How many other roles and users it reaches.
    pub shared_with_total: usize,
}

/// How many of the other holders a step names: a policy a thousand roles hold would otherwise
/// name 999 in each of their thousand recommendations.
pub const SHARED_WITH_NAMED: usize = 10;

/// A policy that gets no recommendation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unreadable {
    pub policy: PolicyPlace,
    pub reason: String,
}

/// A pattern kept for want of evidence, and in which policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeptIn {
    pub pattern: String,
    /// The policy's name.
    pub policy: String,
    pub reason: String,
}

/// The recommendation for one role or user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    pub kept_without_evidence: Vec<KeptIn>,
    pub principal: String,
    /// Why it is not offered (its verification failed); `null` when it is.
    pub rejected: Option<String>,
    /// In order; empty when nothing can be removed, or when it is not offered.
    pub steps: Vec<Step>,
    pub unreadable: Vec<Unreadable>,
    pub window_days: i64,
}

impl Recommendation {
    pub fn offered(&self) -> bool {
        self.rejected.is_none()
    }
}

/// One account's principals, policies and Access Advisor data, indexed for recommendations.
pub struct Account<'a> {
    identities: HashMap<&'a str, &'a IdentityRecord>,
    /// Inline policies (name, document) by owner ARN.
    inline: &'a HashMap<String, Vec<(String, Value)>>,
    groups_by_name: HashMap<&'a str, &'a IdentityRecord>,
    members: HashMap<&'a str, Vec<&'a str>>,
    holders: HashMap<&'a str, Vec<&'a str>>,
    managed: HashMap<&'a str, &'a ManagedPolicy>,
    usage: HashMap<&'a str, Usage>,
    since: i64,
    window_days: i64,
    /// Each policy read and narrowed once, however many principals hold it: by its
    /// document's address and, for an AWS-managed one (narrowed per attachment), its owner.
    narrowed: RefCell<HashMap<(usize, &'a str), Rc<Readable>>>,
}

/// A policy read and narrowed, or why it could not be read.
type Readable = Result<(Document, Narrowed), String>;

/// A principal's Access Advisor data as the rules read it.
pub fn usage_of(facts: &UsageFacts) -> Usage {
    let last = |ms: i64| (ms > 0).then_some(ms);
    Usage {
        services: facts
            .services
            .iter()
            .map(|(namespace, ms)| (namespace.to_ascii_lowercase(), last(*ms)))
            .collect(),
        actions: facts
            .actions
            .iter()
            .map(|(namespace, action, ms)| {
                (
                    format!("{namespace}:{action}").to_ascii_lowercase(),
                    last(*ms),
                )
            })
            .collect(),
    }
}

/// Raised when the rules come to recommend something else from the same inputs, so that
/// stored recommendations are computed again at the next evaluation.
const RULES_REVISION: &str = "1";

/// A digest of everything `Account` reads to recommend for `principals` at `since`: each
/// identity's kind, groups and attached policies; the account's `policy_references`
/// (`Database::policy_references`: what each policy is, by document digest); for each
/// service and tracked action of each principal's usage, whether it was used since `since`
/// and, when not, its last use (the evidence of a removal); the window. Recommendations of
/// equal digests are equal, so an evaluation that finds the stored digest computes nothing.
pub fn inputs_digest(
    identities: &[IdentityRecord],
    policy_references: &[(String, String)],
    usage: &[UsageFacts],
    principals: &[&str],
    since: i64,
    window_days: i64,
) -> String {
    let mut digest = crate::db::identity::FieldsDigest::default();
    digest.put(&[RULES_REVISION, &window_days.to_string()]);
    digest.put(principals);
    for identity in identities {
        digest.put(&[&identity.arn, &identity.kind]);
        digest.put_owned(&identity.groups);
        digest.put_owned(&identity.managed_policies);
    }
    for (arn, reference) in policy_references {
        digest.put(&[arn, reference]);
    }
    // A last use counts only when it is a removal's evidence: later uses of a used service
    // recommend the same.
    let evidence = |ms: i64| if ms > 0 && ms > since { -1 } else { ms };
    let mut principals_usage: Vec<&UsageFacts> = usage.iter().collect();
    principals_usage.sort_unstable_by(|a, b| a.arn.cmp(&b.arn));
    for principal in principals_usage {
        digest.put(&[&principal.arn]);
        let mut services: Vec<(&str, i64)> = principal
            .services
            .iter()
            .map(|(namespace, ms)| (namespace.as_str(), evidence(*ms)))
            .collect();
        services.sort_unstable();
        for (namespace, evidence) in services {
            digest.put(&[namespace, &evidence.to_string()]);
        }
        let mut actions: Vec<(&str, &str, i64)> = principal
            .actions
            .iter()
            .map(|(namespace, action, ms)| (namespace.as_str(), action.as_str(), evidence(*ms)))
            .collect();
        actions.sort_unstable();
        for (namespace, action, evidence) in actions {
            digest.put(&[namespace, action, &evidence.to_string()]);
        }
    }
    digest.finish()
}

fn is_aws_managed(arn: &str) -> bool {
    Arn::parse(arn).is_some_and(|arn| arn.account == "aws")
}

/// The last part of an ARN's resource: a role's, user's, group's or policy's name.
pub fn name_in_arn(arn: &str) -> &str {
    arn.rsplit(['/', ':']).next().unwrap_or(arn)
}

/// One policy of a principal's, being worked on.
struct Held<'a> {
    place: PolicyPlace,
    document: &'a Value,
    /// Whose use a change of it must keep (one principal, a group's members, a shared
    /// policy's holders).
    holders: Vec<&'a str>,
}

impl<'a> Account<'a> {
    pub fn new(
        identities: &'a [IdentityRecord],
        inline: &'a HashMap<String, Vec<(String, Value)>>,
        managed: &'a [ManagedPolicy],
        usage: &'a [UsageFacts],
        since: i64,
        window_days: i64,
    ) -> Self {
        let mut account = Self {
            identities: identities.iter().map(|i| (i.arn.as_str(), i)).collect(),
            inline,
            groups_by_name: identities
                .iter()
                .filter(|i| i.kind == "group")
                .map(|group| (name_in_arn(&group.arn), group))
                .collect(),
            members: HashMap::new(),
            holders: HashMap::new(),
            managed: managed.iter().map(|p| (p.arn.as_str(), p)).collect(),
            usage: usage
                .iter()
                .map(|u| (u.arn.as_str(), usage_of(u)))
                .collect(),
            since,
            window_days,
            narrowed: RefCell::default(),
        };
        for user in identities.iter().filter(|i| i.kind == "user") {
            for group in &user.groups {
                if let Some(group) = account.groups_by_name.get(group.as_str()) {
                    account
                        .members
                        .entry(group.arn.as_str())
                        .or_default()
                        .push(&user.arn);
                }
            }
        }
        for identity in identities {
            let reached = account.reached(identity);
            for policy in &identity.managed_policies {
                account
                    .holders
                    .entry(policy.as_str())
                    .or_default()
                    .extend(&reached);
            }
        }
        account
    }

    /// The roles and users a policy of `owner` grants permissions to: a group's members, or
    /// the role or user itself.
    fn reached(&self, owner: &'a IdentityRecord) -> Vec<&'a str> {
        if owner.kind == "group" {
            self.members
                .get(owner.arn.as_str())
                .cloned()
                .unwrap_or_default()
        } else {
            vec![owner.arn.as_str()]
        }
    }

    /// The recommendation for `principal`; `None` when its policies were not collected.
    pub fn recommend(&self, principal: &str) -> Option<Recommendation> {
        let identity = self.identities.get(principal)?;
        let mut recommendation = Recommendation {
            kept_without_evidence: Vec::new(),
            principal: principal.to_owned(),
            rejected: None,
            steps: Vec::new(),
            unreadable: Vec::new(),
            window_days: self.window_days,
        };
        let policies: Vec<(Held, Rc<Readable>)> = self
            .policies_of(identity, &mut recommendation.unreadable)
            .into_iter()
            .map(|held| {
                let readable = self.read_and_narrow(&held);
                (held, readable)
            })
            .collect();
        let (mut current, mut recommended) = (Vec::new(), Vec::new());
        for (held, readable) in &policies {
            let (document, narrowed) = match readable.as_ref() {
                Ok(read) => read,
                Err(reason) => {
                    recommendation.unreadable.push(Unreadable {
                        policy: held.place.clone(),
                        reason: reason.clone(),
                    });
                    continue;
                }
            };
            recommendation
                .kept_without_evidence
                .extend(narrowed.kept_without_evidence.iter().map(|kept| KeptIn {
                    pattern: kept.pattern.clone(),
                    policy: held.place.name.clone(),
                    reason: kept.reason.clone(),
                }));
            if narrowed.changed() {
                recommended.extend(narrowed.document.as_ref());
                recommendation.steps.extend(steps(
                    held.place.clone(),
                    held.document,
                    narrowed,
                    Shared::of(held, principal),
                ));
            } else {
                recommended.push(document);
            }
            current.push(document);
        }
        let removed: Vec<&Removed> = recommendation
            .steps
            .iter()
            .flat_map(|step| &step.removed)
            .collect();
        let no_usage = Usage::default();
        let own_usage = self.usage.get(principal).unwrap_or(&no_usage);
        let checked = verify(&current, &recommended, &removed, own_usage, self.since)
            .and_then(|()| within_limits(&recommendation.steps));
        if let Err(reason) = checked {
            recommendation.rejected = Some(reason);
            recommendation.steps.clear();
        }
        Some(recommendation)
    }

    /// The policy read, and narrowed by what its holders used.
    fn read_and_narrow(&self, held: &Held<'a>) -> Rc<Readable> {
        let owner = match held.place.kind {
            PolicyKind::AwsManaged => held.holders.first().copied().unwrap_or_default(),
            _ => "",
        };
        let key = (std::ptr::from_ref(held.document) as usize, owner);
        if let Some(done) = self.narrowed.borrow().get(&key) {
            return done.clone();
        }
        let readable = Rc::new(
            Document::parse(held.document)
                .map(|document| {
                    let usage = Usage::merged(held.holders.iter().map(|arn| self.usage.get(arn)));
                    let narrowed = narrow(&document, &usage, self.since);
                    (document, narrowed)
                })
                .map_err(|err| err.to_string()),
        );
        self.narrowed.borrow_mut().insert(key, readable.clone());
        readable
    }

    /// Every policy that grants `identity` permissions: its inline and attached managed
    /// policies and, for a user, its groups'. A managed policy whose document was not
    /// collected is recorded unreadable.
    fn policies_of(
        &self,
        identity: &'a IdentityRecord,
        unreadable: &mut Vec<Unreadable>,
    ) -> Vec<Held<'a>> {
        let mut owners = vec![identity];
        for group in &identity.groups {
            owners.extend(self.groups_by_name.get(group.as_str()));
        }
        let mut held = Vec::new();
        for owner in owners {
            let reached = self.reached(owner);
            for (name, document) in self.inline.get(&owner.arn).into_iter().flatten() {
                held.push(Held {
                    place: PolicyPlace {
                        attached_to: owner.arn.clone(),
                        arn: None,
                        kind: PolicyKind::Inline,
                        name: name.clone(),
                    },
                    document,
                    holders: reached.clone(),
                });
            }
            for arn in &owner.managed_policies {
                let aws_managed = is_aws_managed(arn);
                let place = PolicyPlace {
                    attached_to: owner.arn.clone(),
                    arn: Some(arn.clone()),
                    kind: if aws_managed {
                        PolicyKind::AwsManaged
                    } else {
                        PolicyKind::CustomerManaged
                    },
                    name: name_in_arn(arn).to_owned(),
                };
                let Some(policy) = self.managed.get(arn.as_str()) else {
                    unreadable.push(Unreadable {
                        policy: place,
                        reason: "its document was not collected".to_owned(),
                    });
                    continue;
                };
                // A copy of an AWS-managed policy replaces it where it is attached only.
                let holders = if aws_managed {
                    reached.clone()
                } else {
                    self.holders.get(arn.as_str()).cloned().unwrap_or_default()
                };
                held.push(Held {
                    place,
                    document: &policy.document,
                    holders,
                });
            }
        }
        held
    }
}

/// The other holders a step reaches: the first few named, and how many.
struct Shared {
    named: Vec<String>,
    total: usize,
}

impl Shared {
    /// The holders of `held` other than `principal`, in ARN order.
    fn of(held: &Held<'_>, principal: &str) -> Self {
        let mut others: Vec<&str> = held
            .holders
            .iter()
            .copied()
            .filter(|&holder| holder != principal)
            .collect();
        others.sort_unstable();
        others.dedup();
        Self {
            named: others
                .iter()
                .take(SHARED_WITH_NAMED)
                .map(|&holder| holder.to_owned())
                .collect(),
            total: others.len(),
        }
    }
}

/// The steps that apply one narrowed policy.
fn steps(place: PolicyPlace, current: &Value, narrowed: &Narrowed, shared: Shared) -> Vec<Step> {
    let step = |action, recommended: Option<Value>, removed: &[Removed]| Step {
        action,
        current: (action != StepAction::CreatePolicy).then(|| current.clone()),
        new_policy_name: None,
        policy: place.clone(),
        recommended,
        removed: removed.to_vec(),
        shared_with: shared.named.clone(),
        shared_with_total: shared.total,
    };
    let removed = &narrowed.removed;
    match (place.kind, &narrowed.document) {
        (PolicyKind::Inline, Some(document)) => vec![step(
            StepAction::ReplaceInlinePolicy,
            Some(document.to_json()),
            removed,
        )],
        (PolicyKind::Inline, None) => vec![step(StepAction::DeleteInlinePolicy, None, removed)],
        (PolicyKind::CustomerManaged, Some(document)) => vec![step(
            StepAction::CreatePolicyVersion,
            Some(document.to_json()),
            removed,
        )],
        (PolicyKind::AwsManaged, Some(document)) => {
            let parts = split_to_fit(document, MANAGED_POLICY_LIMIT);
            let count = parts.len();
            let mut steps: Vec<Step> = parts
                .into_iter()
                .enumerate()
                .map(|(at, part)| Step {
                    new_policy_name: Some(copy_name(&place, at, count)),
                    ..step(StepAction::CreatePolicy, Some(part.to_json()), &[])
                })
                .collect();
            steps.push(step(StepAction::DetachPolicy, None, removed));
            steps
        }
        (_, None) => vec![step(StepAction::DetachPolicy, None, removed)],
    }
}

/// The name of the customer-managed copy of an AWS-managed policy (IAM takes 128 characters).
fn copy_name(place: &PolicyPlace, part: usize, parts: usize) -> String {
    let mut name = format!(
        "{}-least-privilege-{}",
        place.name,
        name_in_arn(&place.attached_to)
    );
    name.truncate(120);
    if parts > 1 {
        name.push_str(&format!("-{}", part + 1));
    }
    name
}

/// The document as few documents as IAM's `limit` allows: statements kept whole where they
/// fit, a statement too large alone split by its actions.
pub fn split_to_fit(document: &Document, limit: usize) -> Vec<Document> {
    let size = |statements: &[crate::policy::Statement]| {
        iam_size(
            &Document {
                version: document.version.clone(),
                statements: statements.to_vec(),
            }
            .to_json(),
        )
    };
    let mut pieces = Vec::new();
    for statement in &document.statements {
        if size(std::slice::from_ref(statement)) <= limit {
            pieces.push(statement.clone());
            continue;
        }
        let Actions::Action(patterns) = &statement.actions else {
            pieces.push(statement.clone());
            continue;
        };
        let mut part: Vec<crate::policy::ActionPattern> = Vec::new();
        for pattern in patterns {
            let mut candidate = part.clone();
            candidate.push(pattern.clone());
            let with = crate::policy::Statement {
                actions: Actions::Action(candidate.clone()),
                ..statement.clone()
            };
            if !part.is_empty() && size(std::slice::from_ref(&with)) > limit {
                pieces.push(crate::policy::Statement {
                    actions: Actions::Action(std::mem::take(&mut part)),
                    ..statement.clone()
                });
                part.push(pattern.clone());
            } else {
                part = candidate;
            }
        }
        if !part.is_empty() {
            pieces.push(crate::policy::Statement {
                actions: Actions::Action(part),
                ..statement.clone()
            });
        }
    }
    let mut documents: Vec<Vec<crate::policy::Statement>> = vec![Vec::new()];
    for piece in pieces {
        let last = documents.last_mut().expect("one document at least");
        last.push(piece);
        if last.len() > 1 && size(last) > limit {
            let piece = last.pop().expect("just pushed");
            documents.push(vec![piece]);
        }
    }
    documents
        .into_iter()
        .map(|statements| Document {
            version: document.version.clone(),
            statements,
        })
        .collect()
}

/// Every recommended document within IAM's limits: a managed one within its own, an inline
/// one within what its owner's inline policies take together (a user's, the smallest, when
/// the owner's ARN does not say).
fn within_limits(steps: &[Step]) -> Result<(), String> {
    for step in steps {
        let Some(document) = &step.recommended else {
            continue;
        };
        let (limit, what) = match step.policy.kind {
            PolicyKind::Inline => (
                inline_limit(owner_kind_of(&step.policy.attached_to).unwrap_or("user")),
                "inline policies",
            ),
            _ => (MANAGED_POLICY_LIMIT, "a managed policy"),
        };
        let size = iam_size(document);
        if size > limit {
            return Err(format!(
                "the recommended {} is {size} characters, more than IAM takes for {what} ({limit})",
                step.new_policy_name.as_deref().unwrap_or(&step.policy.name)
            ));
        }
    }
    Ok(())
}

/// `role`, `user` or `group`, from an IAM ARN.
pub fn owner_kind_of(arn: &str) -> Option<&str> {
    Arn::parse(arn)?.resource.split('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 10_000_000_000;
    const SINCE: i64 = NOW - 90 * 86_400_000;
    const RECENT: i64 = NOW - 86_400_000;
    const OLD: i64 = SINCE - 86_400_000;
    const ACCOUNT: &str = "111111111111";

    fn arn(kind: &str, name: &str) -> String {
        format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
    }

    fn identity(kind: &str, name: &str) -> IdentityRecord {
        IdentityRecord {
            arn: arn(kind, name),
            kind: kind.into(),
            ..Default::default()
        }
    }

    fn inline_of(identities: &[IdentityRecord]) -> HashMap<String, Vec<(String, Value)>> {
        identities
            .iter()
            .map(|i| {
                let documents = i.inline_policies.iter();
                let decoded = documents.map(|(n, d)| (n.clone(), serde_json::from_str(d).unwrap()));
                (i.arn.clone(), decoded.collect())
            })
            .collect()
    }

    fn grant(actions: &[&str]) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
    }

    /// A document of one action, as `Document::to_json` writes it (a string, not a list).
    fn one(action: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
    }

    fn usage(kind: &str, name: &str, services: &[(&str, i64)]) -> UsageFacts {
        UsageFacts {
            arn: arn(kind, name),
            kind: kind.into(),
            services: services.iter().map(|(s, ms)| ((*s).into(), *ms)).collect(),
            ..Default::default()
        }
    }

    fn managed(arn: &str, document: Value) -> ManagedPolicy {
        ManagedPolicy {
            arn: arn.into(),
            name: name_in_arn(arn).into(),
            default_version: "v1".into(),
            document,
        }
    }

    fn actions_of(step: &Step) -> Vec<(StepAction, String)> {
        vec![(
            step.action,
            step.new_policy_name
                .clone()
                .unwrap_or_else(|| step.policy.name.clone()),
        )]
    }

    /// A user in a group with another member, an inline policy, a customer-managed policy
    /// shared with a role, an AWS-managed policy, and a policy IAM would refuse.
    fn alice_and_her_neighbours() -> (Vec<IdentityRecord>, Vec<ManagedPolicy>, Vec<UsageFacts>) {
        let shared = arn("policy", "shared");
        let aws_read_only = "arn:aws:iam::aws:policy/ReadOnlyAccess";
        let mut alice = identity("user", "alice");
        alice.groups = vec!["devs".into()];
        alice.inline_policies = vec![
            ("mine".into(), grant(&["s3:*", "sqs:*"]).to_string()),
            (
                "broken".into(),
                json!({"Statement": [{"Effect": "Maybe"}]}).to_string(),
            ),
        ];
        alice.managed_policies = vec![shared.clone(), aws_read_only.into()];
        let mut bob = identity("user", "bob");
        bob.groups = vec!["devs".into()];
        let mut devs = identity("group", "devs");
        devs.inline_policies = vec![("team".into(), grant(&["dynamodb:*", "ec2:*"]).to_string())];
        let mut ci = identity("role", "ci");
        ci.managed_policies = vec![shared.clone()];
        let identities = vec![alice, bob, devs, ci];
        let policies = vec![
            managed(&shared, grant(&["kms:*", "ec2:Describe*"])),
            managed(
                aws_read_only,
                grant(&["s3:Get*", "ec2:Describe*", "lambda:Get*"]),
            ),
        ];
        let usage = vec![
            usage(
                "user",
                "alice",
                &[
                    ("s3", RECENT),
                    ("sqs", OLD),
                    ("dynamodb", 0),
                    ("ec2", OLD),
                    ("kms", 0),
                    ("lambda", OLD),
                ],
            ),
            usage("user", "bob", &[("dynamodb", RECENT), ("ec2", OLD)]),
            usage("role", "ci", &[("kms", RECENT), ("ec2", OLD)]),
        ];
        (identities, policies, usage)
    }

    #[test]
    fn every_kind_of_policy_gets_its_step() {
        let (identities, policies, usage) = alice_and_her_neighbours();
        let inline = inline_of(&identities);
        let account = Account::new(&identities, &inline, &policies, &usage, SINCE, 90);
        let recommendation = account.recommend(&arn("user", "alice")).unwrap();
        assert_eq!(recommendation.rejected, None);
        let steps: Vec<_> = recommendation.steps.iter().flat_map(actions_of).collect();
        assert_eq!(
            steps,
            [
                (StepAction::ReplaceInlinePolicy, "mine".into()),
                // ci used kms: the shared policy keeps it, loses only ec2 (nobody used it).
                (StepAction::CreatePolicyVersion, "shared".into()),
                (
                    StepAction::CreatePolicy,
                    "ReadOnlyAccess-least-privilege-alice".into()
                ),
                (StepAction::DetachPolicy, "ReadOnlyAccess".into()),
                // bob used dynamodb: the group's policy keeps it.
                (StepAction::ReplaceInlinePolicy, "team".into()),
            ]
        );
        let document = |at: usize| recommendation.steps[at].recommended.clone().unwrap();
        assert_eq!(document(0), one("s3:*"));
        assert_eq!(document(1), one("kms:*"));
        assert_eq!(document(2), one("s3:Get*"));
        assert_eq!(document(4), one("dynamodb:*"));
        assert_eq!(recommendation.steps[1].shared_with, [arn("role", "ci")]);
        assert_eq!(recommendation.steps[4].shared_with, [arn("user", "bob")]);
        assert_eq!(
            recommendation.steps[4].policy.attached_to,
            arn("group", "devs")
        );
        let removed: Vec<&str> = recommendation.steps[3]
            .removed
            .iter()
            .map(|r| r.pattern.as_str())
            .collect();
        assert_eq!(removed, ["ec2:Describe*", "lambda:Get*"]);
        assert_eq!(recommendation.unreadable.len(), 1);
        assert_eq!(recommendation.unreadable[0].policy.name, "broken");
        assert!(
            recommendation.unreadable[0].reason.contains("Effect"),
            "{}",
            recommendation.unreadable[0].reason
        );
        // What the step's JSON looks like is the API's contract.
        let json = serde_json::to_value(&recommendation.steps[0]).unwrap();
        assert_eq!(json["action"], "REPLACE_INLINE_POLICY");
        assert_eq!(json["policy"]["kind"], "inline");
        let back: Recommendation =
            serde_json::from_value(serde_json::to_value(&recommendation).unwrap()).unwrap();
        assert_eq!(back, recommendation);
    }

    #[test]
    fn nothing_left_deletes_or_detaches() {
        let mut role = identity("role", "idle");
        let own = arn("policy", "own");
        role.inline_policies = vec![("all".into(), grant(&["ec2:*"]).to_string())];
        role.managed_policies = vec![own.clone()];
        let identities = vec![role];
        let policies = vec![managed(&own, grant(&["sqs:SendMessage"]))];
        let usage = vec![usage("role", "idle", &[("ec2", OLD), ("sqs", 0)])];
        let inline = inline_of(&identities);
        let account = Account::new(&identities, &inline, &policies, &usage, SINCE, 90);
        let recommendation = account.recommend(&arn("role", "idle")).unwrap();
        let steps: Vec<_> = recommendation.steps.iter().flat_map(actions_of).collect();
        assert_eq!(
            steps,
            [
                (StepAction::DeleteInlinePolicy, "all".into()),
                (StepAction::DetachPolicy, "own".into()),
            ]
        );
        assert!(recommendation.steps.iter().all(|s| s.recommended.is_none()));
        assert_eq!(account.recommend(&arn("role", "unknown")), None);
    }

    #[test]
    fn a_policy_many_hold_names_the_first_ten() {
        let shared = arn("policy", "everyone");
        let mut identities = Vec::new();
        let mut usage_facts = Vec::new();
        for n in 0..15 {
            let mut role = identity("role", &format!("r{n:02}"));
            role.managed_policies = vec![shared.clone()];
            identities.push(role);
            usage_facts.push(usage(
                "role",
                &format!("r{n:02}"),
                &[("s3", RECENT), ("sqs", OLD)],
            ));
        }
        let policies = vec![managed(&shared, grant(&["s3:*", "sqs:*"]))];
        let inline = inline_of(&identities);
        let account = Account::new(&identities, &inline, &policies, &usage_facts, SINCE, 90);
        let recommendation = account.recommend(&arn("role", "r07")).unwrap();
        let step = &recommendation.steps[0];
        assert_eq!(step.action, StepAction::CreatePolicyVersion);
        assert_eq!(step.shared_with_total, 14);
        let named: Vec<String> = (0..11)
            .filter(|&n| n != 7)
            .map(|n| arn("role", &format!("r{n:02}")))
            .collect();
        assert_eq!(step.shared_with, named);
    }

    #[test]
    fn a_copy_too_large_for_one_policy_is_split() {
        let actions: Vec<String> = (0..600).map(|n| format!("s3:GetObjectNumber{n}")).collect();
        let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
        let document = Document::parse(&grant(&refs)).unwrap();
        assert!(iam_size(&document.to_json()) > MANAGED_POLICY_LIMIT);
        let parts = split_to_fit(&document, MANAGED_POLICY_LIMIT);
        assert!(parts.len() >= 2, "{}", parts.len());
        let mut kept = Vec::new();
        for part in &parts {
            assert!(iam_size(&part.to_json()) <= MANAGED_POLICY_LIMIT);
            for statement in &part.statements {
                let Actions::Action(patterns) = &statement.actions else {
                    panic!("an Action statement")
                };
                kept.extend(patterns.iter().map(|p| p.written.clone()));
            }
        }
        assert_eq!(kept, actions);
    }

    #[test]
    fn a_recommendation_over_an_inline_limit_is_not_offered() {
        // A user's inline policies take 2,048 characters: a document already over it stays
        // over it when narrowed, and the recommendation says so instead of offering it.
        let mut actions: Vec<String> = (0..200).map(|n| format!("s3:GetThing{n}")).collect();
        actions.push("sqs:*".into());
        let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
        let mut user = identity("user", "big");
        user.inline_policies = vec![("big".into(), grant(&refs).to_string())];
        let identities = vec![user];
        let usage = vec![usage("user", "big", &[("s3", RECENT), ("sqs", OLD)])];
        let inline = inline_of(&identities);
        let account = Account::new(&identities, &inline, &[], &usage, SINCE, 90);
        let recommendation = account.recommend(&arn("user", "big")).unwrap();
        assert!(recommendation.steps.is_empty());
        let reason = recommendation.rejected.unwrap();
        assert!(reason.contains("2048"), "{reason}");
    }

    /// The digest moves with every input the rules read, and only with those.
    #[test]
    fn inputs_digest_follows_what_the_rules_read() {
        let role = arn("role", "r");
        let identities = vec![IdentityRecord {
            managed_policies: vec![arn("policy", "shared")],
            ..identity("role", "r")
        }];
        let references = vec![
            (role.clone(), r#"{"access":"d1"}"#.to_owned()),
            (arn("policy", "shared"), "shared v1 d2".to_owned()),
        ];
        let used = vec![usage("role", "r", &[("s3", RECENT), ("ec2", OLD)])];
        let principals = [role.as_str()];
        let digest = |identities: &[IdentityRecord],
                      references: &[(String, String)],
                      usage: &[UsageFacts],
                      principals: &[&str],
                      since: i64,
                      days: i64| {
            inputs_digest(identities, references, usage, principals, since, days)
        };
        let base = digest(&identities, &references, &used, &principals, SINCE, 90);
        assert_eq!(
            base,
            digest(&identities, &references, &used, &principals, SINCE, 90)
        );
        // A used service used again, the window moving past nothing: the same.
        let later = vec![usage("role", "r", &[("s3", RECENT + 1), ("ec2", OLD)])];
        assert_eq!(
            base,
            digest(&identities, &references, &later, &principals, SINCE + 1, 90)
        );
        let mut changed_policy = references.clone();
        changed_policy[1].1 = "shared v2 d3".into();
        let mut detached = identities.clone();
        detached[0].managed_policies.clear();
        let unused_again = vec![usage("role", "r", &[("s3", RECENT), ("ec2", OLD + 1)])];
        let now_unused = vec![usage("role", "r", &[("s3", RECENT), ("ec2", OLD)])];
        for other in [
            digest(&identities, &changed_policy, &used, &principals, SINCE, 90),
            digest(&detached, &references, &used, &principals, SINCE, 90),
            digest(
                &identities,
                &references,
                &unused_again,
                &principals,
                SINCE,
                90,
            ),
            // s3 falls out of the window.
            digest(
                &identities,
                &references,
                &now_unused,
                &principals,
                RECENT + 1,
                90,
            ),
            digest(&identities, &references, &used, &[], SINCE, 90),
            digest(&identities, &references, &used, &principals, SINCE, 30),
        ] {
            assert_ne!(base, other);
        }
    }
}
