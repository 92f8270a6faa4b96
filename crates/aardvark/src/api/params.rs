//! Request parameters of `/api/1/advisors`, read the way upstream's Flask-RESTful parser read
//! them: from a JSON body (which wins for scalars), the query string and a form body, with
//! integers parsed like Python's `int()`.

use serde_json::{Map, Value};

use super::ApiError;

/// The longest page of the lists beyond upstream's (docs/behaviour.md, section 6.2).
pub const MAX_LIST_COUNT: i64 = 1000;

/// Which page of a list, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: i64,
    pub count: i64,
}

impl Paging {
    /// Items before the page.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.count)
    }

    /// This page of `items`, a whole list held in memory.
    pub fn page_of<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(usize::try_from(self.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(self.count).unwrap_or(0))
            .collect()
    }
}

/// Every parameter source of one request.
#[derive(Debug, Default)]
pub struct RequestParams {
    json: Map<String, Value>,
    /// Query string pairs, then form body pairs (Flask's `request.values`).
    values: Vec<(String, String)>,
}

impl RequestParams {
    /// The parameters of a request that only has a query string (the lists of section 6.2).
    pub fn of_query(uri: &axum::http::Uri) -> Result<Self, ApiError> {
        Self::parse(uri.query(), None, &[])
    }

    /// Whether the query string or form body names `name`.
    pub fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(key, _)| key == name) || self.json.contains_key(name)
    }

    /// `page` and `count` of a list of section 6.2 (`count` at most [`MAX_LIST_COUNT`]).
    pub fn list_paging(&self) -> Result<Paging, ApiError> {
        self.paging(Some(MAX_LIST_COUNT))
    }

    pub fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut params = RequestParams {
            json: Map::new(),
            values: form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        };
        let mime = content_type
            .and_then(|value| value.split(';').next())
            .map(|mime| mime.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let is_json = mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json"));
        // Only JSON's own whitespace makes an empty body: a form feed is not JSON.
        let blank = body
            .iter()
            .all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
        if is_json && !blank {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => params.json = map,
                Ok(other) => {
                    return Err(ApiError::bad_request(format!(
                        "the JSON body must be an object of parameters, got {}",
                        json_kind(&other)
                    )))
                }
                Err(err) => {
                    return Err(ApiError::bad_request(format!(
                        "the JSON body is malformed: {err}"
                    )))
                }
            }
        } else if mime == "application/x-www-form-urlencoded" {
            params
                .values
                .extend(form_urlencoded::parse(body).into_owned());
        }
        Ok(params)
    }

    fn first_value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `page` (default 1, from 1) and `count` (default 30, from 0 to `max_count` if any).
    /// A value the JSON body overrides must be valid too, so that what the document says of
    /// each parameter holds wherever it is sent.
    pub fn paging(&self, max_count: Option<i64>) -> Result<Paging, ApiError> {
        let pages = self.integer_values("page", 1)?;
        let counts = self.integer_values("count", 30)?;
        if let Some(page) = pages.iter().find(|page| **page < 1) {
            return Err(ApiError::bad_request(format!(
                "invalid value for 'page': {page}; pages are numbered from 1"
            )));
        }
        let out_of_range = |count: &&i64| match max_count {
            Some(max) => !(0..=max).contains(*count),
            None => **count < 0,
        };
        if let Some(count) = counts.iter().find(out_of_range) {
            return Err(ApiError::bad_request(match max_count {
                Some(max) => {
                    format!("invalid value for 'count': {count}; it must be from 0 to {max}")
                }
                None => format!("invalid value for 'count': {count}; it must be 0 or more"),
            }));
        }
        Ok(Paging {
            page: pages[0],
            count: counts[0],
        })
    }

    /// An integer parameter within `min..=max`, `default` when absent.
    pub fn integer_in(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ApiError> {
        let values = self.integer_values(name, default)?;
        if let Some(value) = values.iter().find(|value| !(min..=max).contains(*value)) {
            return Err(ApiError::bad_request(format!(
                "invalid value for '{name}': {value}; it must be from {min} to {max}"
            )));
        }
        Ok(values[0])
    }

    /// Every value given for an integer parameter, the one that counts first: the JSON body's
    /// (`null` is `default`), then the query string's or form's; `default` when none is given.
    /// Each must be an integer, also those that do not count.
    fn integer_values(&self, name: &str, default: i64) -> Result<Vec<i64>, ApiError> {
        let invalid = |shown: String| {
            ApiError::bad_request(format!(
                "invalid value for '{name}': {shown} is not an integer"
            ))
        };
        let mut values = Vec::with_capacity(2);
        if let Some(value) = self.json.get(name) {
            values.push(match value {
                Value::Null => default,
                Value::Bool(flag) => i64::from(*flag),
                Value::Number(number) => match number.as_i64() {
                    Some(int) => int,
                    // Python's int() truncates floats towards zero.
                    None => number
                        .as_f64()
                        .map(f64::trunc)
                        .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                        .ok_or_else(|| invalid(number.to_string()))?,
                },
                Value::String(text) => {
                    python_int(text).ok_or_else(|| invalid(super::quoted(text)))?
                }
                other => return Err(invalid(json_kind(other).to_owned())),
            });
        }
        if let Some(text) = self.first_value(name) {
            values.push(python_int(text).ok_or_else(|| invalid(super::quoted(text)))?);
        }
        if values.is_empty() {
            values.push(default);
        }
        Ok(values)
    }

    /// A string parameter; JSON numbers and booleans read as Python's `str()` would.
    /// The `account` parameter: an account id.
    pub fn account(&self) -> Result<Option<crate::arn::AccountId>, ApiError> {
        let Some(text) = self.string("account")? else {
            return Ok(None);
        };
        let account = text.parse().map_err(|expected| {
            ApiError::bad_request(format!(
                "invalid value for 'account': {}; it must be {expected}",
                super::quoted(&text)
            ))
        })?;
        Ok(Some(account))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        if let Some(value) = self.json.get(name) {
            return match value {
                Value::Null => Ok(None),
                Value::Array(_) | Value::Object(_) => Err(ApiError::bad_request(format!(
                    "invalid value for '{name}': expected a string, got {}",
                    json_kind(value)
                ))),
                scalar => Ok(Some(python_str(scalar))),
            };
        }
        Ok(self.first_value(name).map(str::to_owned))
    }

    /// A parameter naming a variant of `T`; the error lists `T`'s names.
    pub fn named<T: crate::named::Named>(&self, name: &str) -> Result<Option<T>, ApiError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        T::from_name(&text).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid value for '{name}': {}; it must be {}",
                super::quoted(&text),
                T::choices()
            ))
        })
    }

    /// Every `arn` given: the JSON body's (a string or a list) first, then the query string's
    /// and the form's. `None` when there are none, which means no filter.
    pub fn arns(&self) -> Result<Option<Vec<String>>, ApiError> {
        let mut arns = Vec::new();
        match self.json.get("arn") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(arn) => arns.push(arn.clone()),
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "invalid value for 'arn': expected strings in the list, got {}",
                                json_kind(other)
                            )))
                        }
                    }
                }
            }
            Some(Value::Object(_)) => return Err(ApiError::bad_request(
                "invalid value for 'arn': expected a string or a list of strings, got an object",
            )),
            Some(scalar) => arns.push(python_str(scalar)),
        }
        arns.extend(
            self.values
                .iter()
                .filter(|(key, _)| key == "arn")
                .map(|(_, value)| value.clone()),
        );
        Ok((!arns.is_empty()).then_some(arns))
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Python's `str()` of a JSON scalar.
fn python_str(value: &Value) -> String {
    match value {
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What the OpenAPI document says these readers take, so that it describes the server exactly
/// (checked by schemathesis in CI). Each documents a subset of what is accepted where the
/// full set has no JSON Schema form (other Unicode white space, integers of 19 digits).
pub mod schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};

    /// White space [`super::python_int`] trims (a subset of what it trims).
    const SPACE: &str = "[ \\t\\n\\r\\x0b\\x0c]*";

    fn typed(kind: Type) -> ObjectBuilder {
        ObjectBuilder::new().schema_type(kind)
    }

    /// An integer as [`super::RequestParams::integer`] reads it from a JSON body, at least
    /// `minimum` (0 or 1): a JSON integer, a number (truncated), a boolean, a string Python's
    /// `int()` takes, or `null` (the default).
    pub fn json_integer(minimum: i64) -> Schema {
        let digits = "(0_?)*[1-9](_?[0-9]){0,17}";
        let text = if minimum >= 1 {
            format!("^{SPACE}\\+?{digits}{SPACE}$")
        } else {
            format!("^{SPACE}([+-]?(0_?)*0|\\+?{digits}){SPACE}$")
        };
        let booleans = if minimum >= 1 {
            typed(Type::Boolean).enum_values(Some([true]))
        } else {
            typed(Type::Boolean)
        };
        AnyOfBuilder::new()
            .item(
                typed(Type::Integer)
                    .minimum(Some(minimum))
                    .maximum(Some(i64::MAX)),
            )
            .item(
                typed(Type::Number)
                    .exclusive_minimum(Some(minimum as f64 - 1.0))
                    .exclusive_maximum(Some(9.2e18)),
            )
            .item(booleans)
            .item(typed(Type::String).pattern(Some(text)))
            .item(typed(Type::Null))
            .into()
    }

    /// Any JSON scalar or `null`.
    fn scalar() -> AnyOfBuilder {
        AnyOfBuilder::new()
            .item(typed(Type::String))
            .item(typed(Type::Number))
            .item(typed(Type::Boolean))
            .item(typed(Type::Null))
    }

    /// A string as [`super::RequestParams::string`] reads it from a JSON body: any JSON
    /// scalar (numbers and booleans as Python's `str()` writes them) or `null`.
    pub fn json_string() -> Schema {
        scalar().into()
    }

    /// `arn` in a JSON body ([`super::RequestParams::arns`]): a scalar or a list of strings.
    pub fn json_arns() -> Schema {
        scalar()
            .item(ArrayBuilder::new().items(typed(Type::String)))
            .into()
    }
}

