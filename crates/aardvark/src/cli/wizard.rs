//! `aardvark config`: asks for each setting (or takes it from a flag), checks the answers, and
//! writes `settings.yaml`; or converts an upstream `config.py`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use yaml_serde::{Mapping, Value};

use crate::config::{self, legacy, AccountSource};
use crate::named::Named;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Convert an upstream 0.3.x config.py instead of asking.
    #[arg(long, value_name = "CONFIG_PY")]
    pub from_legacy: Option<PathBuf>,
    /// Ask nothing: take flags, and defaults for the rest.
    #[arg(long)]
    pub no_prompt: bool,
    /// Name of the role to assume in each account (upstream's -a/--aardvark-role).
    #[arg(short = 'a', long, visible_alias = "aardvark-role")]
    pub role_name: Option<String>,
    /// Database URI, SQLAlchemy style (sqlite:///aardvark.db, postgresql://...; upstream's -d).
    #[arg(short = 'd', long, visible_alias = "db-uri")]
    pub database_uri: Option<String>,
    /// How many accounts to collect at once (UPDATER_NUM_THREADS, upstream's meaning).
    #[arg(long)]
    pub num_threads: Option<usize>,
    /// Where accounts come from: static (a list), swag or organizations.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(AccountSource::NAMES.iter().map(|(name, _)| *name)))]
    pub account_source: Option<String>,
    /// SWAG bucket holding accounts.json (implies --account-source swag; upstream's -b).
    #[arg(short = 'b', long)]
    pub swag_bucket: Option<String>,
    /// SWAG filter, a JMESPath expression.
    #[arg(long)]
    pub swag_filter: Option<String>,
    /// Only accounts where this SWAG service is enabled.
    #[arg(long)]
    pub swag_service_enabled_requirement: Option<String>,
    /// Accounts to collect (ACCOUNTS, comma-separated): ids for the static source; with SWAG
    /// or Organizations, ids, names or aliases chosen among the source's (default: all).
    #[arg(long)]
    pub accounts: Option<String>,
    /// The file to write.
    #[arg(long, short, default_value = "settings.yaml")]
    pub output: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Reads answers from `input`, writes prompts to `prompts`, and returns the settings file text.
pub fn build_settings(
    args: &ConfigArgs,
    input: &mut dyn BufRead,
    prompts: &mut dyn Write,
) -> anyhow::Result<(String, Vec<String>)> {
    if let Some(path) = &args.from_legacy {
        return from_legacy(path);
    }
    check_flags(args)?;
    let mut asker = Asker {
        input,
        prompts,
        interactive: !args.no_prompt,
    };
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    let defaults = crate::config::Settings::default();
    let threads = args.num_threads.map(|n| n.to_string());
    let default_threads = defaults.updater_num_threads.to_string();
    let default_source = if args.swag_bucket.is_some() {
        AccountSource::Swag
    } else {
        AccountSource::Static
    };
    let source_prompt = format!("Account source ({})", AccountSource::choices());
    // Each answer is checked by the setting's own reader.
    let questions = [
        (
            "AWS_ROLENAME",
            "Role to assume in each account",
            args.role_name.as_deref(),
            defaults.aws_rolename.as_str(),
        ),
        (
            "SQLALCHEMY_DATABASE_URI",
            "Database URI",
            args.database_uri.as_deref(),
            defaults.database_uri.as_str(),
        ),
        (
            "UPDATER_NUM_THREADS",
            "Accounts to collect at once",
            threads.as_deref(),
            default_threads.as_str(),
        ),
        (
            "ACCOUNT_SOURCE",
            source_prompt.as_str(),
            args.account_source.as_deref(),
            default_source.as_str(),
        ),
    ];
    for (key, prompt, flag, default) in questions {
        let value = asker.ask(prompt, flag, default, |answer| {
            config::check_answer(key, answer)
        })?;
        values.insert(key.into(), value);
    }
    let source = values["ACCOUNT_SOURCE"]
        .as_str()
        .and_then(AccountSource::from_name_ignoring_case)
        .unwrap_or(default_source);
    values.insert("ACCOUNT_SOURCE".into(), Value::from(source.as_str()));
    ask_source_settings(&mut asker, args, source, &mut values)?;
    Ok((config::to_yaml(&values), Vec::new()))
}

/// The settings of the account source: SWAG's, or the static list of ids; with SWAG or
/// Organizations, `--accounts` chooses among the source's accounts (not asked: the default,
/// all of them, is what most want).
fn ask_source_settings(
    asker: &mut Asker<'_>,
    args: &ConfigArgs,
    source: AccountSource,
    values: &mut BTreeMap<String, Value>,
) -> anyhow::Result<()> {
    match source {
        AccountSource::Swag => {
            values.insert("SWAG".into(), ask_swag(asker, args)?);
        }
        AccountSource::Static => {
            values.insert("ACCOUNTS".into(), ask_account_ids(asker, args)?);
            return Ok(());
        }
        AccountSource::Organizations => {}
    }
    if let Some(list) = args.accounts.as_deref() {
        let accounts = config::check_answer("ACCOUNTS", list).map_err(anyhow::Error::msg)?;
        values.insert("ACCOUNTS".into(), accounts);
    }
    Ok(())
}

