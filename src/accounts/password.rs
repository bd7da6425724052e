//! Passwords: the policy for new ones, and argon2id hashing on a bounded pool of dedicated
//! threads (never on the async workers), so that cheap endpoints keep their latency while
//! logins saturate the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::config::PasswordConfig;

/// Longest password accepted, in bytes: long enough for any passphrase or manager, short
/// enough that nobody makes us hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("too short")]
    TooShort { min: usize },
    #[error("too long")]
    TooLong,
    #[error("too common")]
    TooCommon,
    /// The account's e-mail address (or its part before the `@`): the first guess of anyone
    /// who knows the address.
    #[error("the e-mail address")]
    ContainsEmail,
}

/// Rules for a password being set (not for one being checked at login).
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    /// The rules for a new password of the account with address `email`.
    pub fn check(&self, password: &str, email: &str) -> Result<(), PasswordProblem> {
        if password.chars().count() < self.min_length {
            return Err(PasswordProblem::TooShort {
                min: self.min_length,
            });
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordProblem::TooLong);
        }
        let lowered = password.to_lowercase();
        if COMMON_PASSWORDS.lines().any(|common| common == lowered) {
            return Err(PasswordProblem::TooCommon);
        }
        let address = email.trim().to_lowercase();
        let local = address.rsplit_once('@').map_or("", |(local, _)| local);
        let trimmed = lowered.trim();
        if (!address.is_empty() && trimmed.contains(&address))
            || (!local.is_empty() && trimmed == local)
        {
            return Err(PasswordProblem::ContainsEmail);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full: answer 503, try again later.
    #[error("password hashing is saturated")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Result of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// Correct. `rehashed` holds a new PHC string when the stored one used other parameters.
    Match {
        rehashed: Option<String>,
    },
    Mismatch,
}

/// A job and the moment after which nobody waits for its answer any more.
struct Queued {
    job: Job,
    deadline: Option<Instant>,
}

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: String,
        phc: String,
        reply: oneshot::Sender<Result<Verification, HashError>>,
    },
}

/// The bounded argon2id pool. Cloning shares the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Queued>,
    /// Longest a job may wait for a thread before it is dropped unhashed (see
    /// [`PasswordHasher::with_max_wait`]).
    max_wait: Option<Duration>,
    waiting: Arc<AtomicUsize>,
    /// argon2 computations run so far (hashes and verifies, dummy ones included).
    computed: Arc<AtomicU64>,
    /// A hash of a random password with the current parameters: verified against when the
    /// account does not exist, so that both cases cost the same.
    dummy_phc: Arc<str>,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads at a lower scheduling priority than the async workers.
    pub fn start(config: &PasswordConfig, threads: usize) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_phc: Arc<str> =
            hash_with(&argon, crate::tokens::OpaqueToken::generate().as_str())?.into();

        let (jobs, queue) = crossbeam_channel::bounded::<Queued>(config.queue_limit);
        let waiting = Arc::new(AtomicUsize::new(0));
        let computed = Arc::new(AtomicU64::new(0));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let argon = argon.clone();
            let waiting = waiting.clone();
            let computed = computed.clone();
            std::thread::Builder::new()
                .name(format!("gotthard-argon2-{i}"))
                .spawn(move || {
                    lower_thread_priority();
                    // argon2's memory, allocated at the first check and reused by every
                    // later one: no 19 MiB allocation (and its page faults) per login.
                    let mut memory: Vec<Block> = Vec::new();
                    while let Ok(queued) = queue.recv() {
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        if queued.abandoned() {
                            // Its request has timed out (or gone): no one would use the
                            // answer, and hashing it would delay the living.
                            queued.job.refuse();
                        } else {
                            // Counted before the reply goes out, so that whoever awaited it
                            // sees it counted.
                            computed.fetch_add(1, Ordering::Relaxed);
                            run_job(&argon, &mut memory, queued.job);
                        }
                    }
                })
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(Self {
            jobs,
            max_wait: None,
            waiting,
            computed,
            dummy_phc,
        })
    }

    /// Jobs that waited longer than `max_wait` for a thread are answered [`HashError::Busy`]
    /// without being hashed: the server sets it to the request timeout, after which the
    /// request has been answered 408 and its work must not go on occupying the pool.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// Jobs waiting for a thread (the `/metrics` queue depth).
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Password hashes and verifies computed since start (`gotthard_password_hashes_total`).
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash {
            password: password.to_string(),
            reply,
        })?;
        answer
            .await
            .map_err(|_| HashError::Failed("hashing thread stopped".into()))?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no account
    /// (or no password on it): the same work either way, and always a mismatch for `None`.
    pub async fn verify(
        &self,
        password: &str,
        phc: Option<&str>,
    ) -> Result<Verification, HashError> {
        let (reply, answer) = oneshot::channel();
        let known = phc.is_some();
        self.submit(Job::Verify {
            password: password.to_string(),
            phc: phc.unwrap_or(&self.dummy_phc).to_string(),
            reply,
        })?;
        let outcome = answer
            .await
            .map_err(|_| HashError::Failed("hashing thread stopped".into()))??;
        Ok(if known {
            outcome
        } else {
            Verification::Mismatch
        })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        let deadline = self
            .max_wait
            .and_then(|wait| Instant::now().checked_add(wait));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(Queued { job, deadline }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(HashError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(HashError::Failed("hashing pool stopped".into()))
            }
        }
    }
}

impl Queued {
    /// Past its deadline, or its caller stopped waiting.
    fn abandoned(&self) -> bool {
        let gone = match &self.job {
            Job::Hash { reply, .. } => reply.is_closed(),
            Job::Verify { reply, .. } => reply.is_closed(),
        };
        gone || self.deadline.is_some_and(|d| Instant::now() > d)
    }
}