/// Python's `int()` of a string: surrounding white space, one sign, and single underscores
/// between digits are accepted.
pub fn python_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !well_formed {
        return None;
    }
    let magnitude: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_of_whitespace_is_empty_only_in_json_s_own_whitespace() {
        let json = Some("application/json");
        assert!(RequestParams::parse(None, json, b" \t\r\n").is_ok());
        for body in [&b"\x0c"[..], b" \x0b ", b"\xa0"] {
            let err = RequestParams::parse(None, json, body).unwrap_err();
            assert!(
                err.message.contains("malformed"),
                "{body:?}: {}",
                err.message
            );
        }
    }

    #[test]
    fn python_int_accepts_what_python_accepts() {
        for (text, expected) in [
            ("2", 2),
            ("+2", 2),
            (" 3 ", 3),
            ("1_0", 10),
            ("-4", -4),
            ("007", 7),
        ] {
            assert_eq!(python_int(text), Some(expected), "{text:?}");
        }
        for text in [
            "",
            " ",
            "abc",
            "1.5",
            "_1",
            "1_",
            "1__0",
            "+-1",
            "- 1",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(python_int(text), None, "{text:?}");
        }
    }

    #[test]
    fn documented_integer_strings_are_exactly_some_the_server_takes() {
        let cases = [
            "1",
            " +1 ",
            "\t7\n",
            "0_1",
            "1_000",
            "00",
            "0",
            "-0",
            "+0",
            "-0_0",
            "-1",
            "1__0",
            "_1",
            "1_",
            "",
            " ",
            "abc",
            "1.5",
            "0x10",
            "999999999999999999",
            "9999999999999999999",
        ];
        for minimum in [0, 1] {
            let schema = serde_json::to_value(schema::json_integer(minimum)).unwrap();
            let pattern = schema["anyOf"][3]["pattern"].as_str().unwrap();
            let documented = regex::Regex::new(pattern).unwrap();
            let matched: Vec<&str> = cases
                .iter()
                .copied()
                .filter(|t| documented.is_match(t))
                .collect();
            for text in &matched {
                assert!(
                    python_int(text).is_some_and(|n| n >= minimum),
                    "{text:?} is documented for minimum {minimum} but not accepted"
                );
            }
            let expected: &[&str] = if minimum == 1 {
                &["1", " +1 ", "\t7\n", "0_1", "1_000", "999999999999999999"]
            } else {
                &[
                    "1",
                    " +1 ",
                    "\t7\n",
                    "0_1",
                    "1_000",
                    "00",
                    "0",
                    "-0",
                    "+0",
                    "-0_0",
                    "999999999999999999",
                ]
            };
            assert_eq!(matched, expected, "minimum {minimum}");
        }
    }

    #[test]
    fn json_scalars_win_and_arns_merge() {
        let params = RequestParams::parse(
            Some("page=3&arn=B&arn=C"),
            Some("application/json; charset=utf-8"),
            br#"{"page": 2.7, "count": true, "arn": ["A"], "phrase": 12}"#,
        )
        .unwrap();
        assert_eq!(params.integer_values("page", 1).unwrap(), [2, 3]);
        assert_eq!(params.integer_values("count", 30).unwrap(), [1]);
        let paging = params.paging(None).unwrap();
        assert_eq!((paging.page, paging.count), (2, 1));
        let overridden =
            RequestParams::parse(Some("page=0"), Some("application/json"), br#"{"page": 2}"#)
                .unwrap();
        assert!(
            overridden.paging(None).is_err(),
            "a page the body overrides is checked too"
        );
        assert_eq!(params.string("phrase").unwrap().as_deref(), Some("12"));
        assert_eq!(params.arns().unwrap().unwrap(), ["A", "B", "C"]);
    }

    #[test]
    fn body_kinds() {
        let text = RequestParams::parse(None, Some("text/plain"), br#"{"page": 5}"#).unwrap();
        assert_eq!(text.integer_values("page", 1).unwrap(), [1]);
        let form = RequestParams::parse(None, Some("application/x-www-form-urlencoded"), b"page=4")
            .unwrap();
        assert_eq!(form.integer_values("page", 1).unwrap(), [4]);
        assert!(RequestParams::parse(None, Some("application/json"), b"{").is_err());
        assert!(RequestParams::parse(None, Some("application/json"), b"[1]").is_err());
        let empty = RequestParams::parse(None, Some("application/json"), b"").unwrap();
        assert_eq!(empty.arns().unwrap(), None);
    }
}
