//! IAM's identity calls, in AWS's shapes: `GetAccountAuthorizationDetails` (`Filter`,
//! `MaxItems`, `Marker`; policy documents URL-encoded, as AWS sends them),
//! `GenerateCredentialReport` / `GetCredentialReport` (`STARTED`, then `COMPLETE`; the CSV in
//! AWS's columns and special values, base64-encoded, the `<root_account>` row first) and
//! `ListAccessKeys`.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine;

use crate::faults::{self, ReportGeneration, ReportRead};
use crate::iam::{error, page, page_window, truncation};
use crate::identity::{self, AccessKey, IdentityCall, Tag};
use crate::policy_book::PolicyBook;
use crate::reply::Reply;
use crate::scenario::{PrincipalKind, ResolvedPrincipal};
use crate::state::{AccountState, SimState};
use crate::xml::{self, iso8601_seconds, Xml};

/// The credential report's columns, in AWS's order.
pub const REPORT_COLUMNS: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

/// What `percent-encoding` leaves alone when IAM URL-encodes a document (Python's `quote`
/// with no safe characters: letters, digits and `-_.~`).
const DOCUMENT_ENCODING: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn url_encoded(document: &str) -> String {
    percent_encoding::utf8_percent_encode(document, DOCUMENT_ENCODING).to_string()
}

/// Answers an identity call, or `None` when `action` is not one.
pub(crate) fn handle(
    state: &SimState,
    account: &AccountState,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Option<Reply> {
    let call = match action {
        "GetAccountAuthorizationDetails" => IdentityCall::GetAccountAuthorizationDetails,
        "GenerateCredentialReport" => IdentityCall::GenerateCredentialReport,
        "GetCredentialReport" => IdentityCall::GetCredentialReport,
        "ListAccessKeys" => IdentityCall::ListAccessKeys,
        _ => return None,
    };
    if faults::identity_denied(account, call) {
        let partition = &state.scenario.partition;
        let id = &account.account.id;
        return Some(error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: arn:{partition}:sts::{id}:assumed-role/{}/aardvark is not authorized to perform: iam:{action} on resource: * because no identity-based policy allows the iam:{action} action",
                state.scenario.role_name
            ),
            request_id,
        ));
    }
    let result = match call {
        IdentityCall::GetAccountAuthorizationDetails => {
            authorization_details(state, account, params, request_id)
        }
        IdentityCall::GenerateCredentialReport => generate_report(state, account, request_id),
        IdentityCall::GetCredentialReport => get_report(state, account, request_id),
        IdentityCall::ListAccessKeys => list_access_keys(account, params, request_id),
    };
    Some(match result {
        Ok(body) => Reply::xml(
            StatusCode::OK,
            xml::response(xml::IAM_NAMESPACE, action, request_id, &body),
        ),
        Err(reply) => reply,
    })
}

