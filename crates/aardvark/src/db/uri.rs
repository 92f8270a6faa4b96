//! Translation of SQLAlchemy-style database URIs (what upstream configuration files carry) into
//! the connection targets sqlx understands.

use std::path::PathBuf;

/// Where the database lives, decided from a configured URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file, created if missing.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (`sqlite://` or `sqlite:///:memory:`).
    SqliteMemory,
    /// A PostgreSQL server, as a `postgres://` URL sqlx accepts.
    Postgres(String),
}

/// The URI could not be understood; the message says what form was expected.
#[derive(Debug, thiserror::Error)]
#[error("unsupported database URI {uri:?}: {reason}")]
pub struct UriError {
    pub uri: String,
    pub reason: &'static str,
}

impl DatabaseTarget {
    /// Parses `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`,
    /// `postgresql://…`, `postgresql+psycopg2://…` and `postgres://…`.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let error = |reason| UriError {
            uri: redact_password(uri),
            reason,
        };
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| error("expected SCHEME://..., e.g. sqlite:///aardvark.db"))?;
        let (dialect, _driver) = scheme.split_once('+').unwrap_or((scheme, ""));
        match dialect.to_ascii_lowercase().as_str() {
            "sqlite" => {
                // SQLAlchemy: everything after the third slash is the path, so four slashes make
                // it absolute; query parameters are driver options we do not need.
                let path = rest.split('?').next().unwrap_or_default();
                let path = path.strip_prefix('/').unwrap_or(path);
                if path.is_empty() || path == ":memory:" {
                    Ok(Self::SqliteMemory)
                } else if rest.starts_with('/') {
                    Ok(Self::SqliteFile(PathBuf::from(path)))
                } else {
                    Err(error("SQLite URIs have three slashes before a relative path (sqlite:///aardvark.db) and four before an absolute one"))
                }
            }
            "postgresql" | "postgres" | "pgsql" => Ok(Self::Postgres(format!(
                "postgres://{}",
                lowercase_password_parameter(rest)
            ))),
            _ => Err(error("only sqlite and postgresql databases are supported")),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        !matches!(self, Self::Postgres(_))
    }
}

/// `password=` as the driver takes it (lower case), however the URI spelled it, so that it is
/// used rather than logged as an unknown parameter.
fn lowercase_password_parameter(rest: &str) -> String {
    let Some((address, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, value)) if name.eq_ignore_ascii_case("password") => {
                format!("password={value}")
            }
            _ => parameter.to_owned(),
        })
        .collect();
    format!("{address}?{}", parameters.join("&"))
}

/// The URI with any password replaced, fit for logs and error messages: the user part's
/// (`user:***@host`) and any `password=` parameter's (`password=***`), in any case.
pub fn redact_password(uri: &str) -> String {
    let (address, query) = match uri.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (uri, None),
    };
    let mut redacted = redact_user_part(address);
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

fn redact_user_part(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => uri.to_owned(),
        },
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_forms_translate() {
        assert_eq!(
            DatabaseTarget::parse("sqlite:///aardvark.db").unwrap(),
            DatabaseTarget::SqliteFile("aardvark.db".into())
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite:////var/lib/aardvark.db").unwrap(),
            DatabaseTarget::SqliteFile("/var/lib/aardvark.db".into())
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite:///:memory:").unwrap(),
            DatabaseTarget::SqliteMemory
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite://").unwrap(),
            DatabaseTarget::SqliteMemory
        );
        for uri in [
            "postgresql://u:p@db:5432/aardvark",
            "postgresql+psycopg2://u:p@db:5432/aardvark",
            "postgres://u:p@db:5432/aardvark",
        ] {
            assert_eq!(
                DatabaseTarget::parse(uri).unwrap(),
                DatabaseTarget::Postgres("postgres://u:p@db:5432/aardvark".into())
            );
        }
    }

    #[test]
    fn bad_uris_name_the_problem_without_the_password() {
        let err = DatabaseTarget::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(
            err.to_string().contains("only sqlite and postgresql"),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(DatabaseTarget::parse("aardvark.db").is_err());
        assert!(DatabaseTarget::parse("sqlite://relative.db").is_err());
    }

    #[test]
    fn passwords_are_redacted_in_any_form() {
        for (uri, shown) in [
            (
                "postgresql://u:secret@db:5432/a",
                "postgresql://u:***@db:5432/a",
            ),
            (
                "postgresql://u@db/a?password=secret&sslmode=require",
                "postgresql://u@db/a?password=***&sslmode=require",
            ),
            (
                "postgres://u:secret@db/a?sslmode=require&Password=secret",
                "postgres://u:***@db/a?sslmode=require&Password=***",
            ),
            ("sqlite:///aardvark.db", "sqlite:///aardvark.db"),
            (
                "postgresql://db/a?passwordless=1",
                "postgresql://db/a?passwordless=1",
            ),
        ] {
            assert_eq!(redact_password(uri), shown);
        }
    }
}
