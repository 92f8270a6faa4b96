//! Conversion of an upstream 0.3.x `config.py` into `settings.yaml` values. Only what such files
//! hold is understood: `NAME = literal` assignments of strings, numbers, booleans, `None` and
//! list/tuple/set/dict literals; anything else is skipped with a warning naming its line.

use std::collections::BTreeMap;

use yaml_serde::{Mapping, Value};

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LegacyError {
    pub line: usize,
    pub message: String,
}

/// The converted settings and what could not be converted.
#[derive(Debug, Default)]
pub struct Converted {
    pub values: BTreeMap<String, Value>,
    pub warnings: Vec<String>,
}

/// Converts the text of an upstream `config.py`.
pub fn convert(source: &str) -> Result<Converted, LegacyError> {
    let tokens = tokenize(source)?;
    let mut converted = Converted::default();
    let mut swag = Mapping::new();
    for statement in tokens.split(|token| token.kind == Kind::Newline) {
        let Some(first) = statement.first() else {
            continue;
        };
        let assignment = match statement {
            [Token {
                kind: Kind::Name(name),
                ..
            }, Token {
                kind: Kind::Op('='),
                ..
            }, rest @ ..] => Parser {
                tokens: rest,
                at: 0,
            }
            .whole_literal()
            .map(|value| (name.clone(), value)),
            [Token {
                kind: Kind::Name(word),
                ..
            }, ..]
                if word == "import" || word == "from" =>
            {
                continue
            }
            _ => None,
        };
        let Some((name, value)) = assignment else {
            converted.warnings.push(format!(
                "line {}: not a NAME = literal assignment, skipped",
                first.line
            ));
            continue;
        };
        match name.as_str() {
            "ROLENAME" => insert(&mut converted, "AWS_ROLENAME", value),
            "REGION" => insert(&mut converted, "AWS_REGION", value),
            "ARN_PARTITION" => insert(&mut converted, "AWS_ARN_PARTITION", value),
            // Older upstream files quoted it ("5"); upstream read it with int().
            "NUM_THREADS" => insert(&mut converted, "UPDATER_NUM_THREADS", as_integer(value)),
            "FAILING_ARNS" => insert(&mut converted, "UPDATER_FAILING_ARNS", value),
            "SWAG_FILTER" => {
                swag.insert("filter".into(), value);
            }
            "SWAG_SERVICE_ENABLED_REQUIREMENT" => {
                swag.insert("service_enabled_requirement".into(), value);
            }
            "SWAG_OPTS" => {
                let Value::Mapping(opts) = value else {
                    converted.warnings.push(format!(
                        "line {}: SWAG_OPTS is not a dict, skipped",
                        first.line
                    ));
                    continue;
                };
                swag_opts(opts, &mut swag);
            }
            "SQLALCHEMY_TRACK_MODIFICATIONS" => {}
            known if super::SETTING_NAMES.contains(&known) => insert(&mut converted, known, value),
            other => {
                converted
                    .warnings
                    .push(format!("line {}: {}", first.line, no_equivalent(other)))
            }
        }
    }
    if !swag.is_empty() {
        converted.values.insert("SWAG".into(), Value::Mapping(swag));
    }
    Ok(converted)
}

/// `SWAG_OPTS` as `SWAG: opts:` (without the `swag.` prefix), its bucket as `SWAG: bucket:`.
fn swag_opts(opts: Mapping, swag: &mut Mapping) {
    let mut plain = Mapping::new();
    for (key, item) in opts {
        let key = key.as_str().unwrap_or_default();
        let key = key.strip_prefix("swag.").unwrap_or(key).to_owned();
        if key == "bucket_name" {
            swag.insert("bucket".into(), item.clone());
        }
        plain.insert(Value::String(key), item);
    }
    swag.insert("opts".into(), Value::Mapping(plain));
}

