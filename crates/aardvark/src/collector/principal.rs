//! One principal's Access Advisor data: generate the job, poll it when the account's jobs are
//! usually done (`polling.rs`) with backoff until it is done or its deadline passes, read
//! every page of the result, and convert it to the storage layer's terms. Every request is
//! paced by the account's rate limiter first. A job stays with the session that generated it;
//! if AWS says that session expired, the job is generated again with a new one.

use std::time::Instant;

use aws_sdk_iam::operation::get_service_last_accessed_details::GetServiceLastAccessedDetailsOutput;
use aws_sdk_iam::types::{AccessAdvisorUsageGranularityType, JobStatusType};

use super::aws::Failure;
use super::pacer::Pacer;
use super::polling::{JobClock, Polling};
use super::report::PrincipalError;
use super::session::{is_expired, AccountSession};
use super::stop::Stop;
use crate::config::Granularity;
use crate::db::vocabulary::{ActionUsage, ServiceUsage};

/// AWS's largest page.
const MAX_ITEMS: i32 = 1000;

/// Times a principal's job may be generated again because its session expired.
const MAX_EXPIRED_SESSIONS: u32 = 3;

/// How one session's attempt at a job ended, when it did not give the services.
enum Attempt {
    /// The session expired: try again with a new one.
    Expired(Failure),
    Ended(PrincipalError),
}

impl From<PrincipalError> for Attempt {
    fn from(err: PrincipalError) -> Self {
        Attempt::Ended(err)
    }
}

fn classify<E>(
    operation: &str,
    err: &aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> Attempt
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = Failure::from_sdk(err).during(operation);
    if is_expired(&failure) {
        Attempt::Expired(failure)
    } else if failure.is("NoSuchEntity") {
        Attempt::Ended(PrincipalError::Vanished(failure))
    } else {
        Attempt::Ended(PrincipalError::Failed(failure))
    }
}

/// What every job of one account's principals shares: when and how often to poll, the
/// account's pacing, the granularity asked for, and the run's stop signal.
#[derive(Clone, Copy)]
pub struct JobContext<'a> {
    pub clock: &'a JobClock,
    pub pacer: &'a Pacer,
    pub polling: Polling,
    pub granularity: Granularity,
    pub stop: &'a Stop,
}

/// Every service `arn` may use, with its last use, as AWS reports it.
pub async fn fetch_usage(
    session: &AccountSession<'_>,
    context: JobContext<'_>,
    arn: &str,
) -> Result<Vec<ServiceUsage>, PrincipalError> {
    let mut expired = 0;
    loop {
        let needed = context.clock.session_needed(context.polling);
        let current = session
            .current_for(needed)
            .await
            .map_err(PrincipalError::Failed)?;
        match job(&current.iam, context, arn).await {
            Ok(services) => return Ok(services),
            Err(Attempt::Ended(err)) => return Err(err),
            Err(Attempt::Expired(failure)) => {
                expired += 1;
                if expired > MAX_EXPIRED_SESSIONS {
                    return Err(PrincipalError::Failed(Failure::new(
                        failure.code,
                        format!("the job outlived {expired} sessions: {}", failure.message),
                    )));
                }
                session
                    .renew(&current)
                    .await
                    .map_err(PrincipalError::Failed)?;
            }
        }
    }
}

/// One job, from its generation to its last page, with one session's client.
async fn job(
    iam: &aws_sdk_iam::Client,
    context: JobContext<'_>,
    arn: &str,
) -> Result<Vec<ServiceUsage>, Attempt> {
    // Each stage boxed: a job spends most of its life waiting to poll, and its future would
    // otherwise keep room for its largest stage all along.
    let (job_id, generated_at) = Box::pin(generate(iam, context, arn)).await?;
    let first_page = Box::pin(poll_until_done(iam, context, &job_id, generated_at)).await?;
    let services = Box::pin(read_pages(iam, context, &job_id, first_page)).await?;
    context.clock.job_took(generated_at.elapsed());
    Ok(services)
}

fn malformed(message: impl Into<String>) -> Attempt {
    PrincipalError::Failed(Failure::new("MalformedResponse", message)).into()
}

/// Starts the job: its id, and when it started.
async fn generate(
    iam: &aws_sdk_iam::Client,
    context: JobContext<'_>,
    arn: &str,
) -> Result<(String, Instant), Attempt> {
    let generated = context
        .pacer
        .send(|| {
            iam.generate_service_last_accessed_details()
                .arn(arn)
                .granularity(match context.granularity {
                    Granularity::Action => AccessAdvisorUsageGranularityType::ActionLevel,
                    Granularity::Service => AccessAdvisorUsageGranularityType::ServiceLevel,
                })
                .send()
        })
        .await
        .map_err(|err| classify("GenerateServiceLastAccessedDetails", &err))?;
    let generated_at = Instant::now();
    let job_id = generated
        .job_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed("GenerateServiceLastAccessedDetails returned no JobId"))?;
    Ok((job_id.to_owned(), generated_at))
}

