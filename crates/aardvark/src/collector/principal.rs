//! One principal's Access Advisor data: generate the job, poll it with backoff until it is
//! done or its deadline passes, read every page of the result, and convert it to the storage
//! layer's terms. Every request is paced by the account's rate limiter first.

use std::time::{Duration, Instant};

use aws_sdk_iam::types::JobStatusType;

use super::aws::Failure;
use super::Pacer;
use crate::db::write::ServiceUsage;

/// AWS's largest page.
const MAX_ITEMS: i32 = 1000;

/// Why a principal has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalError {
    /// Deleted between listing and collection (`NoSuchEntity`): skipped, stored rows untouched.
    Vanished(Failure),
    Failed(Failure),
}

/// How to wait for jobs.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub first_interval: Duration,
    pub max_interval: Duration,
    pub deadline: Duration,
}

fn classify<E>(
    operation: &str,
    err: &aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> PrincipalError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = Failure::from_sdk(err).during(operation);
    if failure.is("NoSuchEntity") {
        PrincipalError::Vanished(failure)
    } else {
        PrincipalError::Failed(failure)
    }
}

/// Every service `arn` may use, with its last use, as AWS reports it.
pub async fn fetch_usage(
    iam: &aws_sdk_iam::Client,
    pacer: &Pacer,
    arn: &str,
    polling: Polling,
) -> Result<Vec<ServiceUsage>, PrincipalError> {
    pacer.wait().await;
    let generated = iam
        .generate_service_last_accessed_details()
        .arn(arn)
        .send()
        .await
        .map_err(|err| classify("GenerateServiceLastAccessedDetails", &err))?;
    let job_id = generated
        .job_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PrincipalError::Failed(Failure::new(
                "MalformedResponse",
                "GenerateServiceLastAccessedDetails returned no JobId",
            ))
        })?;

    let started = Instant::now();
    let mut interval = polling.first_interval;
    let mut polls = 0u32;
    let mut page = loop {
        if started.elapsed() + interval > polling.deadline {
            return Err(PrincipalError::Failed(Failure::new(
                "JobTimeout",
                format!(
                    "job {job_id} was not done after {polls} polls in {} s",
                    polling.deadline.as_secs()
                ),
            )));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(polling.max_interval);
        pacer.wait().await;
        polls += 1;
        let response = iam
            .get_service_last_accessed_details()
            .job_id(job_id)
            .max_items(MAX_ITEMS)
            .send()
            .await
            .map_err(|err| classify("GetServiceLastAccessedDetails", &err))?;
        // Decide on the status only: while a job runs, AWS omits dates the model requires.
        match response.job_status() {
            JobStatusType::Completed => break response,
            JobStatusType::InProgress => continue,
            JobStatusType::Failed => {
                let (code, message) = response
                    .error()
                    .map(|e| (e.code().to_owned(), e.message().to_owned()))
                    .unwrap_or_else(|| ("JobFailed".into(), "AWS gave no reason".into()));
                return Err(PrincipalError::Failed(Failure::new(
                    code,
                    format!("job {job_id} FAILED: {message}"),
                )));
            }
            other => {
                return Err(PrincipalError::Failed(Failure::new(
                    "MalformedResponse",
                    format!("job {job_id} has an unknown status {:?}", other.as_str()),
                )))
            }
        }
    };

    let mut services = Vec::new();
    loop {
        for service in page.services_last_accessed() {
            services.push(convert(service).map_err(PrincipalError::Failed)?);
        }
        if !page.is_truncated() {
            break;
        }
        let Some(marker) = page.marker().filter(|m| !m.is_empty()).map(str::to_owned) else {
            return Err(PrincipalError::Failed(Failure::new(
                "MalformedResponse",
                "a truncated result without a Marker",
            )));
        };
        pacer.wait().await;
        page = iam
            .get_service_last_accessed_details()
            .job_id(job_id)
            .max_items(MAX_ITEMS)
            .marker(marker)
            .send()
            .await
            .map_err(|err| classify("GetServiceLastAccessedDetails", &err))?;
        if page.job_status() != &JobStatusType::Completed {
            return Err(PrincipalError::Failed(Failure::new(
                "MalformedResponse",
                format!("job {job_id} changed status while paging"),
            )));
        }
    }
    Ok(services)
}

fn convert(service: &aws_sdk_iam::types::ServiceLastAccessed) -> Result<ServiceUsage, Failure> {
    if service.service_namespace().is_empty() {
        return Err(Failure::new(
            "MalformedResponse",
            "a service without a namespace",
        ));
    }
    let last_authenticated = match service.last_authenticated() {
        None => 0,
        Some(time) => time.to_millis().map_err(|_| {
            Failure::new(
                "MalformedResponse",
                format!(
                    "LastAuthenticated of {} is out of range",
                    service.service_namespace()
                ),
            )
        })?,
    };
    Ok(ServiceUsage {
        service_name: service.service_name().to_owned(),
        service_namespace: service.service_namespace().to_owned(),
        last_authenticated,
        last_authenticated_entity: service.last_authenticated_entity().map(str::to_owned),
        total_authenticated_entities: i64::from(
            service.total_authenticated_entities().unwrap_or(0),
        ),
    })
}