/// What to say of a name that is not converted: lost (and what replaces it), or unknown with
/// the nearest setting.
fn no_equivalent(name: &str) -> String {
    if super::LOST_KEYS.iter().any(|(key, _)| *key == name) {
        return super::unknown_key_warning(name);
    }
    let nearest = super::nearest_setting(name)
        .map(|known| format!(" (the nearest setting is {known})"))
        .unwrap_or_default();
    format!("{name} has no equivalent in settings.yaml, skipped{nearest}")
}

/// A string of digits as the number it spells (`"5"` is 5); anything else as it is.
fn as_integer(value: Value) -> Value {
    match value
        .as_str()
        .and_then(|text| text.trim().parse::<u64>().ok())
    {
        Some(number) => Value::from(number),
        None => value,
    }
}

fn insert(converted: &mut Converted, key: &str, value: Value) {
    converted.values.insert(key.to_owned(), value);
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Name(String),
    Str(String),
    Number(Value),
    Op(char),
    Newline,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    line: usize,
}

fn tokenize(source: &str) -> Result<Vec<Token>, LegacyError> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        at: 0,
        line: 1,
        depth: 0,
        tokens: Vec::new(),
    };
    while let Some(c) = lexer.peek(0) {
        match c {
            '\n' => lexer.newline(),
            '#' => lexer.skip_comment(),
            '\\' if lexer.peek(1) == Some('\n') => {
                lexer.at += 2;
                lexer.line += 1;
            }
            c if c.is_whitespace() => lexer.at += 1,
            '\'' | '"' => lexer.string(c)?,
            c if c.is_ascii_digit()
                || (c == '.' && lexer.peek(1).is_some_and(|c| c.is_ascii_digit())) =>
            {
                lexer.number()?
            }
            c if c.is_alphabetic() || c == '_' => lexer.name(),
            c => lexer.operator(c),
        }
    }
    Ok(lexer.tokens)
}

/// Python's tokens, as far as `NAME = literal` files need them.
struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: usize,
    /// Open brackets: newlines inside them do not end a statement.
    depth: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn push(&mut self, kind: Kind, line: usize) {
        self.tokens.push(Token { kind, line });
    }

    fn error(line: usize, message: &str) -> LegacyError {
        LegacyError {
            line,
            message: message.to_owned(),
        }
    }

    fn newline(&mut self) {
        if self.depth == 0 {
            self.push(Kind::Newline, self.line);
        }
        self.line += 1;
        self.at += 1;
    }

    fn skip_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.at += 1;
        }
    }

    /// A string literal opened by `quote` (single or triple), with `r`/`u`/`b` prefixes and
    /// escapes; adjacent literals concatenate, as in Python.
    fn string(&mut self, quote: char) -> Result<(), LegacyError> {
        let start_line = self.line;
        let triple = self.peek(1) == Some(quote) && self.peek(2) == Some(quote);
        let prefix = match self.tokens.last() {
            Some(Token {
                kind: Kind::Name(prefix),
                ..
            }) => Some(prefix.to_ascii_lowercase()),
            _ => None,
        };
        let raw = prefix.as_deref() == Some("r");
        if matches!(prefix.as_deref(), Some("r" | "u" | "b")) {
            self.tokens.pop();
        }
        self.at += if triple { 3 } else { 1 };
        let mut text = String::new();
        loop {
            let next = self
                .peek(0)
                .ok_or_else(|| Self::error(start_line, "unterminated string"))?;
            if next == quote
                && (!triple || (self.peek(1) == Some(quote) && self.peek(2) == Some(quote)))
            {
                self.at += if triple { 3 } else { 1 };
                break;
            }
            if next == '\n' {
                if !triple {
                    return Err(Self::error(start_line, "unterminated string"));
                }
                self.line += 1;
            }
            if next == '\\' && !raw {
                let escaped = self
                    .peek(1)
                    .ok_or_else(|| Self::error(self.line, "unterminated string"))?;
                self.at += 2;
                match escaped {
                    'n' => text.push('\n'),
                    't' => text.push('\t'),
                    'r' => text.push('\r'),
                    '0' => text.push('\0'),
                    '\n' => self.line += 1,
                    other => text.push(other),
                }
                continue;
            }
            text.push(next);
            self.at += 1;
        }
        match self.tokens.last_mut() {
            Some(Token {
                kind: Kind::Str(previous),
                ..
            }) => previous.push_str(&text),
            _ => self.push(Kind::Str(text), start_line),
        }
        Ok(())
    }

    /// An integer or a float, with `_` between digits.
    fn number(&mut self) -> Result<(), LegacyError> {
        let start = self.at;
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at]
            .iter()
            .filter(|&&c| c != '_')
            .collect();
        let number = if let Ok(int) = text.parse::<i64>() {
            Value::Number(int.into())
        } else if let Ok(float) = text.parse::<f64>() {
            Value::Number(float.into())
        } else {
            return Err(Self::error(
                self.line,
                &format!("cannot read the number {text}"),
            ));
        };
        self.push(Kind::Number(number), self.line);
        Ok(())
    }

    fn name(&mut self) {
        let start = self.at;
        while self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.at += 1;
        }
        let name = self.chars[start..self.at].iter().collect();
        self.push(Kind::Name(name), self.line);
    }

    fn operator(&mut self, c: char) {
        match c {
            '(' | '[' | '{' => self.depth += 1,
            ')' | ']' | '}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.push(Kind::Op(c), self.line);
        self.at += 1;
    }
}