impl Job {
    /// Answers without hashing: the same as a full queue.
    fn refuse(self) {
        match self {
            Job::Hash { reply, .. } => {
                let _ = reply.send(Err(HashError::Busy));
            }
            Job::Verify { reply, .. } => {
                let _ = reply.send(Err(HashError::Busy));
            }
        }
    }
}

fn run_job(argon: &Argon2<'_>, memory: &mut Vec<Block>, job: Job) {
    match job {
        Job::Hash { password, reply } => {
            let _ = reply.send(hash_with(argon, &password));
        }
        Job::Verify {
            password,
            phc,
            reply,
        } => {
            let _ = reply.send(verify_with(argon, memory, &password, &phc));
        }
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_with(
    argon: &Argon2<'_>,
    memory: &mut Vec<Block>,
    password: &str,
    phc: &str,
) -> Result<Verification, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let parsed = PasswordHash::new(phc).map_err(|e| failed(&e))?;
    // Verify with the parameters recorded in the stored hash, not the current ones.
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| failed(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| failed(&e))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&parsed).map_err(|e| failed(&e))?;
    let expected = parsed
        .hash
        .ok_or_else(|| failed(&"stored hash has no output"))?;
    let mut salt = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or_else(|| failed(&"stored hash has no salt"))?
        .decode_b64(&mut salt)
        .map_err(|e| failed(&e))?;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut memory[..])
        .map_err(|e| failed(&e))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        computed.as_slice(),
        expected.as_bytes(),
    )) {
        return Ok(Verification::Mismatch);
    }
    let current = argon.params();
    let stale = parsed.algorithm.as_str() != "argon2id"
        || Params::try_from(&parsed).map_or(true, |p| {
            p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        });
    let rehashed = if stale {
        Some(hash_with(argon, password)?)
    } else {
        None
    };
    Ok(Verification::Match { rehashed })
}

/// Hashing threads run at nice +10 so that, under a flood of logins, the async workers
/// (health checks, token endpoints) still get the CPU first.
fn lower_thread_priority() {
    // SAFETY: setpriority on the calling thread's own id has no memory effects; on Linux
    // PRIO_PROCESS with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory_kib: u32) -> PasswordConfig {
        PasswordConfig {
            memory_kib,
            iterations: 2,
            parallelism: 1,
            min_length: 10,
            hash_threads: 1,
            queue_limit: 4,
        }
    }

    #[test]
    fn policy_refuses_short_long_and_common() {
        let policy = PasswordPolicy { min_length: 10 };
        let email = "ada@example.com";
        assert_eq!(
            policy.check("short", email),
            Err(PasswordProblem::TooShort { min: 10 })
        );
        assert_eq!(
            policy.check("Password123", email),
            Err(PasswordProblem::TooCommon)
        );
        assert_eq!(
            policy.check(&"x".repeat(2000), email),
            Err(PasswordProblem::TooLong)
        );
        assert!(policy.check("granite-otter-lantern", email).is_ok());
    }

    #[test]
    fn policy_refuses_the_accounts_own_address() {
        let policy = PasswordPolicy { min_length: 10 };
        let email = "Ada.Lovelace@Example.com";
        for password in [
            "ada.lovelace@example.com",
            "ADA.LOVELACE@EXAMPLE.COM",
            "ada.lovelace@example.com1",
            "my ada.lovelace@example.com!",
            "Ada.Lovelace",
        ] {
            assert_eq!(
                policy.check(password, email),
                Err(PasswordProblem::ContainsEmail),
                "{password}"
            );
        }
        // Another address, or the name inside a longer passphrase, is fine.
        assert!(policy.check("bob.lovelace@example.com", email).is_ok());
        assert!(policy.check("ada.lovelace-granite-otter", email).is_ok());
    }

    #[tokio::test]
    async fn verifies_and_rehashes_when_parameters_change() {
        let old = PasswordHasher::start(&config(19_456), 1).unwrap();
        let phc = old.hash("granite-otter-lantern").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            old.verify("granite-otter-lantern", Some(&phc))
                .await
                .unwrap(),
            Verification::Match { rehashed: None }
        );
        assert_eq!(
            old.verify("wrong", Some(&phc)).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(
            old.verify("anything", None).await.unwrap(),
            Verification::Mismatch
        );

        let new = PasswordHasher::start(&config(20_480), 1).unwrap();
        match new
            .verify("granite-otter-lantern", Some(&phc))
            .await
            .unwrap()
        {
            Verification::Match {
                rehashed: Some(fresh),
            } => assert!(fresh.starts_with("$argon2id$v=19$m=20480,t=2,p=1$")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn jobs_that_waited_past_their_request_are_dropped_unhashed() {
        let pool = PasswordHasher::start(&config(19_456), 1).unwrap();
        let phc = pool.hash("granite-otter-lantern").await.unwrap();
        // The second and third wait for the whole of the first (tens of milliseconds at
        // least), far past a 1 ms limit; the first is taken at once by the idle thread.
        let strict = pool.clone().with_max_wait(Duration::from_millis(1));
        let (first, second, third) = tokio::join!(
            pool.verify("granite-otter-lantern", Some(&phc)),
            strict.verify("granite-otter-lantern", Some(&phc)),
            strict.hash("granite-otter-lantern"),
        );
        assert_eq!(first.unwrap(), Verification::Match { rehashed: None });
        assert!(matches!(second, Err(HashError::Busy)), "{second:?}");
        assert!(matches!(third, Err(HashError::Busy)), "{third:?}");
        assert_eq!(pool.queue_depth(), 0);
        // Within its limit, a job is hashed as usual.
        let patient = pool.clone().with_max_wait(Duration::from_secs(60));
        assert!(patient.hash("granite-otter-lantern").await.is_ok());
    }
}
