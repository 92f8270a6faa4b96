//! IAM's write calls on policies, in AWS's shapes, changing the account's `PolicyBook`:
//! `Put{Role,User,Group}Policy`, `Delete{Role,User,Group}Policy`, `CreatePolicy`,
//! `CreatePolicyVersion`, `Attach{Role,User,Group}Policy` and `Detach{Role,User,Group}Policy`.
//! What a least-privilege recommendation's commands call.

use std::collections::HashMap;

use axum::http::StatusCode;

use crate::iam::error;
use crate::policy_book::PolicyBook;
use crate::reply::Reply;
use crate::scenario::PrincipalKind;
use crate::state::{AccountState, SimState};
use crate::xml::{self, Xml};

/// The principal kind a write call names (`Role` in `PutRolePolicy`) and what it does.
fn parse(action: &str) -> Option<(&'static str, PrincipalKind, &'static str)> {
    let kinds = [
        ("Role", PrincipalKind::Role),
        ("User", PrincipalKind::User),
        ("Group", PrincipalKind::Group),
    ];
    for verb in ["Put", "Delete", "Attach", "Detach"] {
        for (word, kind) in kinds {
            if action == format!("{verb}{word}Policy") {
                return Some((verb, kind, word));
            }
        }
    }
    None
}

/// Answers a write call on policies, or `None` when `action` is not one.
pub(crate) fn handle(
    state: &SimState,
    account: &AccountState,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Option<Reply> {
    let on = parse(action);
    if on.is_none() && action != "CreatePolicy" && action != "CreatePolicyVersion" {
        return None;
    }
    let mut book = account.policies.lock().unwrap();
    let answer = match (action, on) {
        ("CreatePolicy", _) => create_policy(state, account, &mut book, params),
        ("CreatePolicyVersion", _) => create_version(&mut book, params),
        (_, Some((verb, kind, word))) => {
            on_principal(account, &mut book, params, verb, kind, word).map(|()| String::new())
        }
        (_, None) => unreachable!("not a write call: returned above"),
    };
    Some(match answer {
        Ok(result) => Reply::xml(
            StatusCode::OK,
            xml::response(xml::IAM_NAMESPACE, action, request_id, &result),
        ),
        Err((status, code, message)) => error(status, code, &message, request_id),
    })
}

type Refusal = (StatusCode, &'static str, String);

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Refusal> {
    params.get(name).map(String::as_str).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

fn no_such_entity(message: String) -> Refusal {
    (StatusCode::NOT_FOUND, "NoSuchEntity", message)
}

fn valid_document(document: &str) -> Result<(), Refusal> {
    match serde_json::from_str::<serde_json::Value>(document) {
        Ok(value) if value.is_object() => Ok(()),
        _ => Err((
            StatusCode::BAD_REQUEST,
            "MalformedPolicyDocument",
            "Syntax errors in policy.".into(),
        )),
    }
}

/// A managed policy's name from its ARN, when the book has it.
fn policy_name<'a>(book: &PolicyBook, arn: &'a str) -> Result<&'a str, Refusal> {
    let name = arn.rsplit('/').next().unwrap_or(arn);
    if book.managed.contains_key(name) {
        Ok(name)
    } else {
        Err(no_such_entity(format!(
            "Policy {arn} does not exist or is not attachable."
        )))
    }
}

fn on_principal(
    account: &AccountState,
    book: &mut PolicyBook,
    params: &HashMap<String, String>,
    verb: &str,
    kind: PrincipalKind,
    word: &str,
) -> Result<(), Refusal> {
    let name = required(params, &format!("{word}Name"))?;
    let index = account
        .account
        .principals
        .iter()
        .position(|p| p.kind == kind && p.name == name)
        .ok_or_else(|| {
            no_such_entity(format!(
                "The {} with name {name} cannot be found.",
                word.to_lowercase()
            ))
        })?;
    match verb {
        "Put" | "Delete" => {
            let policy = required(params, "PolicyName")?;
            let inline = book.inline.entry(index).or_default();
            let at = inline.iter().position(|(n, _)| n == policy);
            if verb == "Put" {
                let document = required(params, "PolicyDocument")?;
                valid_document(document)?;
                match at {
                    Some(at) => inline[at].1 = document.to_owned(),
                    None => inline.push((policy.to_owned(), document.to_owned())),
                }
            } else {
                let at = at.ok_or_else(|| {
                    no_such_entity(format!(
                        "The {} policy with name {policy} cannot be found.",
                        word.to_lowercase()
                    ))
                })?;
                inline.remove(at);
            }
        }
        _ => {
            let arn = required(params, "PolicyArn")?;
            let policy = policy_name(book, arn)?.to_owned();
            let attached = book.attached.entry(index).or_default();
            let at = attached.iter().position(|n| *n == policy);
            match (verb, at) {
                ("Attach", None) => attached.push(policy),
                ("Attach", Some(_)) => {}
                (_, Some(at)) => {
                    attached.remove(at);
                }
                (_, None) => return Err(no_such_entity(format!("Policy {arn} was not found."))),
            }
        }
    }
    Ok(())
}

fn create_policy(
    state: &SimState,
    account: &AccountState,
    book: &mut PolicyBook,
    params: &HashMap<String, String>,
) -> Result<String, Refusal> {
    let name = required(params, "PolicyName")?;
    let document = required(params, "PolicyDocument")?;
    valid_document(document)?;
    if book.managed.contains_key(name) {
        return Err((
            StatusCode::CONFLICT,
            "EntityAlreadyExists",
            format!("A policy called {name} already exists. Duplicate names are not allowed."),
        ));
    }
    book.managed.insert(name.to_owned(), document.to_owned());
    book.created.push(name.to_owned());
    let arn =
        crate::identity::managed_policy_arn(&state.scenario.partition, &account.account.id, name);
    let mut result = Xml::default();
    result
        .open("Policy")
        .element("PolicyName", name)
        .element("Arn", arn)
        .element("DefaultVersionId", "v1")
        .element("AttachmentCount", 0)
        .element("IsAttachable", true)
        .close("Policy");
    Ok(result.0)
}

fn create_version(
    book: &mut PolicyBook,
    params: &HashMap<String, String>,
) -> Result<String, Refusal> {
    let arn = required(params, "PolicyArn")?;
    let document = required(params, "PolicyDocument")?;
    valid_document(document)?;
    let name = policy_name(book, arn)?.to_owned();
    let version = {
        let version = book.versions.entry(name.clone()).or_insert(1);
        *version += 1;
        *version
    };
    let default = params.get("SetAsDefault").is_some_and(|v| v == "true");
    if default {
        book.managed.insert(name, document.to_owned());
    }
    let mut result = Xml::default();
    result
        .open("PolicyVersion")
        .element("VersionId", format!("v{version}"))
        .element("IsDefaultVersion", default)
        .close("PolicyVersion");
    Ok(result.0)
}