/// A recursive-descent reader of one literal; `None` where the expression is not a literal.
struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn whole_literal(&mut self) -> Option<Value> {
        let value = self.literal()?;
        (self.at == self.tokens.len()).then_some(value)
    }

    fn next(&mut self) -> Option<&Kind> {
        let token = self.tokens.get(self.at)?;
        self.at += 1;
        Some(&token.kind)
    }

    fn peek_op(&self, op: char) -> bool {
        matches!(self.tokens.get(self.at), Some(Token { kind: Kind::Op(found), .. }) if *found == op)
    }

    fn literal(&mut self) -> Option<Value> {
        match self.next()?.clone() {
            Kind::Str(text) => Some(Value::String(text)),
            Kind::Number(number) => Some(number),
            Kind::Op('-') => match self.next()? {
                Kind::Number(Value::Number(n)) => Some(match n.as_i64() {
                    Some(int) => Value::Number((-int).into()),
                    None => Value::Number((-n.as_f64()?).into()),
                }),
                _ => None,
            },
            Kind::Name(name) => match name.as_str() {
                "True" => Some(Value::Bool(true)),
                "False" => Some(Value::Bool(false)),
                "None" => Some(Value::Null),
                _ => None,
            },
            Kind::Op('[') => self.sequence(']').map(Value::Sequence),
            Kind::Op('(') => self.sequence(')').map(Value::Sequence),
            Kind::Op('{') => self.braces(),
            _ => None,
        }
    }

    fn sequence(&mut self, close: char) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.peek_op(close) {
                self.at += 1;
                return Some(items);
            }
            items.push(self.literal()?);
            if self.peek_op(',') {
                self.at += 1;
            } else if !self.peek_op(close) {
                return None;
            }
        }
    }

    /// A dict or a set (a set becomes a list).
    fn braces(&mut self) -> Option<Value> {
        if self.peek_op('}') {
            self.at += 1;
            return Some(Value::Mapping(Mapping::new()));
        }
        let first = self.literal()?;
        if !self.peek_op(':') {
            let mut items = vec![first];
            if self.peek_op(',') {
                self.at += 1;
                items.extend(self.sequence('}')?);
            } else if self.peek_op('}') {
                self.at += 1;
            } else {
                return None;
            }
            return Some(Value::Sequence(items));
        }
        let mut map = Mapping::new();
        let mut key = first;
        loop {
            if !self.peek_op(':') {
                return None;
            }
            self.at += 1;
            let value = self.literal()?;
            map.insert(key, value);
            if self.peek_op(',') {
                self.at += 1;
            }
            if self.peek_op('}') {
                self.at += 1;
                return Some(Value::Mapping(map));
            }
            key = self.literal()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = r#"
# Aardvark configuration generated by `aardvark config`
import os
_basedir = os.path.abspath(os.path.dirname(__file__))

ROLENAME = 'Aardvark'
SQLALCHEMY_DATABASE_URI = 'sqlite:////opt/aardvark/aardvark.db'
SQLALCHEMY_TRACK_MODIFICATIONS = False
NUM_THREADS = 5
SWAG_OPTS = {
    'swag.type': 's3',
    'swag.bucket_name': "swag-bucket",  # trailing comment
    'swag.schema_version': 2,
}
SWAG_FILTER = None
SWAG_SERVICE_ENABLED_REQUIREMENT = "aardvark"
FAILING_ARNS = {'arn:aws:iam::1:role/a', "arn:aws:iam::1:role/" 'b'}
LOG_CFG = {'version': 1, 'handlers': {'console': {'level': 'DEBUG'}}}
WEIRD = os.environ.get('X')
"#;

    #[test]
    fn upstream_file_converts() {
        let converted = convert(UPSTREAM).unwrap();
        let values = &converted.values;
        assert_eq!(values["AWS_ROLENAME"], Value::from("Aardvark"));
        assert_eq!(values["UPDATER_NUM_THREADS"], Value::from(5));
        assert_eq!(
            values["SQLALCHEMY_DATABASE_URI"],
            Value::from("sqlite:////opt/aardvark/aardvark.db")
        );
        assert_eq!(
            values["UPDATER_FAILING_ARNS"],
            Value::Sequence(vec![
                "arn:aws:iam::1:role/a".into(),
                "arn:aws:iam::1:role/b".into()
            ])
        );
        let swag = values["SWAG"].as_mapping().unwrap();
        assert_eq!(swag["bucket"], Value::from("swag-bucket"));
        assert_eq!(swag["filter"], Value::Null);
        assert_eq!(swag["service_enabled_requirement"], Value::from("aardvark"));
        assert_eq!(swag["opts"]["schema_version"], Value::from(2));
        assert!(!values.contains_key("LOG_CFG"));
        assert_eq!(converted.warnings.len(), 3, "{:?}", converted.warnings);
        assert!(
            converted.warnings[0].starts_with("line 4:"),
            "{:?}",
            converted.warnings
        );
        // The lost log file is said, with what to use instead.
        assert!(
            converted.warnings[1].starts_with("line 18: LOG_CFG")
                && converted.warnings[1].contains("LOG_FORMAT: json"),
            "{:?}",
            converted.warnings
        );
        assert!(
            converted.warnings[2].starts_with("line 19:"),
            "{:?}",
            converted.warnings
        );
    }

    /// Older upstream files: a quoted thread count, the region and partition, PHANTOMJS, and
    /// a name that is near a setting.
    #[test]
    fn older_upstream_habits_convert() {
        let converted = convert(
            "NUM_THREADS = \"5\"\nREGION = 'us-gov-west-1'\nARN_PARTITION = 'aws-us-gov'\nPHANTOMJS = '/usr/bin/phantomjs'\nUPDATER_NUM_THREAD = 3\n",
        )
        .unwrap();
        let values = &converted.values;
        assert_eq!(values["UPDATER_NUM_THREADS"], Value::from(5));
        assert_eq!(values["AWS_REGION"], Value::from("us-gov-west-1"));
        assert_eq!(values["AWS_ARN_PARTITION"], Value::from("aws-us-gov"));
        assert_eq!(values.len(), 3, "{values:?}");
        let warnings = &converted.warnings;
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("line 4: PHANTOMJS is obsolete"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("the nearest setting is UPDATER_NUM_THREADS"),
            "{warnings:?}"
        );
    }

    #[test]
    fn unterminated_string_names_its_line() {
        let err = convert("A = 1\nROLENAME = 'oops\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn numbers_and_escapes() {
        let converted =
            convert("NUM_THREADS = 1_0\nAWS_REGION = 'eu-\\'west\\'-1'\nX = -2.5\n").unwrap();
        assert_eq!(converted.values["UPDATER_NUM_THREADS"], Value::from(10));
        assert_eq!(converted.values["AWS_REGION"], Value::from("eu-'west'-1"));
    }
}
