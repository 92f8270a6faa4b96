//! The write path's upsert rules, pruning and schema migrations, on SQLite and PostgreSQL, and
//! upstream's own database opening and serving unchanged.

mod common;

use std::collections::HashSet;

use aardvark::api::wire::render_services;
use aardvark::api::wire::RENDERING;
use aardvark::db::vocabulary::PageTexts;
use aardvark::db::vocabulary::{AdvisorFilter, StoredService};
use aardvark::db::write::{WriteOptions, WriteWarning};
use aardvark::db::{Database, Reader, Rendering};
use common::{fresh_db, principal, service, Backend, TestDb};
use serde_json::json;

const ROLE: &str = "arn:aws:iam::123456789012:role/App";

async fn stored(db: &Database, arn: &str) -> Vec<StoredService<'static>> {
    let filter = AdvisorFilter {
        arns: Some(vec![arn.to_owned()]),
        ..Default::default()
    };
    let page = Reader::new(db.clone())
        .advisors(&filter, 1, 10)
        .await
        .unwrap();
    page.principals()
        .unwrap()
        .into_iter()
        .next()
        .map(|p| {
            p.services
                .into_iter()
                .map(StoredService::into_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn row(namespace: &str, last: i64, entity: Option<&str>, total: i64) -> StoredService<'static> {
    StoredService {
        last_authenticated: Some(last),
        service_name: Some(format!("Service {namespace}").into()),
        service_namespace: Some(namespace.to_owned().into()),
        last_authenticated_entity: entity.map(|e| e.to_owned().into()),
        total_authenticated_entities: Some(total),
    }
}

async fn upsert_rules(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let first = principal(
        ROLE,
        vec![
            service("s3", 2_000, Some("e1"), 1),
            service("ec2", 2_000, Some("e1"), 1),
            service("iam", 2_000, Some("e1"), 1),
            service("sns", 0, None, 0),
        ],
    );
    let summary =
        t.db.store_principals(&[first], WriteOptions::default())
            .await
            .unwrap();
    assert_eq!(
        (summary.principals, summary.inserted, summary.updated),
        (1, 4, 0)
    );

    let second = principal(
        ROLE,
        vec![
            service("s3", 3_000, Some("e2"), 2), // newer: replaces, with entity and count
            service("ec2", 0, None, 0),          // aged out: becomes 0, with a warning
            service("iam", 1_000, Some("e0"), 5), // older: stored kept, with a warning
            service("sns", 0, None, 0),          // unchanged
            service("kms", 500, Some("e3"), 1),  // new namespace: inserted
        ],
    );
    let summary =
        t.db.store_principals(&[second], WriteOptions::default())
            .await
            .unwrap();
    assert_eq!(
        (summary.inserted, summary.updated, summary.unchanged),
        (1, 2, 2)
    );
    assert_eq!(
        summary.warnings,
        vec![
            WriteWarning::AgedOut {
                arn: ROLE.into(),
                namespace: "ec2".into(),
                previous: 2_000
            },
            WriteWarning::OlderIgnored {
                arn: ROLE.into(),
                namespace: "iam".into(),
                stored: 2_000,
                received: 1_000
            },
        ]
    );
    // Rows keep their ids (and so their order): ec2, iam, s3, sns from the first write, then kms.
    assert_eq!(
        stored(&t.db, ROLE).await,
        vec![
            row("ec2", 0, None, 0),
            row("iam", 2_000, Some("e1"), 1),
            row("s3", 3_000, Some("e2"), 2),
            row("sns", 0, None, 0),
            row("kms", 500, Some("e3"), 1),
        ]
    );
}

async fn names_are_truncated_and_duplicates_collapse(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let mut long = service(&"n".repeat(80), 10, None, 1);
    long.service_name = "é".repeat(200);
    let duplicate_old = service("s3", 5, None, 1);
    let duplicate_new = service("s3", 7, None, 1);
    t.store(&[principal(ROLE, vec![long, duplicate_old, duplicate_new])])
        .await;
    let rows = stored(&t.db, ROLE).await;
    assert_eq!(rows.len(), 2);
    let long_row = rows
        .iter()
        .find(|r| r.service_namespace.as_deref() != Some("s3"))
        .unwrap();
    assert_eq!(
        long_row.service_namespace.as_deref(),
        Some("n".repeat(64).as_str())
    );
    assert_eq!(
        long_row.service_name.as_deref(),
        Some("é".repeat(128).as_str())
    );
    let s3 = rows
        .iter()
        .find(|r| r.service_namespace.as_deref() == Some("s3"))
        .unwrap();
    assert_eq!(s3.last_authenticated, Some(7));
}

async fn last_updated_is_set_to_now_in_utc(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let before = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
    t.store(&[principal(ROLE, vec![service("s3", 1, None, 1)])])
        .await;
    let page = Reader::new(t.db.clone())
        .advisors(&AdvisorFilter::default(), 1, 10)
        .await
        .unwrap();
    let text = page.principals().unwrap()[0]
        .last_updated
        .clone()
        .unwrap()
        .into_owned();
    let stored = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let after = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(1);
    assert!(
        before <= stored && stored <= after,
        "{text} not between {before} and {after}"
    );
}

async fn pruning_removes_only_what_is_gone(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let kept = "arn:aws:iam::123456789012:role/Kept";
    let gone = "arn:aws:iam::123456789012:user/Gone";
    let other_account = "arn:aws:iam::999999999999:role/Other";
    t.store(&[
        principal(
            kept,
            vec![service("s3", 1, None, 1), service("ec2", 1, None, 1)],
        ),
        principal(gone, vec![service("s3", 1, None, 1)]),
        principal(other_account, vec![service("s3", 1, None, 1)]),
    ])
    .await;
    // Without pruning, a namespace AWS no longer returns stays.
    t.db.store_principals(
        &[principal(kept, vec![service("s3", 2, None, 1)])],
        WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(stored(&t.db, kept).await.len(), 2);
    let summary =
        t.db.store_principals(
            &[principal(kept, vec![service("s3", 2, None, 1)])],
            WriteOptions {
                prune_namespaces: true,
                ..WriteOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.namespaces_pruned, 1);
    assert_eq!(stored(&t.db, kept).await, vec![row("s3", 2, None, 1)]);

    let listed: HashSet<String> = [kept.to_owned()].into();
    let removed =
        t.db.prune_account(&"123456789012".parse().unwrap(), &listed)
            .await
            .unwrap();
    assert_eq!(removed, vec![gone.to_owned()]);
    let page = Reader::new(t.db.clone())
        .advisors(&AdvisorFilter::default(), 1, 10)
        .await
        .unwrap();
    let principals = page.principals().unwrap();
    let arns: Vec<&str> = principals.iter().map(|p| p.arn.as_ref()).collect();
    assert_eq!(arns, vec![kept, other_account]);
    // The removed principal's rows went with it.
    t.store(&[principal(gone, vec![])]).await;
    assert!(stored(&t.db, gone).await.is_empty());
}

async fn migrations_are_idempotent_and_reversible_by_drop(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    t.store(&[principal(ROLE, vec![service("s3", 1, None, 1)])])
        .await;
    t.db.migrate().await.unwrap();
    t.db.migrate().await.unwrap();
    assert!(t.db.is_migrated().await.unwrap());
    assert_eq!(
        stored(&t.db, ROLE).await.len(),
        1,
        "migrating again keeps data"
    );
    t.db.drop_all().await.unwrap();
    assert!(!t.db.is_migrated().await.unwrap());
    t.db.migrate().await.unwrap();
    assert!(stored(&t.db, ROLE).await.is_empty());
}

async fn duplicate_rows_from_older_writers_are_merged_by_the_migration(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    // An upstream-era database: only the first migration's schema, with a duplicated namespace.
    t.db.drop_all().await.unwrap();
    let create = match backend {
        Backend::Sqlite => include_str!("../migrations/sqlite/0001_upstream_schema.sql"),
        Backend::Postgres => include_str!("../migrations/postgres/0001_upstream_schema.sql"),
    };
    t.execute(create).await;
    t.execute(&format!("INSERT INTO aws_iam_object (id, arn, \"lastUpdated\") VALUES (1, '{ROLE}', '2026-01-01 00:00:00')")).await;
    t.execute("INSERT INTO advisor_data (id, item_id, \"lastAuthenticated\", \"serviceName\", \"serviceNamespace\", \"lastAuthenticatedEntity\", \"totalAuthenticatedEntities\") VALUES \
        (1, 1, 100, 'Service s3', 's3', NULL, 1), (2, 1, 300, 'Service s3', 's3', 'newest', 1), (3, 1, 300, 'Service s3', 's3', 'later copy', 1), (4, 1, 5, 'Service ec2', 'ec2', NULL, 1)").await;
    t.db.migrate().await.unwrap();
    assert_eq!(
        stored(&t.db, ROLE).await,
        vec![row("s3", 300, Some("newest"), 1), row("ec2", 5, None, 1)]
    );
}

/// The read path keeps principals in memory; writes from another process (another pool here)
/// must show at once: new principals, removed ones, and renamed ones.
async fn reads_follow_writes_from_other_processes(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let other = Database::connect(&t.uri, RENDERING).await.unwrap();
    // One reader, whose kept directory must follow the other pool's writes.
    let reader = Reader::new(t.db.clone());
    let all = |db: Reader| async move {
        let page = db
            .advisors(&AdvisorFilter::default(), 1, 100)
            .await
            .unwrap();
        page.principals()
            .unwrap()
            .into_iter()
            .map(|p| p.arn.into_owned())
            .collect::<Vec<_>>()
    };
    assert!(all(reader.clone()).await.is_empty());
    other
        .store_principals(
            &[principal(ROLE, vec![service("s3", 1, None, 1)])],
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(all(reader.clone()).await, vec![ROLE.to_owned()]);
    let second = "arn:aws:iam::123456789012:role/Second";
    other
        .store_principals(&[principal(second, vec![])], WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        all(reader.clone()).await,
        vec![ROLE.to_owned(), second.to_owned()]
    );
    other
        .prune_account(
            &"123456789012".parse().unwrap(),
            &HashSet::from([second.to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(all(reader.clone()).await, vec![second.to_owned()]);
    t.execute("UPDATE aws_iam_object SET arn = 'arn:aws:iam::123456789012:role/Renamed'")
        .await;
    assert_eq!(
        all(reader.clone()).await,
        vec!["arn:aws:iam::123456789012:role/Renamed".to_owned()]
    );
    other.close().await;
}

/// Text the database's JSON must escape (quotes, backslashes, control characters) and text it
/// need not (non-ASCII) comes back exactly as written.
async fn text_round_trips_exactly(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let odd = "Amazon \"Q\" \\ tab\there, line\nbreak, \u{1} and caf\u{e9} \u{1f600}";
    let mut usage = service("odd", 5, Some(odd), 1);
    usage.service_name = odd.to_owned();
    t.db.store_principals(&[principal(ROLE, vec![usage])], WriteOptions::default())
        .await
        .unwrap();
    let services = stored(&t.db, ROLE).await;
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].service_name.as_deref(), Some(odd));
    assert_eq!(services[0].last_authenticated_entity.as_deref(), Some(odd));
}

/// Every principal's services as the API's page writes them (kept renderings where there are
/// any) must equal a rendering of its rows as stored now.
async fn assert_renderings_current(t: &TestDb) {
    let everything = AdvisorFilter::default();
    let page = Reader::new(t.db.clone())
        .rendered_advisors(&everything, 1, 1000, PageTexts::Renderings)
        .await
        .unwrap();
    let served: Vec<(String, String)> = page
        .principals()
        .unwrap()
        .into_iter()
        .map(|p| (p.arn.to_owned(), p.services.into_owned()))
        .collect();
    let stored = Reader::new(t.db.clone())
        .advisors(&everything, 1, 1000)
        .await
        .unwrap();
    let expected: Vec<(String, String)> = stored
        .principals()
        .unwrap()
        .into_iter()
        .map(|p| {
            let services = render_services(p.last_updated.as_deref(), &p.services);
            (p.arn.into_owned(), services)
        })
        .collect();
    assert_eq!(served, expected);
}

/// A page of renderings holds its own principals, in id order, each with its own services;
/// a page past the end and a filter that matches nothing come empty (PostgreSQL sends a page
/// as one row per principal, or the principals' version alone when there is none).
async fn pages_hold_exactly_their_principals(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let arns: Vec<String> = (1..=3)
        .map(|n| format!("arn:aws:iam::123456789012:role/R{n}"))
        .collect();
    let principals: Vec<_> = arns
        .iter()
        .zip(1..)
        .map(|(arn, n)| principal(arn, vec![service(&format!("svc{n}"), n, None, n)]))
        .collect();
    t.db.store_principals(&principals, WriteOptions::default())
        .await
        .unwrap();
    let reader = Reader::new(t.db.clone());
    let page_of = |filter: AdvisorFilter, page: i64, texts: PageTexts| {
        let reader = reader.clone();
        async move {
            let rendered = reader
                .rendered_advisors(&filter, page, 2, texts)
                .await
                .unwrap();
            let principals = rendered
                .entries()
                .unwrap()
                .into_iter()
                .map(|(_, arn, _)| arn.to_owned())
                .collect::<Vec<_>>();
            (rendered.total, principals)
        }
    };
    let everything = AdvisorFilter::default();
    for texts in [PageTexts::Renderings, PageTexts::Digests] {
        assert_eq!(
            page_of(everything.clone(), 1, texts).await,
            (3, arns[..2].to_vec())
        );
        assert_eq!(
            page_of(everything.clone(), 2, texts).await,
            (3, arns[2..].to_vec())
        );
        assert_eq!(page_of(everything.clone(), 3, texts).await, (3, vec![]));
        let nothing = AdvisorFilter {
            phrase: Some("no such principal".to_owned()),
            ..Default::default()
        };
        assert_eq!(page_of(nothing, 1, texts).await, (0, vec![]));
    }
    let first = reader
        .rendered_advisors(&everything, 1, 2, PageTexts::Renderings)
        .await
        .unwrap();
    let services: Vec<String> = first
        .principals()
        .unwrap()
        .into_iter()
        .map(|p| p.services.into_owned())
        .collect();
    assert_eq!(services.len(), 2);
    assert!(services[0].contains("svc1") && !services[0].contains("svc2"));
    assert!(services[1].contains("svc2") && !services[1].contains("svc1"));
}

/// ARNs whose services are kept rendered, in order.
async fn kept_rendered(t: &TestDb) -> Vec<String> {
    t.strings(
        "SELECT o.arn FROM aws_iam_object o JOIN aardvark_rendered_services r \
         ON r.item_id = o.id ORDER BY o.arn",
    )
    .await
}

fn of_principal(arn: &str) -> String {
    format!("(SELECT id FROM aws_iam_object WHERE arn = '{arn}')")
}

/// Another build's format: the namespaces only, a text no build of format 1 writes.
fn render_format_2(_last_updated: Option<&str>, services: &[StoredService<'_>]) -> String {
    let namespaces: Vec<&str> = services
        .iter()
        .filter_map(|s| s.service_namespace.as_deref())
        .collect();
    serde_json::to_string(&namespaces).unwrap()
}

const FORMAT_2: Rendering = Rendering {
    format: 2,
    render: render_format_2,
    digest: |_| Some(String::new()),
};

/// What a reader connected with `rendering` serves for each principal.
async fn served_with(t: &TestDb, rendering: Rendering) -> Vec<(String, String)> {
    let db = Database::connect(&t.uri, rendering).await.unwrap();
    let page = Reader::new(db.clone())
        .rendered_advisors(&AdvisorFilter::default(), 1, 1000, PageTexts::Renderings)
        .await
        .unwrap();
    let served = page
        .principals()
        .unwrap()
        .into_iter()
        .map(|p| (p.arn.to_owned(), p.services.into_owned()))
        .collect();
    db.close().await;
    served
}

/// Renderings carry their format: a build never serves a rendering of another format (it
/// answers from the rows, in its own), and `render_missing` renders them again in its own.
async fn renderings_of_another_format_are_never_served(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    t.store(&[
        principal(
            ROLE,
            vec![service("s3", 5, None, 1), service("ec2", 3, None, 1)],
        ),
        principal(
            "arn:aws:iam::123456789012:user/Alice",
            vec![service("iam", 7, Some("x"), 2)],
        ),
    ])
    .await;
    let db = &t.db;
    let in_format = |rendering: Rendering| async move {
        let stored = Reader::new(db.clone())
            .advisors(&AdvisorFilter::default(), 1, 1000)
            .await
            .unwrap();
        stored
            .principals()
            .unwrap()
            .iter()
            .map(|p| {
                let services = (rendering.render)(p.last_updated.as_deref(), &p.services);
                (p.arn.to_string(), services)
            })
            .collect::<Vec<_>>()
    };
    let format_1 = in_format(RENDERING).await;
    let format_2 = in_format(FORMAT_2).await;
    assert_ne!(format_1, format_2);
    let formats = || async {
        let renderings = t
            .strings("SELECT CAST(format AS TEXT) FROM aardvark_rendered_services ORDER BY item_id")
            .await;
        let digests = t
            .strings("SELECT CAST(format AS TEXT) FROM aardvark_rendered_digests ORDER BY item_id")
            .await;
        assert_eq!(
            digests, renderings,
            "each rendering has its digest, of its format"
        );
        renderings
    };
    assert_eq!(formats().await, ["1", "1"]);

    // A build of format 2 over renderings of format 1: its own format, from the rows.
    assert_eq!(served_with(&t, FORMAT_2).await, format_2);
    let newer = Database::connect(&t.uri, FORMAT_2).await.unwrap();
    assert_eq!(newer.render_missing().await.unwrap(), 2);
    assert_eq!(newer.render_missing().await.unwrap(), 0);
    newer.close().await;
    assert_eq!(formats().await, ["2", "2"]);
    assert_eq!(served_with(&t, FORMAT_2).await, format_2);

    // And back: format 1 never serves what format 2 kept.
    assert_eq!(served_with(&t, RENDERING).await, format_1);
    assert_eq!(t.db.render_missing().await.unwrap(), 2);
    assert_eq!(formats().await, ["1", "1"]);
    assert_renderings_current(&t).await;
}

/// The write path keeps every principal it stores rendered; any other change to what a
/// rendering was made from removes it (the read path then renders from the rows), until
/// `render_missing` renders it again. Pages are never stale on the way.
async fn renderings_stay_current_whatever_changes_the_rows(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let (a, b, c) = (
        "arn:aws:iam::123456789012:role/A",
        "arn:aws:iam::123456789012:role/B",
        "arn:aws:iam::123456789012:user/C",
    );
    t.store(&[
        principal(
            a,
            vec![
                service("s3", 100, Some("entity"), 1),
                service("ec2", 0, None, 0),
                service("iam", 7, Some("x"), 2),
            ],
        ),
        principal(b, vec![service("kms", 9, Some("y"), 1)]),
        principal(c, vec![]),
    ])
    .await;
    assert_eq!(kept_rendered(&t).await, [a, b, c]);
    assert_renderings_current(&t).await;

    t.db.store_principals(
        &[principal(a, vec![service("s3", 200, Some("newer"), 3)])],
        WriteOptions {
            prune_namespaces: true,
            ..WriteOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(kept_rendered(&t).await, [a, b, c]);
    assert_renderings_current(&t).await;

    // Another writer: updated, inserted and deleted rows, and a principal's lastUpdated.
    t.execute(&format!(
        "UPDATE advisor_data SET \"serviceName\" = 'Changed by hand' WHERE item_id = {}",
        of_principal(a)
    ))
    .await;
    assert_eq!(kept_rendered(&t).await, [b, c]);
    assert_renderings_current(&t).await;
    t.execute(&format!(
        "INSERT INTO advisor_data (item_id, \"serviceNamespace\", \"serviceName\", \
         \"lastAuthenticated\", \"totalAuthenticatedEntities\") VALUES ({}, 'sts', 'STS', 5, 1)",
        of_principal(b)
    ))
    .await;
    assert_eq!(kept_rendered(&t).await, [c]);
    assert_renderings_current(&t).await;
    t.execute(&format!(
        "UPDATE aws_iam_object SET \"lastUpdated\" = '2020-01-02 03:04:05' WHERE arn = '{c}'"
    ))
    .await;
    assert!(kept_rendered(&t).await.is_empty());
    assert_renderings_current(&t).await;

    assert_eq!(t.db.render_missing().await.unwrap(), 3);
    assert_eq!(kept_rendered(&t).await, [a, b, c]);
    assert_renderings_current(&t).await;
    assert_eq!(t.db.render_missing().await.unwrap(), 0);

    t.execute(&format!(
        "DELETE FROM advisor_data WHERE item_id = {}",
        of_principal(a)
    ))
    .await;
    assert_eq!(kept_rendered(&t).await, [b, c]);
    assert_renderings_current(&t).await;
    t.db.prune_account(
        &"123456789012".parse().unwrap(),
        &HashSet::from([a.to_owned()]),
    )
    .await
    .unwrap();
    assert!(kept_rendered(&t).await.is_empty());
    assert_renderings_current(&t).await;
    if backend == Backend::Postgres {
        t.db.render_missing().await.unwrap();
        assert_eq!(kept_rendered(&t).await, [a]);
        t.execute("TRUNCATE advisor_data").await;
        assert!(kept_rendered(&t).await.is_empty());
        assert_renderings_current(&t).await;
    }
}

/// PostgreSQL: a writer that changes a principal's rows while the write path is rendering it
/// (holding the principal's row, from what it read before the change) waits for that rendering
/// to commit and then removes it, rather than letting it stand stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_rendering_from_before_a_concurrent_change_does_not_stand() {
    use sqlx::Connection;
    let Some(t) = fresh_db(Backend::Postgres).await else {
        return;
    };
    t.store(&[principal(ROLE, vec![service("s3", 1, None, 1)])])
        .await;
    let url = t.sqlx_url();
    let mut renderer = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mut rendering = renderer.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM aws_iam_object WHERE id = {} FOR NO KEY UPDATE",
        of_principal(ROLE)
    ))
    .fetch_all(&mut *rendering)
    .await
    .unwrap();

    let writer = tokio::spawn(async move {
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE advisor_data SET \"serviceName\" = 'Changed meanwhile' WHERE item_id = \
             (SELECT id FROM aws_iam_object)",
        )
        .execute(&mut other)
        .await
        .unwrap();
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting = t
            .strings(
                "SELECT CAST(pid AS TEXT) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if !waiting.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !writer.is_finished(),
            "the other writer did not wait for the principal being rendered"
        );
        tokio::task::yield_now().await;
    }
    sqlx::query(&format!(
        "INSERT INTO aardvark_rendered_services (item_id, services) VALUES ({}, '[\"stale\"]') \
         ON CONFLICT (item_id) DO UPDATE SET services = excluded.services",
        of_principal(ROLE)
    ))
    .execute(&mut *rendering)
    .await
    .unwrap();
    rendering.commit().await.unwrap();
    writer.await.unwrap();
    assert!(kept_rendered(&t).await.is_empty());
    assert_renderings_current(&t).await;
}

on_both_backends!(
    renderings_stay_current_whatever_changes_the_rows,
    pages_hold_exactly_their_principals,
    renderings_of_another_format_are_never_served,
    text_round_trips_exactly,
    reads_follow_writes_from_other_processes,
    upsert_rules,
    names_are_truncated_and_duplicates_collapse,
    last_updated_is_set_to_now_in_utc,
    pruning_removes_only_what_is_gone,
    migrations_are_idempotent_and_reversible_by_drop,
    duplicate_rows_from_older_writers_are_merged_by_the_migration,
);

/// A copy of the database upstream 0.3.5 wrote itself.
fn upstream_fixture() -> (tempfile::TempDir, String) {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upstream-0.3.5.db");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("upstream.db");
    std::fs::copy(&source, &copy)
        .unwrap_or_else(|err| panic!("cannot copy {}: {err}", source.display()));
    let uri = format!("sqlite:///{}", copy.display());
    (dir, uri)
}

#[tokio::test]
async fn upstream_database_opens_migrates_and_serves_exactly_its_data() {
    let (_dir, uri) = upstream_fixture();
    // Read the fixture as upstream left it, before we touch it.
    sqlx::any::install_default_drivers();
    let raw_url = uri.replacen("sqlite:///", "sqlite://", 1);
    let raw = sqlx::AnyPool::connect(&raw_url).await.unwrap();
    let principals: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, arn, CAST(\"lastUpdated\" AS TEXT) FROM aws_iam_object ORDER BY id",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    type Row = (
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT item_id, \"lastAuthenticated\", \"serviceName\", \"serviceNamespace\", \"lastAuthenticatedEntity\", \"totalAuthenticatedEntities\" FROM advisor_data ORDER BY item_id, id",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    raw.close().await;
    assert_eq!((principals.len(), rows.len()), (24, 122));

    let db = Database::connect(&uri, RENDERING).await.unwrap();
    assert!(!db.is_migrated().await.unwrap());
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    let app = common::spawn_app(&db).await;
    let body = app.get("/api/1/advisors?count=100").await.json();
    assert_eq!(
        (body["count"].clone(), body["total"].clone()),
        (json!(24), json!(24))
    );
    for (id, arn, last_updated) in &principals {
        let time =
            chrono::NaiveDateTime::parse_from_str(last_updated, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let expected_time = time.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let expected: Vec<serde_json::Value> = rows
            .iter()
            .filter(|r| r.0 == *id)
            .map(|r| {
                json!({
                    "lastAuthenticated": r.1, "serviceName": r.2, "serviceNamespace": r.3,
                    "lastAuthenticatedEntity": r.4, "totalAuthenticatedEntities": r.5,
                    "lastUpdated": expected_time,
                })
            })
            .collect();
        assert_eq!(body[arn], json!(expected), "{arn}");
    }
    // What upstream stored is each value's first sighting in the history, observed when its
    // principal was last collected.
    let (id, arn, last_updated) = &principals[0];
    let observed = chrono::NaiveDateTime::parse_from_str(last_updated, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut expected: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| r.0 == *id && r.3.is_some())
        .map(|r| {
            json!({"serviceNamespace": r.3, "lastAuthenticated": r.1.unwrap_or(0),
                   "previous": null, "observed": observed, "run": null})
        })
        .collect();
    expected.sort_by_key(|change| change["serviceNamespace"].as_str().unwrap().to_owned());
    let history = app
        .get(&format!("/api/1/history?arn={arn}&count=1000"))
        .await
        .json();
    assert_eq!(history["changes"], json!(expected));
    // Unused-access answers cover upstream's principals too: kinds from their ARNs.
    let totals = app.get("/api/1/unused/accounts?count=1000").await.json();
    let counted: i64 = totals["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["principals"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 24, "{totals}");
    let unused = app.get("/api/1/unused?count=1000").await.json();
    assert_eq!(unused["total"], 24);
    // The truncated name and namespace upstream stored come back as they are.
    let long = rows
        .iter()
        .find(|r| r.3.as_deref().is_some_and(|ns| ns.len() == 64))
        .expect("a 64-character namespace");
    assert_eq!(long.2.as_deref().map(|n| n.chars().count()), Some(128));
    // And the write path works on it: a new collection updates upstream's rows in place.
    let arn = &principals[0].1;
    db.store_principals(
        &[principal(
            arn,
            vec![service("ec2", 4_000_000_000_000, Some(arn), 1)],
        )],
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let services = stored(&db, arn).await;
    assert_eq!(
        services.len(),
        rows.iter().filter(|r| r.0 == principals[0].0).count()
    );
    assert!(services
        .iter()
        .any(|s| s.service_namespace.as_deref() == Some("ec2")
            && s.last_authenticated == Some(4_000_000_000_000)));
}

#[tokio::test]
async fn sqlite_readers_are_not_blocked_by_a_writer() {
    let Some(t) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let writer_db = t.db.clone();
    let writer = tokio::spawn(async move {
        for round in 0..40 {
            let batch: Vec<_> = (0..50)
                .map(|i| {
                    principal(
                        &format!("arn:aws:iam::123456789012:role/r{i}"),
                        vec![service("s3", round, None, 1)],
                    )
                })
                .collect();
            writer_db
                .store_principals(&batch, WriteOptions::default())
                .await
                .unwrap();
        }
    });
    let mut reads = 0;
    while !writer.is_finished() {
        Reader::new(t.db.clone())
            .advisors(&AdvisorFilter::default(), 1, 30)
            .await
            .unwrap();
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    let page = Reader::new(t.db.clone())
        .advisors(&AdvisorFilter::default(), 1, 100)
        .await
        .unwrap();
    assert_eq!(page.total, 50);
    assert!(page
        .principals()
        .unwrap()
        .iter()
        .all(|p| p.services[0].last_authenticated == Some(39)));
}