/// Polls the job, first when the account's jobs are usually done, then with backoff, until it
/// is done (its first page), failed, past its deadline, or the run is stopped.
async fn poll_until_done(
    iam: &aws_sdk_iam::Client,
    context: JobContext<'_>,
    job_id: &str,
    generated_at: Instant,
) -> Result<GetServiceLastAccessedDetailsOutput, Attempt> {
    let polling = context.polling;
    let (first_poll, _scout) = context.clock.first_poll(polling).await;
    let mut wait = first_poll.saturating_sub(generated_at.elapsed());
    let mut interval = polling.first_interval;
    let mut last_running = None;
    let mut polls = 0u32;
    loop {
        if generated_at.elapsed() + wait > polling.deadline {
            return Err(PrincipalError::Failed(Failure::new(
                "JobTimeout",
                format!(
                    "job {job_id} was not done after {polls} polls in {} s",
                    polling.deadline.as_secs()
                ),
            ))
            .into());
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = context.stop.wait() => return Err(PrincipalError::Interrupted.into()),
        }
        polls += 1;
        let step = wait;
        let mut sent = std::time::Duration::ZERO;
        let response = context
            .pacer
            .send(|| {
                sent = generated_at.elapsed();
                iam.get_service_last_accessed_details()
                    .job_id(job_id)
                    .max_items(MAX_ITEMS)
                    .send()
            })
            .await
            .map_err(|err| classify("GetServiceLastAccessedDetails", &err))?;
        // Decide on the status only: while a job runs, AWS omits dates the model requires.
        match response.job_status() {
            JobStatusType::Completed => {
                context.clock.done(sent, last_running, step);
                return Ok(response);
            }
            JobStatusType::InProgress => {
                last_running = Some(sent);
                wait = interval;
                interval = (interval * 2).min(polling.max_interval);
            }
            JobStatusType::Failed => {
                let (code, message) = response
                    .error()
                    .map(|e| (e.code().to_owned(), e.message().to_owned()))
                    .unwrap_or_else(|| ("JobFailed".into(), "AWS gave no reason".into()));
                return Err(PrincipalError::Failed(Failure::new(
                    code,
                    format!("job {job_id} FAILED: {message}"),
                ))
                .into());
            }
            other => {
                return Err(malformed(format!(
                    "job {job_id} has an unknown status {:?}",
                    other.as_str()
                )))
            }
        }
    }
}

/// The services of a completed job, from its first page to its last.
async fn read_pages(
    iam: &aws_sdk_iam::Client,
    context: JobContext<'_>,
    job_id: &str,
    mut page: GetServiceLastAccessedDetailsOutput,
) -> Result<Vec<ServiceUsage>, Attempt> {
    let mut services = Vec::with_capacity(page.services_last_accessed().len());
    loop {
        for service in page.services_last_accessed() {
            services.push(convert(service, context.granularity).map_err(PrincipalError::Failed)?);
        }
        if !page.is_truncated() {
            return Ok(services);
        }
        let Some(marker) = page.marker().filter(|m| !m.is_empty()).map(str::to_owned) else {
            return Err(malformed("a truncated result without a Marker"));
        };
        page = context
            .pacer
            .send(|| {
                iam.get_service_last_accessed_details()
                    .job_id(job_id)
                    .max_items(MAX_ITEMS)
                    .marker(&marker)
                    .send()
            })
            .await
            .map_err(|err| classify("GetServiceLastAccessedDetails", &err))?;
        if page.job_status() != &JobStatusType::Completed {
            return Err(malformed(format!(
                "job {job_id} changed status while paging"
            )));
        }
    }
}

/// Epoch milliseconds of an AWS time (0 when absent), or a failure naming `what`.
fn millis(
    time: Option<&aws_sdk_iam::primitives::DateTime>,
    what: impl FnOnce() -> String,
) -> Result<i64, Failure> {
    match time {
        None => Ok(0),
        Some(time) => time
            .to_millis()
            .map_err(|_| Failure::new("MalformedResponse", format!("{} is out of range", what()))),
    }
}

fn convert(
    service: &aws_sdk_iam::types::ServiceLastAccessed,
    granularity: Granularity,
) -> Result<ServiceUsage, Failure> {
    if service.service_namespace().is_empty() {
        return Err(Failure::new(
            "MalformedResponse",
            "a service without a namespace",
        ));
    }
    let namespace = service.service_namespace();
    let last_authenticated = millis(service.last_authenticated(), || {
        format!("LastAuthenticated of {namespace}")
    })?;
    // At action level, AWS lists tracked actions for the services it tracks them for.
    let actions = match granularity {
        Granularity::Service => None,
        Granularity::Action => Some(
            service
                .tracked_actions_last_accessed()
                .iter()
                .filter_map(|action| {
                    let name = action.action_name().filter(|name| !name.is_empty())?;
                    Some(
                        millis(action.last_accessed_time(), || {
                            format!("LastAccessedTime of {namespace}:{name}")
                        })
                        .map(|last_accessed| ActionUsage {
                            action: name.to_owned(),
                            last_accessed,
                            entity: action.last_accessed_entity().map(str::to_owned),
                            region: action.last_accessed_region().map(str::to_owned),
                        }),
                    )
                })
                .collect::<Result<Vec<_>, Failure>>()?,
        ),
    };
    Ok(ServiceUsage {
        region: service.last_authenticated_region().map(str::to_owned),
        actions,
        service_name: service.service_name().to_owned(),
        service_namespace: service.service_namespace().to_owned(),
        last_authenticated,
        last_authenticated_entity: service.last_authenticated_entity().map(str::to_owned),
        total_authenticated_entities: i64::from(
            service.total_authenticated_entities().unwrap_or(0),
        ),
    })
}
