//! Which `Host` names the server answers for (`ALLOWED_HOSTS`). A web page can make a browser
//! send requests to a server on loopback or on a private network by pointing a name of its own
//! at that address (DNS rebinding); the browser then sends that name as `Host`. Answering only
//! for known names (421 otherwise) keeps such a page from reading the API.
//!
//! The default: bound to a loopback address, the bound address and `localhost`; bound to any
//! other address, any name (clients reach it by names we cannot know; tokens guard it).

use std::net::{IpAddr, SocketAddr};

/// One entry of `ALLOWED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any name.
    Any,
    /// A name or an IP address, lower case, without brackets.
    Exact(String),
    /// `*.example.com`: any name that ends with `.example.com` (kept with its leading dot).
    Suffix(String),
}

impl HostPattern {
    /// Parses an entry; `None` when it is not a host name, an IP address, `*` or `*.name`.
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry == "*" {
            return Some(Self::Any);
        }
        if let Some(name) = entry.strip_prefix("*.") {
            return is_dns_name(name).then(|| Self::Suffix(format!(".{name}")));
        }
        let bare = entry
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(&entry);
        if bare.parse::<IpAddr>().is_ok() || is_dns_name(bare) {
            return Some(Self::Exact(bare.to_owned()));
        }
        None
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == name,
            Self::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The names a server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<HostPattern>);

impl Default for AllowedHosts {
    /// Any name (a server whose address is not known, such as one built by a test).
    fn default() -> Self {
        Self(vec![HostPattern::Any])
    }
}

impl AllowedHosts {
    /// `configured` (already checked by the settings) or, without it, the default for a
    /// server bound to `bound`.
    pub fn for_server(configured: Option<&[String]>, bound: SocketAddr) -> Self {
        match configured {
            Some(entries) => Self(
                entries
                    .iter()
                    .filter_map(|e| HostPattern::parse(e))
                    .collect(),
            ),
            None if bound.ip().is_loopback() => Self(vec![
                HostPattern::Exact("localhost".into()),
                HostPattern::Exact(bound.ip().to_string()),
            ]),
            None => Self::default(),
        }
    }

    /// Whether any name is answered.
    pub fn is_any(&self) -> bool {
        self.0.contains(&HostPattern::Any)
    }

    /// Whether a request whose `Host` (or authority) is `host` is answered. A request without
    /// one is: browsers always send it, so its absence is no rebinding.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = host_name(host).to_ascii_lowercase();
        self.0.iter().any(|pattern| pattern.matches(&name))
    }

    /// The entries, as an operator would write them (for messages).
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|pattern| match pattern {
                HostPattern::Any => "*".to_owned(),
                HostPattern::Exact(name) => name.clone(),
                HostPattern::Suffix(suffix) => format!("*{suffix}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The name part of a `Host` value: without its port, and without the brackets of an IPv6
/// address.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_or_are_refused() {
        assert_eq!(HostPattern::parse("*"), Some(HostPattern::Any));
        assert_eq!(
            HostPattern::parse("Aardvark.Example.com"),
            Some(HostPattern::Exact("aardvark.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.example.com"),
            Some(HostPattern::Suffix(".example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("[::1]"),
            Some(HostPattern::Exact("::1".into()))
        );
        for bad in [
            "",
            "host:5000",
            "http://host",
            "a b",
            "*.",
            "x..y",
            "*x.com",
        ] {
            assert_eq!(HostPattern::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loopback_servers_answer_for_their_address_and_localhost_only() {
        let hosts = AllowedHosts::for_server(None, "127.0.0.1:5000".parse().unwrap());
        for allowed in ["127.0.0.1:5000", "localhost:5000", "LOCALHOST", "127.0.0.1"] {
            assert!(hosts.allows(Some(allowed)), "{allowed}");
        }
        for refused in [
            "evil.example:5000",
            "127.0.0.2:5000",
            "localhost.evil.example",
        ] {
            assert!(!hosts.allows(Some(refused)), "{refused}");
        }
        assert!(hosts.allows(None));
        let v6 = AllowedHosts::for_server(None, "[::1]:5000".parse().unwrap());
        assert!(v6.allows(Some("[::1]:5000")));
        assert!(!v6.allows(Some("evil.example")));
    }

    #[test]
    fn other_addresses_answer_for_any_name_unless_configured() {
        let open = AllowedHosts::for_server(None, "0.0.0.0:5000".parse().unwrap());
        assert!(open.is_any() && open.allows(Some("anything.example:5000")));
        let configured = AllowedHosts::for_server(
            Some(&["aardvark.example.com".into(), "*.corp.example".into()]),
            "0.0.0.0:5000".parse().unwrap(),
        );
        assert!(configured.allows(Some("aardvark.example.com:5000")));
        assert!(configured.allows(Some("a.b.corp.example")));
        assert!(!configured.allows(Some("corp.example")));
        assert!(!configured.allows(Some("evil.example")));
        assert_eq!(
            configured.describe(),
            "aardvark.example.com, *.corp.example"
        );
    }
}