/// What a details listing holds, in AWS's order: users, groups, roles, then policies (the
/// account's own, then AWS's that are attached).
enum Detail<'a> {
    Principal(&'a ResolvedPrincipal),
    /// A customer-managed policy `CreatePolicy` made.
    Created(&'a str),
    AwsPolicy(&'static str),
}

fn authorization_details(
    state: &SimState,
    account: &AccountState,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, Reply> {
    let (offset, limit) = page_window(params, account.account.faults.page_size, request_id)?;
    let filters: Vec<&str> = (1..)
        .map_while(|n| {
            params
                .get(&format!("Filter.member.{n}"))
                .map(String::as_str)
        })
        .collect();
    for filter in &filters {
        if !matches!(
            *filter,
            "User" | "Role" | "Group" | "LocalManagedPolicy" | "AWSManagedPolicy"
        ) {
            return Err(error(StatusCode::BAD_REQUEST, "ValidationError", &format!("1 validation error detected: Value '[{filter}]' at 'filter' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [User, Role, Group, LocalManagedPolicy, AWSManagedPolicy]]"), request_id));
        }
    }
    let wanted = |filter: &str| filters.is_empty() || filters.contains(&filter);
    let principals = &account.account.principals;
    let mut items: Vec<Detail> = Vec::new();
    for (kind, filter) in [
        (PrincipalKind::User, "User"),
        (PrincipalKind::Group, "Group"),
        (PrincipalKind::Role, "Role"),
        (PrincipalKind::Policy, "LocalManagedPolicy"),
    ] {
        if wanted(filter) {
            items.extend(
                principals
                    .iter()
                    .filter(|p| p.kind == kind)
                    .map(Detail::Principal),
            );
        }
    }
    let book = account.policies.lock().unwrap();
    if wanted("LocalManagedPolicy") {
        items.extend(book.created.iter().map(|name| Detail::Created(name)));
    }
    if wanted("AWSManagedPolicy") && book.attachments(identity::AUDIT_POLICY) > 0 {
        items.push(Detail::AwsPolicy(identity::AUDIT_POLICY));
    }
    let (shown, next) = page(&items, offset, limit);
    let mut lists: [(&str, Xml); 4] = [
        ("UserDetailList", Xml::default()),
        ("GroupDetailList", Xml::default()),
        ("RoleDetailList", Xml::default()),
        ("Policies", Xml::default()),
    ];
    for item in shown {
        let (at, xml) = match item {
            Detail::Principal(p) => match p.kind {
                PrincipalKind::User => (0, principal_detail(state, account, &book, p)),
                PrincipalKind::Group => (1, principal_detail(state, account, &book, p)),
                PrincipalKind::Role => (2, principal_detail(state, account, &book, p)),
                PrincipalKind::Policy => (3, managed_policy(&book, p)),
            },
            Detail::Created(name) => (3, created_policy(state, account, &book, name)),
            Detail::AwsPolicy(name) => (3, aws_policy(state, account, &book, name)),
        };
        lists[at].1 .0.push_str(&xml.0);
    }
    let mut result = Xml::default();
    for (name, list) in lists {
        result.open(name);
        result.0.push_str(&list.0);
        result.close(name);
    }
    truncation(&mut result, next);
    Ok(result.0)
}

fn policy_arn(state: &SimState, account: &AccountState, name: &str) -> String {
    identity::managed_policy_arn(&state.scenario.partition, &account.account.id, name)
}

/// A user, group or role as `GetAccountAuthorizationDetails` shows it.
fn principal_detail(
    state: &SimState,
    account: &AccountState,
    book: &PolicyBook,
    p: &ResolvedPrincipal,
) -> Xml {
    let index = account.by_arn[&p.arn];
    let (name, id, policy_list) = match p.kind {
        PrincipalKind::User => ("UserName", "UserId", "UserPolicyList"),
        PrincipalKind::Group => ("GroupName", "GroupId", "GroupPolicyList"),
        _ => ("RoleName", "RoleId", "RolePolicyList"),
    };
    let mut xml = Xml::default();
    xml.open("member")
        .element("Path", &p.path)
        .element(name, &p.name)
        .element(id, &p.id)
        .element("Arn", &p.arn)
        .element("CreateDate", iso8601_seconds(p.created_ms()));
    if p.kind == PrincipalKind::Role {
        xml.element(
            "AssumeRolePolicyDocument",
            url_encoded(r#"{"Version":"2012-10-17","Statement":[]}"#),
        )
        .open("InstanceProfileList")
        .close("InstanceProfileList");
    }
    xml.open(policy_list);
    for (policy, document) in book.inline.get(&index).into_iter().flatten() {
        let sent = if p.faults.malformed_policy {
            url_encoded(&document[..document.len() / 2])
        } else {
            url_encoded(document)
        };
        xml.open("member")
            .element("PolicyName", policy)
            .element("PolicyDocument", sent)
            .close("member");
    }
    xml.close(policy_list);
    if p.kind == PrincipalKind::User {
        xml.open("GroupList");
        for group in &p.identity.groups {
            xml.element("member", group);
        }
        xml.close("GroupList");
    }
    xml.open("AttachedManagedPolicies");
    for policy in book.attached.get(&index).into_iter().flatten() {
        xml.open("member")
            .element("PolicyName", policy)
            .element("PolicyArn", policy_arn(state, account, policy))
            .close("member");
    }
    xml.close("AttachedManagedPolicies");
    if p.kind != PrincipalKind::Group {
        tags(&mut xml, &p.identity.tags);
    }
    if p.kind == PrincipalKind::Role {
        xml.open("RoleLastUsed");
        if let Some(used) = p.identity.last_used_ms {
            xml.element("LastUsedDate", iso8601_seconds(used));
        }
        xml.optional("Region", p.identity.last_used_region.as_ref());
        xml.close("RoleLastUsed");
    }
    xml.close("member");
    xml
}

fn tags(xml: &mut Xml, tags: &[Tag]) {
    xml.open("Tags");
    for tag in tags {
        xml.open("member")
            .element("Key", &tag.key)
            .element("Value", &tag.value)
            .close("member");
    }
    xml.close("Tags");
}

/// A managed policy's detail: its default version's document as `book` holds it.
fn policy_detail(xml: &mut Xml, book: &PolicyBook, name: &str, id: &str, arn: &str, created: &str) {
    let version = format!("v{}", book.versions.get(name).copied().unwrap_or(1));
    let document = book.managed.get(name).map_or("{}", String::as_str);
    xml.open("member")
        .element("PolicyName", name)
        .element("PolicyId", id)
        .element("Arn", arn)
        .element("Path", "/")
        .element("DefaultVersionId", &version)
        .element("AttachmentCount", book.attachments(name))
        .element("PermissionsBoundaryUsageCount", 0)
        .element("IsAttachable", true)
        .element("CreateDate", created)
        .element("UpdateDate", created)
        .open("PolicyVersionList")
        .open("member")
        .element("Document", url_encoded(document))
        .element("VersionId", &version)
        .element("IsDefaultVersion", true)
        .element("CreateDate", created)
        .close("member")
        .close("PolicyVersionList")
        .close("member");
}

fn managed_policy(book: &PolicyBook, p: &ResolvedPrincipal) -> Xml {
    let mut xml = Xml::default();
    let created = iso8601_seconds(p.created_ms());
    policy_detail(&mut xml, book, &p.name, &p.id, &p.arn, &created);
    xml
}

fn created_policy(state: &SimState, account: &AccountState, book: &PolicyBook, name: &str) -> Xml {
    let mut xml = Xml::default();
    let id = format!(
        "ANPACREATED{:08}",
        book.created.iter().position(|n| n == name).unwrap_or(0)
    );
    let arn = policy_arn(state, account, name);
    policy_detail(
        &mut xml,
        book,
        name,
        &id,
        &arn,
        &iso8601_seconds(state.now_ms()),
    );
    xml
}

fn aws_policy(state: &SimState, account: &AccountState, book: &PolicyBook, name: &str) -> Xml {
    let mut xml = Xml::default();
    let arn = policy_arn(state, account, name);
    policy_detail(
        &mut xml,
        book,
        name,
        "ANPAAWSSECURITYAUDIT0",
        &arn,
        "2015-02-06T18:41:01Z",
    );
    xml
}

fn generate_report(
    state: &SimState,
    account: &AccountState,
    request_id: &str,
) -> Result<String, Reply> {
    let mut report = account.report.lock().unwrap();
    let mut result = Xml::default();
    match faults::report_generation(account, &mut report) {
        ReportGeneration::LimitExceeded => Err(error(
            StatusCode::CONFLICT,
            "LimitExceeded",
            "Credential report generation rate exceeded, please retry later.",
            request_id,
        )),
        ReportGeneration::Started => {
            result.element("State", "STARTED").element(
                "Description",
                "No report exists. Starting a new report generation task",
            );
            Ok(result.0)
        }
        ReportGeneration::Complete => {
            report.generated_ms.get_or_insert_with(|| state.now_ms());
            result.element("State", "COMPLETE");
            Ok(result.0)
        }
    }
}

fn get_report(state: &SimState, account: &AccountState, request_id: &str) -> Result<String, Reply> {
    let mut report = account.report.lock().unwrap();
    let Some(generated_ms) = report.generated_ms else {
        return Err(if report.started == 0 {
            error(
                StatusCode::GONE,
                "ReportNotPresent",
                "Credential report not present. Use GenerateCredentialReport to generate a report.",
                request_id,
            )
        } else {
            error(
                StatusCode::NOT_FOUND,
                "ReportInProgress",
                "Credential report is being generated.",
                request_id,
            )
        });
    };
    report.get_calls += 1;
    match faults::report_read(account, report.get_calls) {
        ReportRead::InProgress => Err(error(
            StatusCode::NOT_FOUND,
            "ReportInProgress",
            "Credential report is being generated.",
            request_id,
        )),
        ReportRead::Expired => {
            // Expired: the next generation builds it again.
            report.generated_ms = None;
            report.started = 0;
            Err(error(StatusCode::GONE, "ReportExpired", "Credential report has expired. Use GenerateCredentialReport to generate a new report.", request_id))
        }
        ReportRead::Ready => {
            let csv = credential_report(state, account);
            let mut result = Xml::default();
            result
                .element(
                    "Content",
                    base64::engine::general_purpose::STANDARD.encode(csv),
                )
                .element("ReportFormat", "text/csv")
                .element("GeneratedTime", iso8601_seconds(generated_ms));
            Ok(result.0)
        }
    }
}

/// The report's date format: `2020-01-01T00:00:00+00:00`.
fn report_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// The CSV AWS builds: a header, the root row, then one row per user.
pub fn credential_report_csv(
    account_id: &str,
    partition: &str,
    users: &[&ResolvedPrincipal],
) -> String {
    let na = || "N/A".to_owned();
    let mut csv = format!("{REPORT_COLUMNS}\n");
    csv.push_str(&format!(
        "<root_account>,arn:{partition}:iam::{account_id}:root,{},not_supported,no_information,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n",
        report_date(identity::DEFAULT_CREATED_MS)
    ));
    for user in users {
        let id = &user.identity;
        let mut row = vec![
            user.name.clone(),
            user.arn.clone(),
            report_date(user.created_ms()),
        ];
        match &id.password {
            None => row.extend(["false".into(), na(), na(), na()]),
            Some(password) => row.extend([
                "true".into(),
                password
                    .last_used_ms
                    .map_or_else(|| "no_information".into(), report_date),
                report_date(password.last_changed_ms.unwrap_or(user.created_ms())),
                na(),
            ]),
        }
        row.push(id.mfa_active.to_string());
        for slot in 0..2 {
            match id.access_keys.get(slot) {
                None => row.extend(["false".into(), na(), na(), na(), na()]),
                Some(AccessKey {
                    active,
                    created_ms,
                    last_used_ms,
                    last_used_region,
                    last_used_service,
                    ..
                }) => row.extend([
                    active.to_string(),
                    report_date(*created_ms),
                    last_used_ms.map_or_else(na, report_date),
                    last_used_region.clone().unwrap_or_else(na),
                    last_used_service.clone().unwrap_or_else(na),
                ]),
            }
        }
        row.extend(["false".into(), na(), "false".into(), na()]);
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    csv
}

fn credential_report(state: &SimState, account: &AccountState) -> String {
    let users: Vec<&ResolvedPrincipal> = account
        .account
        .principals
        .iter()
        .filter(|p| p.kind == PrincipalKind::User)
        .collect();
    credential_report_csv(&account.account.id, &state.scenario.partition, &users)
}

fn list_access_keys(
    account: &AccountState,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, Reply> {
    let name = params.get("UserName").map_or("", String::as_str);
    let Some(user) = account
        .account
        .principals
        .iter()
        .find(|p| p.kind == PrincipalKind::User && p.name == name)
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            &format!("The user with name {name} cannot be found."),
            request_id,
        ));
    };
    let mut result = Xml::default();
    result.open("AccessKeyMetadata");
    for key in &user.identity.access_keys {
        result
            .open("member")
            .element("UserName", &user.name)
            .element("AccessKeyId", key.id.as_deref().unwrap_or_default())
            .element("Status", if key.active { "Active" } else { "Inactive" })
            .element("CreateDate", iso8601_seconds(key.created_ms))
            .close("member");
    }
    result.close("AccessKeyMetadata");
    result.element("IsTruncated", false);
    Ok(result.0)
}
