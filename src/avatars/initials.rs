//! The picture of an account without an avatar: one or two capital letters, white, on a
//! colour of a fixed palette chosen by the user id. Everything it shows is in its URL, so
//! it is rendered without a lookup and cached forever.

use std::io::Cursor;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{ImageFormat, Rgb, RgbImage};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Roboto Bold, subset to Latin-1 and Latin Extended-A (Apache-2.0; see
/// `Roboto-NOTICE.txt`).
pub(super) const FONT: &[u8] = include_bytes!("Roboto-Bold-Latin.ttf");

/// The backgrounds, each dark enough for white text at WCAG AA (contrast ≥ 4.5:1; a test
/// checks every one).
pub const PALETTE: [[u8; 3]; 12] = [
    [0xC6, 0x28, 0x28], // red
    [0xAD, 0x14, 0x57], // pink
    [0x6A, 0x1B, 0x9A], // purple
    [0x45, 0x27, 0xA0], // deep purple
    [0x28, 0x35, 0x93], // indigo
    [0x15, 0x65, 0xC0], // blue
    [0x00, 0x60, 0x64], // cyan
    [0x00, 0x69, 0x5C], // teal
    [0x2E, 0x7D, 0x32], // green
    [0x33, 0x69, 0x1E], // olive
    [0xBF, 0x36, 0x0C], // deep orange
    [0x4E, 0x34, 0x2E], // brown
];

/// What stands for a person whose name and address have no letter the font draws.
pub const UNKNOWN: &str = "?";

/// The letters of a display name: the first letter of its first word and of its last word
/// (one letter for a single word), in capitals; else the first letter or digit of the
/// e-mail address; else [`UNKNOWN`]. Only letters the image can draw count (Latin-1 and
/// Latin Extended-A capitals, digits).
pub fn initials(name: &str, email: &str) -> String {
    let first_drawable = |word: &str| word.chars().find_map(capital);
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| first_drawable(w).is_some())
        .collect();
    let mut letters = String::new();
    if let Some(first) = words.first().and_then(|w| first_drawable(w)) {
        letters.push(first);
        if words.len() > 1
            && let Some(last) = words.last().and_then(|w| first_drawable(w))
        {
            letters.push(last);
        }
        return letters;
    }
    match email.chars().find_map(capital) {
        Some(c) => c.to_string(),
        None => UNKNOWN.to_string(),
    }
}

/// The capital the image draws for a character, if any: a letter that upper-cases to one
/// capital of Latin-1 or Latin Extended-A, or an ASCII digit.
fn capital(c: char) -> Option<char> {
    if c.is_ascii_digit() {
        return Some(c);
    }
    if !c.is_alphabetic() {
        return None;
    }
    let mut upper = c.to_uppercase();
    let (Some(u), None) = (upper.next(), upper.next()) else {
        return None;
    };
    drawable(u).then_some(u)
}

/// A character allowed in an initials URL: a capital of Latin-1 or Latin Extended-A, or a
/// digit (and [`UNKNOWN`] alone).
fn drawable(c: char) -> bool {
    c.is_ascii_digit()
        || (c.is_uppercase()
            && (c.is_ascii_uppercase()
                || ('\u{C0}'..='\u{DE}').contains(&c)
                || ('\u{100}'..='\u{17F}').contains(&c)))
}

/// Whether `text` is something [`initials`] returns: one or two drawable characters, or
/// [`UNKNOWN`].
pub fn valid_text(text: &str) -> bool {
    let count = text.chars().count();
    text == UNKNOWN || ((1..=2).contains(&count) && text.chars().all(drawable))
}

/// The palette index of a user: stable, spread by a hash of the id.
pub fn colour_of(user_id: Uuid) -> usize {
    let digest = Sha256::digest(user_id.as_bytes());
    usize::from(digest[0]) % PALETTE.len()
}

