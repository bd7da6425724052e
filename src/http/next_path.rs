//! `next`: where a sign-in form goes once the user is signed in. Only a plain path of ours is
//! ever taken (and, in practice, only an authorization request that validates, see
//! `http::ResumedRequest`): a malformed one is refused with 400 before anything is
//! written, never found out when the redirect after the new session fails.

use crate::error::WebError;

/// Longest `next` accepted: an authorization request with a long `state`, `nonce` and PKCE
/// challenge fits many times over.
pub const MAX_NEXT_LEN: usize = 8192;

/// Whether `next` is a path on this server that a `Location` header can carry as is: one
/// leading `/` (not `//` or `/\`, which browsers read as another host), only visible ASCII
/// (no control character, space or raw non-ASCII: a URL of ours is percent-encoded), no `\`
/// anywhere, and it stays on our origin when resolved.
pub fn is_local_path(next: &str) -> bool {
    if next.len() > MAX_NEXT_LEN
        || !next.starts_with('/')
        || next.starts_with("//")
        || !next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        return false;
    }
    let Ok(base) = url::Url::parse("http://gotthard.invalid/") else {
        return false;
    };
    base.join(next)
        .is_ok_and(|resolved| resolved.origin() == base.origin())
}

/// `Ok` for an absent (empty) or well-formed `next`; a 400 page otherwise.
pub fn refuse_malformed(next: &str) -> Result<(), WebError> {
    if next.is_empty() || is_local_path(next) {
        Ok(())
    } else {
        Err(WebError::BadRequest("oidc-error-invalid-request"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_of_ours_pass() {
        assert!(is_local_path("/oauth2/authorize?client_id=a&state=x%01y+z"));
        assert!(is_local_path("/account"));
        for bad in [
            "",
            "account",
            "//evil.example/",
            "/\\evil.example/",
            "/a\\b",
            "/a b",
            "/a\u{1}b",
            "/a\u{7f}b",
            "/a\tb",
            "/a\nb",
            "/é",
            "https://evil.example/",
            "javascript:alert(1)",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
        assert!(!is_local_path(&format!("/{}", "a".repeat(MAX_NEXT_LEN))));
        assert!(refuse_malformed("").is_ok());
        assert!(refuse_malformed("//x").is_err());
    }
}
