//! Mail: an outbox row written in the same transaction as the event that causes it, and a
//! sender that delivers due rows — over SMTP (lettre) when `smtp.url` is set, else as `.eml`
//! files under `<data_dir>/mail/` — retrying with backoff while delivery fails.

mod links;
mod templates;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::OffsetDateTime;

pub use links::{
    email_change_confirm, email_changed, password_reset_done, password_reset_link,
    password_reset_sso,
};
pub use templates::{
    account_deleted, account_locked, account_unlocked, login_failed, login_succeeded,
    password_changed, unlock_link,
};

// The outbox records live with the store that reads and writes them.
pub use crate::store::outbox::{NewMail, OutboxMail};

use crate::config::Config;
use crate::store::{Store, StoreError, files};

enum Transport {
    Folder(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Mails claimed per round.
const BATCH: i64 = 20;
/// Mails (rows or files) deleted per statement or pass when pruning.
const PRUNE_BATCH: i64 = 500;
/// Mail still undelivered this long after it was queued is given up: every link in it has
/// expired by then (unlock links live at most 7 days) and alerts are stale.
const GIVE_UP_AFTER: time::Duration = time::Duration::days(7);
/// How long a claimed mail is reserved for its sender (another instance skips it meanwhile).
const LEASE: time::Duration = time::Duration::minutes(5);

#[derive(Clone)]
pub struct Mailer {
    store: Arc<dyn Store>,
    transport: Arc<Transport>,
    from: Mailbox,
    /// How long sent mail (and its unlock links) is kept: outbox rows and `.eml` files.
    retention: time::Duration,
}

impl Mailer {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<Self> {
        let from: Mailbox = config.smtp.from.parse().map_err(|e| {
            anyhow::anyhow!("configuration key `smtp.from` (env GOTTHARD_SMTP__FROM): {e}")
        })?;
        let transport = if config.smtp.url.is_empty() {
            let folder = config.data_dir.join("mail");
            for dir in [&config.data_dir, &folder] {
                files::ensure_private_dir(dir)
                    .with_context(|| format!("cannot create mail folder {}", dir.display()))?;
            }
            Transport::Folder(folder)
        } else {
            // Credentials in clear were refused with the configuration; this is the rest.
            if config.smtp.plain_towards_another_machine() {
                tracing::warn!(
                    "smtp.url has no TLS: mail, unlock links included, crosses the network in \
                     clear; use smtps://… or ?tls=required"
                );
            }
            let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp.url)
                .map_err(|e| {
                    anyhow::anyhow!("configuration key `smtp.url` (env GOTTHARD_SMTP__URL): {e}")
                })?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .build();
            Transport::Smtp(smtp)
        };
        Ok(Self {
            store,
            transport: Arc::new(transport),
            from,
            retention: time::Duration::hours(config.smtp.sent_retention_hours),
        })
    }

    /// Deletes mail sent longer than the retention ago (outbox rows and `.eml` files) and
    /// mail given up undelivered, in small batches; returns how many.
    pub async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let sent_before = now - self.retention;
        let mut total = 0;
        loop {
            let deleted = self
                .store
                .prune_mail(sent_before, now - GIVE_UP_AFTER, PRUNE_BATCH)
                .await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        if let Transport::Folder(folder) = &*self.transport {
            match prune_files(folder, sent_before).await {
                Ok(n) => total += n,
                Err(err) => {
                    tracing::warn!(folder = %folder.display(), error = %err, "mail files not pruned");
                }
            }
        }
        Ok(total)
    }

    /// Delivers the mails that are due; returns how many were delivered. A failure is
    /// recorded on the mail, which waits `30 s × 2^attempts` (at most an hour) for its retry.
    pub async fn deliver_due(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let claimed = self.store.claim_due_mail(now, now + LEASE, BATCH).await?;
        let mut delivered = 0;
        for mail in claimed {
            match self.deliver(&mail).await {
                Ok(()) => {
                    self.store.mark_mail_sent(mail.id, now).await?;
                    delivered += 1;
                }
                Err(err) => {
                    let attempts = mail.attempts + 1;
                    let wait = 30i64.saturating_mul(1 << attempts.min(7)).min(3600);
                    tracing::warn!(mail_id = %mail.id, attempts, error = %err, "mail delivery failed; will retry");
                    self.store
                        .mark_mail_failed(mail.id, now + time::Duration::seconds(wait), &err)
                        .await?;
                }
            }
        }
        Ok(delivered)
    }

    async fn deliver(&self, mail: &OutboxMail) -> Result<(), String> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@gotthard>", mail.id.simple())));
        let message = match &mail.body_html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                mail.body_text.clone(),
                html.clone(),
            )),
            None => builder.body(mail.body_text.clone()),
        }
        .map_err(|e| format!("message: {e}"))?;
        match &*self.transport {
            // Named by the outbox id: a retry after a crash rewrites the same file.
            Transport::Folder(folder) => {
                let path = folder.join(format!("{}.eml", mail.id));
                files::write_private_file(&path, &message.formatted())
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

/// Deletes the `.eml` files of `folder` last written before `before`.
async fn prune_files(folder: &Path, before: OffsetDateTime) -> std::io::Result<u64> {
    let mut entries = tokio::fs::read_dir(folder).await?;
    let mut deleted = 0;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let written = OffsetDateTime::from(entry.metadata().await?.modified()?);
        if written < before {
            tokio::fs::remove_file(&path).await?;
            deleted += 1;
            if deleted % PRUNE_BATCH as u64 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(deleted)
}
