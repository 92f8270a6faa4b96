//! The API's wire format for a principal's services: the entries of `/api/1/advisors` in
//! upstream's exact JSON (key order, RFC 1123 dates), and the rendering storage keeps of them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::db::rendered::Rendering;
use crate::db::vocabulary::{borrowed_text, StoredService};

/// What storage renders principals with: [`render_services`], and [`digest_services`] for
/// combining. Its `format` must change whenever the text either writes changes, so that
/// renderings and digests kept by another build are made again rather than served.
pub const RENDERING: Rendering = Rendering {
    format: 1,
    render: render_services,
    digest: digest_services,
};

/// One service of one principal. Fields are declared in sorted order: that is the JSON order.
/// Read back from kept renderings, it borrows from them (text with escapes is copied).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceEntry<'a> {
    /// Epoch milliseconds of the last use; 0 when not used in AWS's tracking window.
    #[serde(rename = "lastAuthenticated")]
    pub last_authenticated: Option<i64>,
    #[serde(
        rename = "lastAuthenticatedEntity",
        borrow,
        deserialize_with = "borrowed_text"
    )]
    pub last_authenticated_entity: Option<Cow<'a, str>>,
    /// When this principal was last collected (RFC 1123, GMT).
    #[serde(rename = "lastUpdated", borrow, deserialize_with = "borrowed_text")]
    pub last_updated: Option<Cow<'a, str>>,
    #[serde(rename = "serviceName", borrow, deserialize_with = "borrowed_text")]
    pub service_name: Option<Cow<'a, str>>,
    #[serde(
        rename = "serviceNamespace",
        borrow,
        deserialize_with = "borrowed_text"
    )]
    pub service_namespace: Option<Cow<'a, str>>,
    #[serde(rename = "totalAuthenticatedEntities")]
    pub total_authenticated_entities: Option<i64>,
}

impl<'a> ServiceEntry<'a> {
    /// `last_updated` already in RFC 1123 (see [`crate::time::rfc1123`]).
    pub fn new(service: &'a StoredService<'a>, last_updated: Option<&'a str>) -> Self {
        let borrowed = |text: &'a Option<Cow<'a, str>>| text.as_deref().map(Cow::Borrowed);
        ServiceEntry {
            last_authenticated: service.last_authenticated,
            last_authenticated_entity: borrowed(&service.last_authenticated_entity),
            last_updated: last_updated.map(Cow::Borrowed),
            service_name: borrowed(&service.service_name),
            service_namespace: borrowed(&service.service_namespace),
            total_authenticated_entities: service.total_authenticated_entities,
        }
    }
}

/// A principal's services as the API writes them: a JSON array of [`ServiceEntry`], in the
/// order given, each with the principal's `lastUpdated` (as stored) in RFC 1123.
pub fn render_services(last_updated: Option<&str>, services: &[StoredService<'_>]) -> String {
    let last_updated = last_updated.map(crate::time::rfc1123);
    let entries: Vec<ServiceEntry> = services
        .iter()
        .map(|service| ServiceEntry::new(service, last_updated.as_deref()))
        .collect();
    serde_json::to_string(&entries).expect("service entries always serialize")
}

/// A rendering's digest: what a combined answer takes of each entry, without the keys. The
/// JSON array `[lastUpdated, [[lastAuthenticated, totalAuthenticatedEntities, serviceNamespace,
/// serviceName, lastAuthenticatedEntity], ...]]`, the entries in the rendering's order, those
/// without a namespace left out (combining leaves them out). Texts are kept as JSON, to be
/// copied into answers as they are.
#[derive(Deserialize)]
pub struct Digest<'a> {
    /// Shared by every entry of a rendering.
    #[serde(borrow)]
    pub last_updated: &'a RawValue,
    #[serde(borrow)]
    pub entries: Vec<DigestEntry<'a>>,
}