/// An upstream `config.py` converted, with what could not be converted.
fn from_legacy(path: &std::path::Path) -> anyhow::Result<(String, Vec<String>)> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let converted =
        legacy::convert(&source).with_context(|| format!("cannot convert {}", path.display()))?;
    let warnings = converted
        .warnings
        .into_iter()
        .map(|warning| format!("{}: {warning}", path.display()))
        .collect();
    Ok((config::to_yaml(&converted.values), warnings))
}

/// `SWAG`: its bucket, filter and required service, each checked by the `SWAG` reader.
fn ask_swag(asker: &mut Asker<'_>, args: &ConfigArgs) -> anyhow::Result<Value> {
    let mut swag = Mapping::new();
    for (key, prompt, flag) in [
        ("bucket", "SWAG bucket", &args.swag_bucket),
        (
            "filter",
            "SWAG filter (JMESPath, empty for none)",
            &args.swag_filter,
        ),
        (
            "service_enabled_requirement",
            "SWAG service that must be enabled (empty for none)",
            &args.swag_service_enabled_requirement,
        ),
    ] {
        let value = asker.ask(prompt, flag.as_deref(), "", |answer| {
            let value = match answer {
                "" if key == "bucket" => return Err("a bucket name".into()),
                "" => Value::Null,
                text => Value::from(text),
            };
            let mut alone = Mapping::new();
            alone.insert(key.into(), value.clone());
            config::check_value("SWAG", Value::Mapping(alone)).map(|_| value)
        })?;
        swag.insert(key.into(), value);
    }
    Ok(Value::Mapping(swag))
}

/// `ACCOUNTS` for the static source: checked by its reader, and 12-digit ids (the static
/// source takes ids only).
fn ask_account_ids(asker: &mut Asker<'_>, args: &ConfigArgs) -> anyhow::Result<Value> {
    asker.ask(
        "Account ids (comma-separated, empty for none)",
        args.accounts.as_deref(),
        "",
        |answer| {
            config::check_answer("ACCOUNTS", answer)?;
            let ids: Vec<Value> = answer
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| {
                    if crate::arn::is_account_id(id) {
                        Ok(Value::from(id))
                    } else {
                        Err(format!(
                            "12-digit account ids, comma-separated ({} is not one)",
                            crate::api::quoted(id)
                        ))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Sequence(ids))
        },
    )
}

/// Checks the flags that answer questions before the first question: a wrong one is said at
/// once, not after every answer has been given (a password in it masked).
fn check_flags(args: &ConfigArgs) -> anyhow::Result<()> {
    let threads = args.num_threads.map(|n| n.to_string());
    for (flag, key, given) in [
        ("--role-name", "AWS_ROLENAME", args.role_name.as_deref()),
        (
            "--database-uri",
            "SQLALCHEMY_DATABASE_URI",
            args.database_uri.as_deref(),
        ),
        ("--num-threads", "UPDATER_NUM_THREADS", threads.as_deref()),
    ] {
        if let Some(given) = given {
            config::check_answer(key, given.trim()).map_err(|expected| {
                let shown = crate::db::uri::redact_password(given);
                anyhow::anyhow!("{flag}: expected {expected}, got {shown:?}")
            })?;
        }
    }
    Ok(())
}

/// Asks one question at a time; with `interactive` off, takes the flag or the default.
struct Asker<'a> {
    input: &'a mut dyn BufRead,
    prompts: &'a mut dyn Write,
    interactive: bool,
}

impl Asker<'_> {
    fn ask(
        &mut self,
        question: &str,
        flag: Option<&str>,
        default: &str,
        check: impl Fn(&str) -> Result<Value, String>,
    ) -> anyhow::Result<Value> {
        if let Some(given) = flag {
            return check(given.trim()).map_err(|expected| {
                anyhow::anyhow!("{question}: expected {expected}, got {given:?}")
            });
        }
        if !self.interactive {
            return check(default).map_err(|expected| {
                anyhow::anyhow!("{question}: expected {expected}; give it as a flag")
            });
        }
        loop {
            if default.is_empty() {
                write!(self.prompts, "{question}: ")?;
            } else {
                write!(self.prompts, "{question} [{default}]: ")?;
            }
            self.prompts.flush()?;
            let mut line = String::new();
            let at_end = self.input.read_line(&mut line)? == 0;
            let answer = line.trim();
            let answer = if answer.is_empty() { default } else { answer };
            match check(answer) {
                Ok(value) => return Ok(value),
                Err(expected) if at_end => {
                    bail!("{question}: expected {expected}, and the input ended")
                }
                Err(expected) => writeln!(self.prompts, "  expected {expected}; try again")?,
            }
        }
    }
}
