//! Avatars: the picture shown for an account. An upload goes through the image
//! [`pipeline`] (bytes sniffed, header checked, decoded under limits, re-encoded to fixed
//! square sizes) on a bounded number of blocking threads, and is served under a
//! content-hashed, immutable URL; an account without one shows its [`initials`].

pub mod initials;
pub mod pipeline;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ab_glyph::FontRef;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

pub use initials::initials;
pub use pipeline::{ImageProblem, MEDIA_TYPE, MIN_SIDE, SIZES};

use crate::accounts::User;
use crate::audit::{Action, ActivityEvent, ClientInfo};
use crate::store::avatars::NewAvatar;
use crate::store::{Store, StoreError};

/// Largest upload accepted, in bytes (5 MiB).
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// The size of the `picture` claim and of the account API's `picture`.
pub const PICTURE_SIZE: u32 = 256;

/// Longest an upload waits for a decoding thread before it is answered "busy" (503).
const DECODE_WAIT: Duration = Duration::from_secs(2);

/// Rendered initials kept in memory (each a few KiB).
const INITIALS_CACHE: usize = 512;

/// Characters of a content key: 24 bytes of SHA-256, base64url.
pub const KEY_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    /// Not an avatar: the problem says why.
    #[error(transparent)]
    Image(#[from] ImageProblem),
    /// Over [`MAX_UPLOAD_BYTES`].
    #[error("larger than 5 MiB")]
    FileTooLarge,
    /// Every decoding thread is busy: try again shortly.
    #[error("image processing is saturated")]
    Busy,
    #[error("image processing failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored avatar: its URL (of [`PICTURE_SIZE`]), and whether the original was smaller
/// than [`MIN_SIDE`] (kept, with a warning).
#[derive(Debug, Clone)]
pub struct AvatarUploaded {
    pub url: String,
    pub warning_small: bool,
    pub user: User,
}

/// The avatar service. Cloning shares the decoding bound and the initials cache.
#[derive(Clone)]
pub struct Avatars {
    store: Arc<dyn Store>,
    /// Absolute URLs start here (the configured issuer, never the request's Host).
    issuer: String,
    /// One permit per decoding thread: a flood of uploads cannot take every core.
    decodes: Arc<Semaphore>,
    /// Longest an upload waits for a permit.
    decode_wait: Duration,
    font: Arc<FontRef<'static>>,
    rendered: Arc<Mutex<HashMap<InitialsId, bytes::Bytes>>>,
}

/// An initials image: its letters, palette index and size.
type InitialsId = (String, usize, u32);

impl Avatars {
    /// `decode_threads` images are decoded at once at most (the number of cores).
    pub fn new(store: Arc<dyn Store>, issuer: &str, decode_threads: usize) -> anyhow::Result<Self> {
        let font = FontRef::try_from_slice(initials::FONT)
            .map_err(|e| anyhow::anyhow!("the initials font cannot be read: {e}"))?;
        Ok(Self {
            store,
            issuer: issuer.trim_end_matches('/').to_string(),
            decodes: Arc::new(Semaphore::new(decode_threads.max(1))),
            decode_wait: DECODE_WAIT,
            font: Arc::new(font),
            rendered: Arc::default(),
        })
    }

    /// The same service, whose uploads wait at most `wait` for a decoding thread.
    pub fn with_decode_wait(mut self, wait: Duration) -> Self {
        self.decode_wait = wait;
        self
    }

    /// Makes `bytes` the user's avatar: checked, decoded and re-encoded (see [`pipeline`]),
    /// stored with the event `profile.changed` (`fields: ["avatar"]`).
    pub async fn upload(
        &self,
        user: &User,
        bytes: bytes::Bytes,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<AvatarUploaded, AvatarError> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(AvatarError::FileTooLarge);
        }
        // Cheap checks first, on this thread: the signature and the header's claims.
        let format = pipeline::sniff(&bytes)?;
        pipeline::dimensions(&bytes, format)?;
        let permit = self.image_slot().await?;
        let encoded = tokio::task::spawn_blocking(move || {
            let encoded = pipeline::process(&bytes, format);
            drop(permit);
            encoded
        })
        .await
        .map_err(|e| AvatarError::Failed(e.to_string()))??;
        let key = content_key(user, &encoded.images);
        let image = |size: u32| {
            encoded
                .images
                .iter()
                .find(|(s, _)| *s == size)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| AvatarError::Failed(format!("no {size} px image")))
        };
        let avatar = NewAvatar {
            user_id: user.id,
            key,
            image_64: image(64)?,
            image_128: image(128)?,
            image_256: image(256)?,
            image_512: image(512)?,
            created_at: now,
        };
        let event = changed(user, client, now, "uploaded");
        let user = self.store.save_avatar(&avatar, &event).await?;
        Ok(AvatarUploaded {
            url: self.url_for(&user, PICTURE_SIZE),
            warning_small: encoded.small,
            user,
        })
    }

    /// Removes the user's avatar (the initials show again); the user as now stored, or
    /// `None` when there was none (nothing recorded).
    pub async fn remove(
        &self,
        user: &User,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let event = changed(user, client, now, "removed");
        self.store.delete_avatar(user.id, now, Some(&event)).await
    }

    /// The absolute URL of the user's picture of `size` px (see [`path_for`]).
    pub fn url_for(&self, user: &User, size: u32) -> String {
        picture_url(&self.issuer, user, size)
    }

    /// A place in the bounded pool of image work (decoding uploads, drawing initials), or
    /// [`AvatarError::Busy`] after `decode_wait`.
    async fn image_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AvatarError> {
        tokio::time::timeout(self.decode_wait, self.decodes.clone().acquire_owned())
            .await
            .map_err(|_| AvatarError::Busy)?
            .map_err(|_| AvatarError::Busy)
    }

    /// The stored JPEG of one size of an avatar; `None` for an unknown key or size.
    pub async fn image(&self, key: &str, size: u32) -> Result<Option<Vec<u8>>, StoreError> {
        if !valid_key(key) || !SIZES.contains(&size) {
            return Ok(None);
        }
        self.store.avatar_image(key, size).await
    }

    /// The PNG of an initials image, from its URL's parts; `None` unless `text` is
    /// initials, `colour` in the palette and `size` one of [`SIZES`]. Rendered on a
    /// blocking thread, then kept.
    pub async fn initials_png(
        &self,
        text: &str,
        colour: usize,
        size: u32,
    ) -> Result<Option<bytes::Bytes>, AvatarError> {
        if !initials::valid_text(text)
            || colour >= initials::PALETTE.len()
            || !SIZES.contains(&size)
        {
            return Ok(None);
        }
        let id = (text.to_string(), colour, size);
        if let Some(png) = self.cached(&id) {
            return Ok(Some(png));
        }
        let font = self.font.clone();
        let owned = text.to_string();
        // The public URL can name many images: drawing them shares the bounded image pool.
        let permit = self.image_slot().await?;
        let rendered = tokio::task::spawn_blocking(move || {
            let png = initials::render(&font, &owned, colour, size);
            drop(permit);
            png
        })
        .await
        .map_err(|e| AvatarError::Failed(e.to_string()))?;
        let Some(png) = rendered else {
            return Ok(None);
        };
        let png = bytes::Bytes::from(png);
        if let Ok(mut rendered) = self.rendered.lock() {
            if rendered.len() >= INITIALS_CACHE {
                rendered.clear();
            }
            rendered.insert(id, png.clone());
        }
        Ok(Some(png))
    }

    fn cached(&self, id: &InitialsId) -> Option<bytes::Bytes> {
        self.rendered.lock().ok()?.get(id).cloned()
    }
}