/// One entry of a [`Digest`].
#[derive(Deserialize)]
pub struct DigestEntry<'a> {
    pub last_authenticated: Option<i64>,
    pub total_authenticated_entities: Option<i64>,
    #[serde(borrow)]
    pub service_namespace: &'a RawValue,
    #[serde(borrow)]
    pub service_name: &'a RawValue,
    #[serde(borrow)]
    pub last_authenticated_entity: &'a RawValue,
}

impl<'a> DigestEntry<'a> {
    /// The namespace as text.
    pub fn namespace(&self) -> Result<Cow<'a, str>, serde_json::Error> {
        let raw: &'a RawValue = self.service_namespace;
        let json = raw.get();
        match json.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(plain) if !plain.contains('\\') => Ok(Cow::Borrowed(plain)),
            _ => serde_json::from_str::<String>(json).map(Cow::Owned),
        }
    }
}

/// The digest of a rendering [`render_services`] wrote; `None` for any other text, or entries
/// that do not share one `lastUpdated` (which `render_services` never writes).
pub fn digest_services(rendering: &str) -> Option<String> {
    #[derive(Serialize)]
    struct Written<'a>(Option<&'a str>, Vec<WrittenEntry<'a>>);
    #[derive(Serialize)]
    struct WrittenEntry<'a>(
        Option<i64>,
        Option<i64>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let entries: Vec<ServiceEntry> = serde_json::from_str(rendering).ok()?;
    let last_updated = entries
        .first()
        .and_then(|entry| entry.last_updated.as_deref());
    if entries
        .iter()
        .any(|entry| entry.last_updated.as_deref() != last_updated)
    {
        return None;
    }
    let written = entries
        .iter()
        .filter_map(|entry| {
            Some(WrittenEntry(
                entry.last_authenticated,
                entry.total_authenticated_entities,
                entry.service_namespace.as_deref()?,
                entry.service_name.as_deref(),
                entry.last_authenticated_entity.as_deref(),
            ))
        })
        .collect();
    serde_json::to_string(&Written(last_updated, written)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_hold_what_combining_takes_of_each_entry() {
        let service = |namespace: Option<&'static str>, name: Option<&'static str>| StoredService {
            last_authenticated: Some(5),
            service_name: name.map(Cow::Borrowed),
            service_namespace: namespace.map(Cow::Borrowed),
            last_authenticated_entity: Some(Cow::Borrowed("arn:aws:iam::1:role/ü ☃")),
            total_authenticated_entities: None,
        };
        let rendering = render_services(
            Some("2026-11-22 19:54:58"),
            &[
                service(Some("s3"), Some("Amazon S3")),
                service(None, Some("no namespace")),
                service(Some("we\"ird\\ns"), None),
            ],
        );
        let digest = digest_services(&rendering).unwrap();
        assert_eq!(
            digest,
            r#"["Sun, 22 Nov 2026 19:54:58 GMT",[[5,null,"s3","Amazon S3","arn:aws:iam::1:role/ü ☃"],[5,null,"we\"ird\\ns",null,"arn:aws:iam::1:role/ü ☃"]]]"#
        );
        let read: Digest = serde_json::from_str(&digest).unwrap();
        assert_eq!(read.last_updated.get(), "\"Sun, 22 Nov 2026 19:54:58 GMT\"");
        let namespaces: Vec<_> = read
            .entries
            .iter()
            .map(|entry| entry.namespace().unwrap())
            .collect();
        assert_eq!(namespaces, ["s3", "we\"ird\\ns"]);
        assert!(matches!(namespaces[0], Cow::Borrowed(_)));
        let first = &read.entries[0];
        assert_eq!(first.last_authenticated, Some(5));
        assert_eq!(first.total_authenticated_entities, None);
        assert_eq!(first.service_name.get(), "\"Amazon S3\"");

        assert_eq!(digest_services("[]").unwrap(), "[null,[]]");
        assert_eq!(digest_services("{\"not\":\"entries\"}"), None);
        let mixed = rendering.replacen("Sun, 22 Nov", "Mon, 23 Nov", 1);
        assert_eq!(
            digest_services(&mixed),
            None,
            "entries of differing lastUpdated"
        );
    }
}
