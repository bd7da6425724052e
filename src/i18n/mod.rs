//! Texts in English, Spanish and French (Fluent) for pages and mails, chosen from the
//! recipient's language: below both the services (mails) and the adapters (pages).

use std::collections::HashMap;
use std::sync::Arc;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_langneg::{NegotiationStrategy, accepted_languages, negotiate_languages};
use unic_langid::LanguageIdentifier;

mod time;

pub use time::{ReaderZone, TimeView};

/// The languages pages and mails speak, as a user may choose them.
pub const LOCALES: [&str; 3] = ["en", "es", "fr"];

const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("locales/en.ftl")),
    ("es", include_str!("locales/es.ftl")),
    ("fr", include_str!("locales/fr.ftl")),
];

pub struct I18n {
    bundles: HashMap<LanguageIdentifier, FluentBundle<FluentResource>>,
    available: Vec<LanguageIdentifier>,
    default: LanguageIdentifier,
    formatters: time::Formatters,
}

impl I18n {
    pub fn load() -> anyhow::Result<Self> {
        let mut bundles = HashMap::new();
        let mut available = Vec::new();
        for (tag, source) in SOURCES {
            let lang: LanguageIdentifier = tag.parse()?;
            let resource = FluentResource::try_new(source.to_string())
                .map_err(|(_, errors)| anyhow::anyhow!("locale {tag}: {errors:?}"))?;
            let mut bundle = FluentBundle::new_concurrent(vec![lang.clone()]);
            // Isolation marks would show up inside HTML attributes; templates escape anyway.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errors| anyhow::anyhow!("locale {tag}: {errors:?}"))?;
            available.push(lang.clone());
            bundles.insert(lang, bundle);
        }
        let default: LanguageIdentifier = "en".parse()?;
        Ok(Self {
            bundles,
            available,
            default,
            formatters: time::Formatters::load(&LOCALES)?,
        })
    }

    /// The best supported language for an `Accept-Language` header (English when none fits).
    pub fn negotiate(self: &Arc<Self>, accept_language: Option<&str>) -> Translator {
        let requested = accepted_languages::parse(accept_language.unwrap_or(""));
        let chosen = negotiate_languages(
            &requested,
            &self.available,
            Some(&self.default),
            NegotiationStrategy::Lookup,
        )
        .first()
        .map(|l| (*l).clone())
        .unwrap_or_else(|| self.default.clone());
        Translator {
            i18n: self.clone(),
            lang: chosen,
        }
    }

    fn format(&self, lang: &LanguageIdentifier, key: &str, args: Option<&FluentArgs>) -> String {
        for candidate in [lang, &self.default] {
            if let Some(bundle) = self.bundles.get(candidate)
                && let Some(pattern) = bundle.get_message(key).and_then(|m| m.value())
            {
                let mut errors = Vec::new();
                return bundle
                    .format_pattern(pattern, args, &mut errors)
                    .into_owned();
            }
        }
        key.to_string()
    }

    #[cfg(test)]
    fn keys(&self, lang: &str) -> Vec<String> {
        SOURCES
            .iter()
            .filter(|(tag, _)| *tag == lang)
            .flat_map(|(_, src)| {
                src.lines()
                    .filter_map(|l| l.split_once(" =").map(|(k, _)| k.trim().to_string()))
                    .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with(' '))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The texts of one request, in its negotiated language.
#[derive(Clone)]
pub struct Translator {
    i18n: Arc<I18n>,
    lang: LanguageIdentifier,
}

impl Translator {
    pub fn lang(&self) -> String {
        self.lang.to_string()
    }

    pub fn t(&self, key: &str) -> String {
        self.i18n.format(&self.lang, key, None)
    }

    /// A message with a count `n`, whose words follow the language's plural rules.
    pub fn t_count(&self, key: &str, n: i64) -> String {
        let mut fluent_args = FluentArgs::new();
        fluent_args.set("n", FluentValue::from(n));
        self.i18n.format(&self.lang, key, Some(&fluent_args))
    }

    pub fn t_with(&self, key: &str, args: &[(&str, String)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, FluentValue::from(value.clone()));
        }
        self.i18n.format(&self.lang, key, Some(&fluent_args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_locale_has_every_key() {
        let i18n = I18n::load().unwrap();
        let english = i18n.keys("en");
        assert!(english.len() > 20);
        for lang in ["es", "fr"] {
            let keys = i18n.keys(lang);
            for key in &english {
                assert!(keys.contains(key), "{lang} lacks {key}");
            }
        }
    }

    #[test]
    fn every_action_has_words() {
        let i18n = I18n::load().unwrap();
        let english = i18n.keys("en");
        for action in crate::audit::Action::ALL {
            let key = format!("action-{}", action.as_str().replace(['.', '_'], "-"));
            assert!(english.contains(&key), "no words for {}", action.as_str());
        }
    }

    #[test]
    fn negotiates_from_accept_language() {
        let i18n = Arc::new(I18n::load().unwrap());
        assert_eq!(
            i18n.negotiate(Some("fr-CH, fr;q=0.9, en;q=0.8")).lang(),
            "fr"
        );
        assert_eq!(i18n.negotiate(Some("es-MX,es;q=0.9")).lang(), "es");
        assert_eq!(i18n.negotiate(Some("de-DE")).lang(), "en");
        assert_eq!(i18n.negotiate(None).lang(), "en");
        assert_eq!(
            i18n.negotiate(Some("es")).t("login-submit"),
            "Iniciar sesión"
        );
    }
}