/// The event of a change of avatar: a profile change of the field `avatar`.
fn changed(user: &User, client: &ClientInfo, now: OffsetDateTime, how: &str) -> ActivityEvent {
    ActivityEvent::new(
        Some(user.id),
        Action::ProfileChanged,
        client,
        serde_json::json!({ "fields": ["avatar"], "avatar": how }),
        now,
    )
}

/// The key of an avatar: base64url of the first 24 bytes of SHA-256 over the user id and
/// every encoded image, so that each upload (and each user) has its own URL.
fn content_key(user: &User, images: &[(u32, Vec<u8>)]) -> String {
    let mut hash = Sha256::new();
    hash.update(user.id.as_bytes());
    for (size, bytes) in images {
        hash.update(size.to_be_bytes());
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    }
    URL_SAFE_NO_PAD.encode(&hash.finalize()[..24])
}

/// Whether a URL's key can be a content key (checked before any lookup).
pub fn valid_key(key: &str) -> bool {
    key.len() == KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The smallest served size of at least `size` px (the largest past it).
fn served_size(size: u32) -> u32 {
    SIZES
        .into_iter()
        .find(|s| *s >= size)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// The path of the user's picture: the uploaded avatar (`/avatars/{key}/{size}`), else the
/// initials image (`/avatars/initials/{letters}/{colour}/{size}`), both immutable. `size`
/// is rounded up to a served size.
pub fn path_for(user: &User, size: u32) -> String {
    let size = served_size(size);
    match &user.avatar_key {
        Some(key) => format!("/avatars/{key}/{size}"),
        None => {
            let letters = initials(&user.name, &user.email);
            let letters = utf8_percent_encode(&letters, NON_ALPHANUMERIC);
            let colour = initials::colour_of(user.id);
            format!("/avatars/initials/{letters}/{colour}/{size}")
        }
    }
}

/// [`path_for`] under `issuer` (the OIDC `picture` claim, the API's `picture`).
pub fn picture_url(issuer: &str, user: &User, size: u32) -> String {
    format!("{}{}", issuer.trim_end_matches('/'), path_for(user, size))
}
