//! Errors as the operator reads them: an error and its causes in one line, each cause once.
//! What the SDK's own `DisplayErrorContext` prints ends with the error's `Debug` rendering (a
//! few KB of struct fields), which belongs in a developer's debugger, not in a stored failure.

use std::error::Error;

/// `err` and its causes joined by `: `; a cause whose text the one before it already holds is
/// left out (wrappers often repeat their source's message). A multi-line message (the SDK's
/// list of credential providers tried) becomes one line.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(current) = cause {
        let text = flattened(&current.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        cause = current.source();
    }
    parts.join(": ")
}

/// The lines of `text`, trimmed, joined by `; ` (by a space after a line ending in `:`).
fn flattened(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// The first of `err` and its causes that is a `T`.
pub fn cause_of<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn chain(messages: &[&'static str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer {
                    message,
                    source: source.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn causes_are_joined_once_each() {
        let err = chain(&[
            "dispatch failure",
            "other",
            "no credentials",
            "no credentials",
        ]);
        assert_eq!(one_line(&err), "dispatch failure: other: no credentials");
        let repeated = chain(&["database \"x\" does not exist: db", "db"]);
        assert_eq!(one_line(&repeated), "database \"x\" does not exist: db");
        assert_eq!(
            cause_of::<Layer>(&err).map(ToString::to_string).as_deref(),
            Some("dispatch failure")
        );
        assert!(cause_of::<std::fmt::Error>(&err).is_none());
        let listed = chain(&["tried:\n  A: no\n  B: no\n"]);
        assert_eq!(one_line(&listed), "tried: A: no; B: no");
    }
}
