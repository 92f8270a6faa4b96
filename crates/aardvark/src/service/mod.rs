//! `aardvark serve` as a service: the API over HTTP or HTTPS, collections on a schedule,
//! authentication and metrics, and a graceful shutdown: on SIGTERM or SIGINT the server stops
//! accepting, lets requests in flight finish (up to `SHUTDOWN_TIMEOUT_SECONDS`), and a
//! scheduled run starts no new principal, finishes its writes and is recorded `interrupted`.
//! Connections are bounded in number and time ([`connections`]).

pub mod connections;
pub mod schedule;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::api::ApiOptions;
use crate::config::Settings;
use crate::db::Database;
use crate::hosts::AllowedHosts;
use connections::{ConnectionLimits, Limited};
use schedule::Schedule;

/// What `serve` serves.
pub struct Service {
    pub db: Database,
    pub listener: std::net::TcpListener,
    /// HTTPS when set ([`tls::load`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub schedule: Option<Schedule>,
    /// How long requests in flight, and a scheduled run, may take to finish once asked to stop.
    pub shutdown_timeout: Duration,
    pub limits: ConnectionLimits,
}

impl Service {
    /// The API options `settings` ask for of a server bound to `bound`, counting the
    /// schedule's AWS calls if there is one.
    pub fn api_options(
        settings: &Settings,
        schedule: Option<&Schedule>,
        bound: SocketAddr,
    ) -> ApiOptions {
        let allowed_hosts = AllowedHosts::for_server(settings.allowed_hosts.as_deref(), bound);
        if !bound.ip().is_loopback() && !settings.api_tokens.is_enabled() {
            tracing::warn!(
                %bound,
                "serving without API_TOKENS on an address other than loopback: whoever reaches it reads everything"
            );
        }
        ApiOptions {
            tokens: settings.api_tokens.clone(),
            metrics_require_token: settings.metrics_require_token,
            aws_metrics: schedule.map(|schedule| schedule.collector.aws_metrics().clone()),
            allowed_hosts,
            https: settings.tls_cert_file.is_some(),
            access_log: settings.access_log,
            costly_queries: settings.costly_queries,
            body_timeout: Some(settings.header_read_timeout),
        }
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(
        self,
        options: &ApiOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Service {
            db,
            listener,
            tls,
            schedule,
            shutdown_timeout,
            limits,
        } = self;
        let app = crate::api::app(db.clone(), options)
            .into_make_service_with_connect_info::<SocketAddr>();
        let stopper = schedule
            .as_ref()
            .map(|schedule| schedule.collector.stopper());
        let collecting = schedule.map(|schedule| tokio::spawn(schedule::run(schedule, db)));
        let handle = axum_server::Handle::new();
        tokio::spawn({
            let handle = handle.clone();
            async move {
                shutdown.await;
                tracing::info!(
                    timeout = %humantime::format_duration(shutdown_timeout),
                    "stopping: no new connection; requests in flight finish; a scheduled run starts no new principal"
                );
                if let Some(stopper) = stopper {
                    stopper.stop();
                }
                handle.graceful_shutdown(Some(shutdown_timeout));
            }
        });
        let limited = Limited::new(limits.max_connections);
        let timeout = limits.header_read_timeout;
        match tls {
            Some(config) => {
                let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(config))
                    .handshake_timeout(timeout)
                    .acceptor(limited);
                bounded(axum_server::from_tcp(listener)?.acceptor(acceptor), timeout)
                    .handle(handle)
                    .serve(app)
                    .await?
            }
            None => {
                bounded(axum_server::from_tcp(listener)?.acceptor(limited), timeout)
                    .handle(handle)
                    .serve(app)
                    .await?
            }
        }
        if let Some(collecting) = collecting {
            if tokio::time::timeout(shutdown_timeout, collecting)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the scheduled run did not stop in time; its run will be marked interrupted by the next collector"
                );
            }
        }
        Ok(())
    }
}

/// `server` speaking HTTP/1.1 only, with `timeout` for each request's headers (from the
/// connection's start or the previous answer's end) and for the first request as a whole.
fn bounded<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    timeout: Duration,
) -> axum_server::Server<SocketAddr, A> {
    server.http_builder().http1().header_read_timeout(timeout);
    server
        .http1_only()
        .first_request_timeout(timeout)
        .accept_error_handler(|client, err| match client {
            // The listener itself failed (out of file descriptors, say): axum-server backs
            // off 50 ms and tries again (and MAX_CONNECTIONS is kept below the file limit).
            None => tracing::warn!(error = %err, "cannot accept connections"),
            // Refusals at the limit are logged by `Limited`; handshakes that fail or time out
            // are the client's business.
            Some(client) => tracing::debug!(%client, error = %err, "connection not served"),
        })
}
