//! An account's assumed-role sessions. `AssumeRole` asks for `AWS_SESSION_DURATION_SECONDS`;
//! a session is renewed once most of the lifetime its `Expiration` states has passed, before a
//! job is generated on it when it has less life left than the account's jobs take, and at
//! once when AWS answers a call `ExpiredToken` (or `RequestExpired`), so that no principal
//! fails because a session ran out. Each session has an IAM client of its own, so that a job
//! can be polled by the session that generated it (`principal.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::aws::{AwsContext, Failure};

/// The share of a session's lifetime after which the next call renews it. The rest covers the
/// jobs generated with it, which are polled with it until they are done.
const RENEW_AFTER: f64 = 0.8;

/// The shortest lifetime a session is trusted with, whatever a skewed clock says.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// One session: its IAM client and when it is due for renewal.
#[derive(Debug)]
pub(crate) struct Session {
    pub iam: aws_sdk_iam::Client,
    /// 1 for the account's first session, then counting renewals.
    pub number: u64,
    renew_at: Instant,
    expires_at: Instant,
    lifetime: Duration,
}

impl Session {
    /// Whether this session can serve a call that needs it for `needed` more: it is not due
    /// for renewal, and has that much life left (at most what a fresh session would give
    /// before it is due itself, so that jobs longer than sessions do not renew every time).
    fn fits(&self, needed: Duration) -> bool {
        let now = Instant::now();
        let needed = needed.min(self.lifetime.mul_f64(RENEW_AFTER));
        now < self.renew_at && self.expires_at.saturating_duration_since(now) >= needed
    }
}

/// The sessions of one account, one at a time.
pub(crate) struct AccountSession<'a> {
    sts: &'a aws_sdk_sts::Client,
    aws: &'a AwsContext,
    account: &'a str,
    role_arn: String,
    duration: Duration,
    current: Mutex<Option<Arc<Session>>>,
    sessions: AtomicU64,
}

/// Whether `failure` says the credentials a call was signed with have expired.
pub(crate) fn is_expired(failure: &Failure) -> bool {
    failure.is("ExpiredToken") || failure.is("RequestExpired")
}

impl<'a> AccountSession<'a> {
    pub fn new(
        sts: &'a aws_sdk_sts::Client,
        aws: &'a AwsContext,
        account: &'a str,
        role_arn: String,
        duration: Duration,
    ) -> Self {
        Self {
            sts,
            aws,
            account,
            role_arn,
            duration,
            current: Mutex::new(None),
            sessions: AtomicU64::new(0),
        }
    }

    /// The session for the next call: the current one, or a new one if it is due.
    pub async fn current(&self) -> Result<Arc<Session>, Failure> {
        self.current_for(Duration::ZERO).await
    }

    /// The session for work that needs it for `needed` (a job, which is polled with the
    /// session that generated it): the current one if it lives that long, else a new one.
    pub async fn current_for(&self, needed: Duration) -> Result<Arc<Session>, Failure> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|session| session.fits(needed)) {
            return Ok(session.clone());
        }
        self.renew_locked(&mut current).await
    }

    /// A new session after AWS said `stale` expired, unless another call made one since.
    pub async fn renew(&self, stale: &Session) -> Result<Arc<Session>, Failure> {
        let mut current = self.current.lock().await;
        if let Some(session) = current
            .as_ref()
            .filter(|session| session.number != stale.number)
        {
            return Ok(session.clone());
        }
        self.renew_locked(&mut current).await
    }

    /// How many sessions the account has had.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    async fn renew_locked(
        &self,
        current: &mut Option<Arc<Session>>,
    ) -> Result<Arc<Session>, Failure> {
        // Boxed: every principal's future would otherwise hold room for an AssumeRole call.
        let session = Arc::new(Box::pin(self.assume()).await?);
        if session.number > 1 {
            self.aws.metrics().session_renewals.inc();
            tracing::debug!(account = %self.account, session = session.number, "session renewed");
        }
        *current = Some(session.clone());
        Ok(session)
    }

    /// `AssumeRole`, called explicitly (not through a lazy credentials provider) so that an SCP
    /// denial is a plain `AccessDenied` of this one call.
    async fn assume(&self) -> Result<Session, Failure> {
        let turn = self
            .aws
            .wire()
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let asked = Instant::now();
        let assumed = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name("aardvark")
            .duration_seconds(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| {
                Failure::from_sdk(&err).during(&format!("AssumeRole {}", self.role_arn))
            })?;
        drop(turn);
        let credentials = assumed.credentials().ok_or_else(|| {
            Failure::new("MalformedResponse", "AssumeRole returned no credentials")
        })?;
        let stated = SystemTime::try_from(*credentials.expiration())
            .ok()
            .and_then(|expiration| expiration.duration_since(SystemTime::now()).ok());
        let lifetime = stated
            .unwrap_or(self.duration)
            .clamp(MIN_LIFETIME, self.duration.max(MIN_LIFETIME));
        let credentials = aws_sdk_sts::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            None,
            "aardvark-assume-role",
        );
        Ok(Session {
            iam: self.aws.iam_for(self.account, credentials),
            number: self.sessions.fetch_add(1, Ordering::Relaxed) + 1,
            renew_at: asked + lifetime.mul_f64(RENEW_AFTER),
            expires_at: asked + lifetime,
            lifetime,
        })
    }
}
