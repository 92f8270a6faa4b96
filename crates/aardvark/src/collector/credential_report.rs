//! The credential report's CSV, read by column name (AWS documents the columns, not their
//! order): per user its password and its two access keys, with AWS's special values (`N/A`,
//! `no_information`, `not_supported`) read as "no date". The `<root_account>` row is skipped:
//! the root user is no IAM principal. A report that does not read is an error naming the line
//! and column; nothing of it is used.

use std::collections::HashMap;

use crate::db::identity::{AccessKeyRecord, UserCredentials};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("the credential report has no column {0}")]
    MissingColumn(&'static str),
    #[error("the credential report's line {line}: {problem}")]
    Line { line: u64, problem: String },
}

const USER: &str = "user";
const ARN: &str = "arn";
const CREATED: &str = "user_creation_time";
const PASSWORD_ENABLED: &str = "password_enabled";
const PASSWORD_LAST_USED: &str = "password_last_used";
const PASSWORD_LAST_CHANGED: &str = "password_last_changed";
const MFA_ACTIVE: &str = "mfa_active";

/// The words AWS writes where a date or a flag has no value.
const NO_VALUE: &[&str] = &["N/A", "no_information", "not_supported", ""];

/// Reads a report.
pub fn parse(csv_text: &[u8]) -> Result<Vec<UserCredentials>, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text);
    let headers = reader
        .headers()
        .map_err(|err| ReportError::Line {
            line: 1,
            problem: err.to_string(),
        })?
        .clone();
    let columns: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    for name in [
        USER,
        ARN,
        CREATED,
        PASSWORD_ENABLED,
        PASSWORD_LAST_USED,
        PASSWORD_LAST_CHANGED,
        MFA_ACTIVE,
    ] {
        if !columns.contains_key(name) {
            return Err(ReportError::MissingColumn(name));
        }
    }
    let mut users = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = Row {
            line: index as u64 + 2,
            columns: &columns,
            record: record.map_err(|err| ReportError::Line {
                line: index as u64 + 2,
                problem: err.to_string(),
            })?,
        };
        if row.field(USER)? != "<root_account>" {
            users.push(row.user()?);
        }
    }
    Ok(users)
}

/// One line of the report, read by column name.
struct Row<'a> {
    line: u64,
    columns: &'a HashMap<&'a str, usize>,
    record: csv::StringRecord,
}

impl Row<'_> {
    fn bad(&self, problem: String) -> ReportError {
        ReportError::Line {
            line: self.line,
            problem,
        }
    }

    fn field(&self, name: &'static str) -> Result<&str, ReportError> {
        let at = self
            .columns
            .get(name)
            .copied()
            .ok_or(ReportError::MissingColumn(name))?;
        self.record
            .get(at)
            .ok_or_else(|| self.bad(format!("no value for {name}")))
    }

    fn date(&self, name: &'static str) -> Result<Option<i64>, ReportError> {
        let text = self.field(name)?;
        if NO_VALUE.contains(&text) {
            return Ok(None);
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.timestamp_millis()))
            .map_err(|_| self.bad(format!("{name} is {text:?}, not an ISO 8601 date")))
    }

    fn flag(&self, name: &'static str) -> Result<bool, ReportError> {
        match self.field(name)? {
            "true" => Ok(true),
            "false" => Ok(false),
            text if NO_VALUE.contains(&text) => Ok(false),
            text => Err(self.bad(format!("{name} is {text:?}, not true or false"))),
        }
    }

    fn text(&self, name: &'static str) -> Result<Option<String>, ReportError> {
        let value = self.field(name)?;
        Ok((!NO_VALUE.contains(&value)).then(|| value.to_owned()))
    }

    /// The user of this line, with the keys its two slots hold.
    fn user(&self) -> Result<UserCredentials, ReportError> {
        let password_last_used = self.field(PASSWORD_LAST_USED)?;
        let mut user = UserCredentials {
            arn: self.field(ARN)?.to_owned(),
            user_name: self.field(USER)?.to_owned(),
            created_ms: self.date(CREATED)?,
            password_enabled: self.flag(PASSWORD_ENABLED)?,
            password_last_used_ms: self.date(PASSWORD_LAST_USED)?,
            password_last_used_note: NO_VALUE
                .contains(&password_last_used)
                .then(|| password_last_used.to_owned()),
            password_last_changed_ms: self.date(PASSWORD_LAST_CHANGED)?,
            mfa_active: self.flag(MFA_ACTIVE)?,
            keys: Vec::new(),
        };
        for (slot, [active, rotated, used, region, service]) in [(1, KEY_1), (2, KEY_2)] {
            // A slot holds a key when it has a creation date.
            let Some(created_ms) = self.date(rotated)? else {
                continue;
            };
            user.keys.push(AccessKeyRecord {
                slot,
                key_id: None,
                active: self.flag(active)?,
                created_ms: Some(created_ms),
                last_used_ms: self.date(used)?,
                last_used_region: self.text(region)?,
                last_used_service: self.text(service)?,
            });
        }
        Ok(user)
    }
}

const KEY_1: [&str; 5] = [
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
];
const KEY_2: [&str; 5] = [
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The IAM User Guide's example report (Getting credential reports), with a second user.
    const AWS_EXAMPLE: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2014-06-18T18:00:00+00:00,not_supported,2024-05-01T10:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
Alice,arn:aws:iam::123456789012:user/Alice,2014-07-01T18:24:49+00:00,true,2024-05-14T11:34:08+00:00,2014-07-01T18:26:42+00:00,N/A,true,true,2014-07-01T18:24:50+00:00,2024-05-13T21:35:00+00:00,us-east-1,s3,false,2015-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A
bob,arn:aws:iam::123456789012:user/ops/bob,2020-01-01T00:00:00+00:00,true,no_information,2020-01-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
";

    #[test]
    fn aws_example_reads_every_value() {
        let users = parse(AWS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(users.len(), 2, "the root row is skipped");
        let alice = &users[0];
        assert_eq!(alice.arn, "arn:aws:iam::123456789012:user/Alice");
        assert!(alice.password_enabled && alice.mfa_active);
        assert_eq!(alice.password_last_used_ms, Some(1_715_686_448_000));
        assert_eq!(alice.keys.len(), 2);
        assert!(alice.keys[0].active && !alice.keys[1].active);
        assert_eq!(alice.keys[0].last_used_service.as_deref(), Some("s3"));
        assert_eq!(alice.keys[1].last_used_ms, None);
        assert_eq!(alice.keys[1].slot, 2);
        let bob = &users[1];
        assert_eq!(bob.password_last_used_ms, None);
        assert_eq!(
            bob.password_last_used_note.as_deref(),
            Some("no_information")
        );
        assert!(bob.keys.is_empty());
    }

    #[test]
    fn bad_reports_name_the_line_and_value() {
        let missing = parse(b"user,arn\nx,y\n").unwrap_err();
        assert_eq!(missing, ReportError::MissingColumn("user_creation_time"));
        let bad_date = AWS_EXAMPLE.replace("2014-07-01T18:24:49+00:00", "yesterday");
        let err = parse(bad_date.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err,
            "the credential report's line 3: user_creation_time is \"yesterday\", not an ISO 8601 date"
        );
        let bad_flag = AWS_EXAMPLE.replace(",true,no_information,", ",maybe,no_information,");
        assert!(parse(bad_flag.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("line 4: password_enabled is \"maybe\""));
        let short = format!("{}\nshort,row\n", AWS_EXAMPLE.trim_end());
        assert!(parse(short.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("line 5"));
    }
}
