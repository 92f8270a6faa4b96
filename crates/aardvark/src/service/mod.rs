//! `aardvark serve` as a service: the API over HTTP or HTTPS, collections on a schedule,
//! authentication and metrics, and a graceful shutdown: on SIGTERM or SIGINT the server stops
//! accepting, lets requests in flight finish (up to `SHUTDOWN_TIMEOUT_SECONDS`), and a
//! scheduled run starts no new principal, finishes its writes and is recorded `interrupted`.

pub mod schedule;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::api::ApiOptions;
use crate::config::Settings;
use crate::db::Database;
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
}

impl Service {
    /// The API options `settings` ask for, counting the schedule's AWS calls if there is one.
    pub fn api_options(settings: &Settings, schedule: Option<&Schedule>) -> ApiOptions {
        ApiOptions {
            tokens: settings.api_tokens.clone(),
            metrics_require_token: settings.metrics_require_token,
            aws_metrics: schedule.map(|schedule| schedule.collector.aws_metrics().clone()),
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
        match tls {
            Some(config) => {
                axum_server::from_tcp_rustls(
                    listener,
                    axum_server::tls_rustls::RustlsConfig::from_config(config),
                )?
                .handle(handle)
                .serve(app)
                .await?
            }
            None => {
                axum_server::from_tcp(listener)?
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
