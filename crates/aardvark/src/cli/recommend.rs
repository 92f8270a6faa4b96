//! `aardvark report recommend --arn ARN`: a role's or user's least-privilege recommendation
//! in force, read from the database without a server: as `/api/1/recommendations` gives it
//! (`json`), each policy before and after (`diff`), or the `aws iam` commands that apply it
//! (`cli`), with the documents written to files by the script itself. We never run them.

use std::io::Write;

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::api::recommendations::RecommendationEntry;
use crate::arn::Arn;
use crate::config::Settings;
use crate::db::Database;
use crate::recommend::{name_in_arn, owner_kind_of, Recommendation, Step, StepAction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecommendFormat {
    Json,
    Diff,
    Cli,
}

#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// The role or user (its ARN, any case).
    #[arg(long)]
    pub arn: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "diff")]
    pub format: RecommendFormat,
}

pub async fn run(db: &Database, settings: &Settings, args: &RecommendArgs) -> anyhow::Result<()> {
    crate::findings::keep_rules_current(db, &settings.finding_rules()).await;
    let (_, mut found) = db
        .recommendations_page(None, Some(&args.arn), 0, 1)
        .await
        .context("cannot read the recommendations")?;
    let Some(stored) = found.pop() else {
        bail!(
            "no recommendation for {}: it has no unused_permission finding, or its policies were \
             not collected (the spoke role needs iam:GetAccountAuthorizationDetails)",
            args.arn
        );
    };
    let recommendation: Recommendation = serde_json::from_value(stored.body.clone())
        .context("the stored recommendation cannot be read")?;
    let mut out = std::io::stdout().lock();
    if args.format == RecommendFormat::Json {
        let entry = RecommendationEntry::try_from(stored)?;
        serde_json::to_writer_pretty(&mut out, &entry)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(reason) = &recommendation.rejected {
        bail!(
            "the recommendation for {} is not offered: {reason}",
            recommendation.principal
        );
    }
    let text = match args.format {
        RecommendFormat::Diff => diff(&recommendation),
        _ => commands(&recommendation),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn pretty(document: Option<&serde_json::Value>) -> String {
    document.map_or_else(String::new, |document| {
        serde_json::to_string_pretty(document).expect("JSON values serialize") + "\n"
    })
}

/// Each step's policy before and after, as a unified diff, with what it removes and why.
pub fn diff(recommendation: &Recommendation) -> String {
    let mut text = format!(
        "# {}: {} step(s), window {} days\n",
        recommendation.principal,
        recommendation.steps.len(),
        recommendation.window_days
    );
    for step in &recommendation.steps {
        let name = step.new_policy_name.as_deref().unwrap_or(&step.policy.name);
        text.push_str(&format!(
            "# {} {name} ({}, attached to {})\n",
            wire_name(step.action),
            wire_name(step.policy.kind),
            step.policy.attached_to
        ));
        for removed in &step.removed {
            text.push_str(&format!(
                "#   removes {}: {} (last used {})\n",
                removed.pattern,
                removed.reason,
                removed.last_used.as_deref().unwrap_or("never")
            ));
        }
        let (before, after) = (
            pretty(step.current.as_ref()),
            pretty(step.recommended.as_ref()),
        );
        let diff = similar::TextDiff::from_lines(&before, &after);
        text.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("{name} (current)"),
                    &format!("{name} (recommended)"),
                )
                .to_string(),
        );
    }
    for kept in &recommendation.kept_without_evidence {
        text.push_str(&format!(
            "# kept in {}: {}: {}\n",
            kept.policy, kept.pattern, kept.reason
        ));
    }
    for unreadable in &recommendation.unreadable {
        text.push_str(&format!(
            "# not handled: {}: {}\n",
            unreadable.policy.name, unreadable.reason
        ));
    }
    text
}

/// A value's name as the API writes it.
fn wire_name(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Single quotes for a shell, any `'` closed and escaped.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A shell script of the `aws iam` commands that apply the recommendation, each document
/// written to a file first.
pub fn commands(recommendation: &Recommendation) -> String {
    let mut script = format!(
        "#!/bin/sh\n# Least-privilege recommendation for {} (window {} days), from aardvark.\n\
         # Review it before running it: aardvark never runs these commands.\nset -eu\n",
        recommendation.principal, recommendation.window_days
    );
    for (at, step) in recommendation.steps.iter().enumerate() {
        script.push_str(&step_commands(at + 1, step));
    }
    script
}

fn step_commands(number: usize, step: &Step) -> String {
    let owner = &step.policy.attached_to;
    let kind = owner_kind_of(owner).unwrap_or("role");
    let owner_name = quoted(name_in_arn(owner));
    let policy = quoted(&step.policy.name);
    let mut text = String::new();
    let file = format!("step-{number}-{}.json", name_in_arn(owner));
    if let Some(document) = &step.recommended {
        text.push_str(&format!(
            "cat > {} <<'AARDVARK_POLICY'\n{}AARDVARK_POLICY\n",
            quoted(&file),
            pretty(Some(document))
        ));
    }
    let arn = step.policy.arn.as_deref().map(quoted).unwrap_or_default();
    let document = format!("--policy-document file://{}", quoted(&file));
    let command = match step.action {
        StepAction::ReplaceInlinePolicy => format!(
            "aws iam put-{kind}-policy --{kind}-name {owner_name} --policy-name {policy} {document}"
        ),
        StepAction::DeleteInlinePolicy => format!(
            "aws iam delete-{kind}-policy --{kind}-name {owner_name} --policy-name {policy}"
        ),
        StepAction::CreatePolicyVersion => format!(
            "# IAM keeps five versions of a policy: delete its oldest first if it has five.\n\
             aws iam create-policy-version --policy-arn {arn} {document} --set-as-default"
        ),
        StepAction::CreatePolicy => {
            let name = step.new_policy_name.as_deref().unwrap_or_default();
            let (partition, account) =
                Arn::parse(owner).map_or(("aws", ""), |arn| (arn.partition, arn.account));
            let new_arn = format!("arn:{partition}:iam::{account}:policy/{name}");
            format!(
                "aws iam create-policy --policy-name {} {document}\n\
                 aws iam attach-{kind}-policy --{kind}-name {owner_name} --policy-arn {}",
                quoted(name),
                quoted(&new_arn)
            )
        }
        StepAction::DetachPolicy => {
            format!("aws iam detach-{kind}-policy --{kind}-name {owner_name} --policy-arn {arn}")
        }
    };
    text.push_str(&command);
    text.push('\n');
    text
}