/// The PNG of `text` in white on `PALETTE[colour]`, `size` pixels square. The caller
/// validated the three (see [`valid_text`]).
pub fn render(font: &FontRef<'static>, text: &str, colour: usize, size: u32) -> Option<Vec<u8>> {
    let background = *PALETTE.get(colour)?;
    let mut picture = RgbImage::from_pixel(size, size, Rgb(background));
    // Two letters fill less of the width than one would at the same height.
    let height = size as f32 * if text.chars().count() > 1 { 0.40 } else { 0.48 };
    let scale = PxScale::from(height);
    let scaled = font.as_scaled(scale);
    let mut caret = 0.0f32;
    let mut previous = None;
    let mut glyphs = Vec::new();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, 0.0)));
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    let outlined: Vec<_> = glyphs
        .into_iter()
        .filter_map(|g| font.outline_glyph(g))
        .collect();
    // Centred on the ink itself, so that accents and descenders are balanced.
    let (min_x, min_y, max_x, max_y) = outlined.iter().map(|g| g.px_bounds()).fold(
        (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
        |(a, b, c, d), r| {
            (
                a.min(r.min.x),
                b.min(r.min.y),
                c.max(r.max.x),
                d.max(r.max.y),
            )
        },
    );
    if outlined.is_empty() {
        return encode_png(&picture);
    }
    let dx = (size as f32 - (max_x - min_x)) / 2.0 - min_x;
    let dy = (size as f32 - (max_y - min_y)) / 2.0 - min_y;
    for glyph in &outlined {
        let bounds = glyph.px_bounds();
        glyph.draw(|x, y, coverage| {
            let px = (bounds.min.x + dx).round() as i64 + i64::from(x);
            let py = (bounds.min.y + dy).round() as i64 + i64::from(y);
            if px < 0 || py < 0 || px >= i64::from(size) || py >= i64::from(size) {
                return;
            }
            let pixel = picture.get_pixel_mut(px as u32, py as u32);
            let coverage = coverage.clamp(0.0, 1.0);
            for (channel, base) in pixel.0.iter_mut().zip(background) {
                let blended = f32::from(base) + (255.0 - f32::from(base)) * coverage;
                *channel = (*channel).max(blended.round() as u8);
            }
        });
    }
    encode_png(&picture)
}

fn encode_png(picture: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// WCAG 2 relative luminance of an sRGB colour.
    fn luminance([r, g, b]: [u8; 3]) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    #[test]
    fn every_background_has_aa_contrast_with_white() {
        for colour in PALETTE {
            let contrast = 1.05 / (luminance(colour) + 0.05);
            assert!(contrast >= 4.5, "{colour:?}: {contrast:.2}");
        }
    }

    #[test]
    fn initials_of_names_and_addresses() {
        assert_eq!(initials("Ada Lovelace", "x@example.com"), "AL");
        assert_eq!(initials("  ada   king lovelace ", "x@example.com"), "AL");
        assert_eq!(initials("Émile Zola", "x@example.com"), "ÉZ");
        assert_eq!(initials("łukasz żak", "x@example.com"), "ŁŻ");
        assert_eq!(initials("Jean-Luc", "x@example.com"), "JL");
        assert_eq!(initials("Cher", "x@example.com"), "C");
        assert_eq!(initials("", "bob@example.com"), "B");
        assert_eq!(initials("  ", "_1x@example.com"), "1");
        // Letters the font does not draw fall back to the address.
        assert_eq!(initials("山田 太郎", "yamada@example.jp"), "Y");
        assert_eq!(initials("Ölçek 山田", "o@example.com"), "Ö");
        assert_eq!(initials("山田", "山田@例え.テスト"), UNKNOWN);
        // ß upper-cases to two letters: it is skipped, not doubled.
        assert_eq!(initials("ßa", "x@example.com"), "A");
    }

    #[test]
    fn the_font_draws_every_allowed_character() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        let allowed = ('\0'..='\u{17F}').filter(|c| drawable(*c)).chain(['?']);
        for c in allowed {
            assert_ne!(font.glyph_id(c).0, 0, "{c} ({:04X})", c as u32);
        }
    }

    #[test]
    fn a_render_is_a_png_of_the_size_on_the_colour() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        let png = render(&font, "ÉZ", 3, 128).unwrap();
        let decoded = image::load_from_memory_with_format(&png, ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(decoded.dimensions(), (128, 128));
        assert_eq!(decoded.get_pixel(0, 0).0, PALETTE[3]);
        let white = decoded.pixels().filter(|p| p.0 == [255, 255, 255]).count();
        assert!(white > 200, "letters drawn: {white} white pixels");
        assert!(render(&font, "A", PALETTE.len(), 64).is_none());
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Whatever the name and address, the initials are valid in a URL's path.
        #[test]
        fn fuzz_initials_are_always_valid(name in ".{0,40}", email in ".{0,40}") {
            prop_assert!(valid_text(&initials(&name, &email)));
        }
    }
}
