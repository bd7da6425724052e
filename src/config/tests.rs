use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Every key of the embedded defaults, as `section.key` (or `key` at the top).
fn known_keys() -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in DEFAULT_TOML.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            keys.push(format!("{section}{}", key.trim()));
        }
    }
    keys
}

/// A TOML value as an operator (or a broken template) could write it.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<i64>().prop_map(|n| n.to_string()),
        4 => (-2i64..100_000).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "9223372036854775807", "-9223372036854775808", "18446744073709551615",
            "99999999999999999999", "0", "-1", "4294967296", "65536", "0x7fffffff",
        ]).prop_map(str::to_string),
        1 => prop::sample::select(vec!["1.5", "-0.0", "inf", "nan", "1e400", "2e9"])
            .prop_map(str::to_string),
        3 => ".{0,30}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        3 => prop::sample::select(vec![
            "\"https://login.example.com\"", "\"http://127.0.0.1:8080/\"", "\"ftp://x\"",
            "\"sqlite:data/x.db\"", "\"postgres://u@h/db\"", "\"redis://127.0.0.1\"",
            "\"smtp://u:p@mail.example.com:25\"", "\"smtps://h:465\"", "\"127.0.0.1:0\"",
            "\"[::1]:8080\"", "\"json\"", "\"text\"", "\"info,gotthard=debug\"", "\"[\"",
            "\"\"", "[\"10.0.0.2\"]", "[\"::1\", \"not an ip\"]", "[]", "[1, \"a\"]",
            "{ a = 1 }", "true", "false", "1979-05-27T07:32:00Z", "\"a\\u0000b\"",
        ]).prop_map(str::to_string),
    ]
}

/// Files of known keys (in their sections) with values of any type, plus unknown keys,
/// or text that is not TOML.
fn toml_file() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        9 => prop::sample::select(known_keys()),
        1 => "([a-z_]{1,8}\\.)?[a-z_]{1,12}",
    ];
    prop_oneof![
        8 => prop::collection::btree_map(key, toml_value(), 0..6).prop_map(|values| {
            let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for (path, value) in values {
                let (section, key) = path.rsplit_once('.').unwrap_or(("", &path));
                sections
                    .entry(section.to_string())
                    .or_default()
                    .push((key.to_string(), value));
            }
            let mut text = String::new();
            for (section, pairs) in sections {
                if !section.is_empty() {
                    text.push_str(&format!("[{section}]\n"));
                }
                for (key, value) in pairs {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text
        }),
        1 => ".{0,200}",
        1 => "(\\[[a-z_.]{0,10}\\]|[a-z_]{1,10} ?= ?[0-9\"a-z\\[\\]{}]{0,10}|\n){0,10}",
    ]
}

/// Everything the server derives from a configuration that loaded, computed as it does:
/// lifetimes added to and taken from a time the calendar holds, intervals of timers.
fn derive_everything(config: &Config) -> Result<(), TestCaseError> {
    let later = time::macros::datetime!(2100-01-01 0:00 UTC);
    let lifetimes = [
        config.sessions.idle_timeout(),
        config.sessions.absolute_lifetime(),
        config.sessions.touch_interval(),
        config.activity.retention().account,
        config.activity.retention().machine,
        config.oidc.code_ttl(),
        config.oidc.refresh_token_ttl(),
        config.oidc.refresh_grace(),
        config.oidc.key_retention(),
        time::Duration::seconds(config.oidc.access_token_ttl_secs),
        time::Duration::seconds(config.oidc.id_token_ttl_secs),
        time::Duration::hours(config.smtp.sent_retention_hours),
        time::Duration::minutes(config.lockout.unlock_link_ttl_minutes),
        time::Duration::minutes(config.setup.link_ttl_minutes),
        time::Duration::minutes(config.accounts.password_reset_ttl_minutes),
        time::Duration::hours(config.sso.domain_recheck_hours),
    ];
    for lifetime in lifetimes {
        prop_assert!(!lifetime.is_negative());
        prop_assert!(
            later.checked_add(lifetime).is_some() && later.checked_sub(lifetime).is_some()
        );
    }
    let start = std::time::Instant::now();
    for interval in [
        config.maintenance.interval(),
        std::time::Duration::from_secs(config.smtp.poll_interval_secs),
        std::time::Duration::from_secs(config.oidc.backchannel_poll_interval_secs),
        std::time::Duration::from_secs(config.http.request_timeout_secs),
    ] {
        prop_assert!(!interval.is_zero());
        // A timer adds its period again at every tick.
        let ticks = interval
            .checked_mul(1000)
            .and_then(|d| start.checked_add(d));
        prop_assert!(ticks.is_some());
    }
    prop_assert!(config.hash_threads() >= 1);
    Ok(())
}

fn check(loaded: Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    match loaded {
        Ok(config) => derive_everything(&config),
        Err(ConfigError::Invalid { key, env, .. }) => {
            prop_assert!(known_keys().iter().any(|k| k == key), "{key}");
            prop_assert_eq!(
                env,
                format!("GOTTHARD_{}", key.replace('.', "__").to_uppercase())
            );
            Ok(())
        }
        Err(ConfigError::Parse(message)) => {
            prop_assert!(!message.is_empty());
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(crate::fuzz::config(128))]

    /// A configuration file of any content: a configuration whose every derived lifetime
    /// and interval exists, or an error naming the key (and its environment variable).
    #[test]
    fn fuzz_config_file_of_any_content(file in toml_file()) {
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(&file));
        check(Config::finish(figment))?;
    }

    /// Environment overrides of any key with any text.
    #[test]
    fn fuzz_config_environment_values(
        pairs in prop::collection::vec(
            (
                prop_oneof![9 => prop::sample::select(known_keys()), 1 => "[a-z_.]{1,20}"],
                prop_oneof![
                    toml_value(),
                    any::<u64>().prop_map(|n| n.to_string()),
                    ".{0,20}",
                ],
            ),
            0..4,
        )
    ) {
        let pairs: Vec<(&str, &str)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        check(Config::from_overrides(&pairs))?;
    }

    /// Every number a key accepts loads as written (the defaults' file round-trips).
    #[test]
    fn fuzz_config_round_trip(
        ttl in 1i64..=86_400,
        days in 1i64..=3_660,
        idle in 1i64..=527_040,
    ) {
        let file = format!(
            "[oidc]\naccess_token_ttl_secs = {ttl}\nrefresh_token_ttl_days = {days}\n\
             [sessions]\nidle_timeout_minutes = {idle}\n"
        );
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(&file));
        let config = Config::finish(figment).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(config.oidc.access_token_ttl_secs, ttl);
        prop_assert_eq!(config.oidc.refresh_token_ttl_days, days);
        prop_assert_eq!(config.sessions.idle_timeout_minutes, idle);
    }
}

/// Found by `fuzz_config_environment_values`: a quoted value with a non-ASCII character
/// before a backslash panicked inside figment instead of loading or naming its key.
#[test]
fn environment_text_with_backslash_and_non_ascii_is_taken_as_written() {
    for value in ["\"¡\\u0000\"", "\"café\\n\"", "[\"é\\t\"]"] {
        let err = Config::from_overrides(&[("issuer", value)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("GOTTHARD_ISSUER"), "{value}: {err}");
    }
    let config = Config::from_overrides(&[("smtp.from", "\"Café\\\" <a@b.c>")]).unwrap();
    assert_eq!(config.smtp.from, "\"Café\\\" <a@b.c>");
}

/// Found by `scripts/fuzz` (a million cases of both `fuzz_config_*`): a `log.level`
/// directive with white space before a non-ASCII character panicked inside
/// tracing-subscriber instead of loading or naming the key.
#[test]
fn log_levels_with_white_space_before_non_ascii_do_not_panic() {
    for level in [
        "\u{b}À=",
        "\u{b}ァ[",
        "info, \u{b}ァ=debug",
        " gotthard=debug , info",
    ] {
        match Config::from_overrides(&[("log.level", level)]) {
            Ok(config) => assert!(!config.log.level.contains(char::is_whitespace)),
            Err(err) => assert!(err.to_string().contains("log.level"), "{level}: {err}"),
        }
    }
}

/// Found by `fuzz_config_environment_values`: these loaded, then panicked at start-up
/// (a lifetime past what `time::Duration` holds) or on the first token (a date past the
/// calendar's end), or made tokens that were born expired.
#[test]
fn lifetimes_out_of_range_are_refused_with_their_key() {
    for (key, value) in [
        ("sessions.idle_timeout_minutes", "9223372036854775807"),
        ("sessions.absolute_lifetime_hours", "9223372036854775807"),
        ("activity.retention_days", "9223372036854775807"),
        ("oidc.refresh_token_ttl_days", "9223372036854775807"),
        ("oidc.access_token_ttl_secs", "9223372036854775807"),
        ("oidc.access_token_ttl_secs", "-300"),
        ("oidc.code_ttl_secs", "0"),
        ("maintenance.interval_minutes", "307445734561825861"),
        (
            "oidc.backchannel_poll_interval_secs",
            "18446744073709551615",
        ),
        ("password.queue_limit", "18446744073709551615"),
        ("accounts.password_reset_ttl_minutes", "0"),
        ("accounts.password_reset_ttl_minutes", "1441"),
    ] {
        let err = Config::from_overrides(&[(key, value)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(key), "{key} = {value}: {err}");
    }
}

#[test]
fn defaults_load_and_validate() {
    let config = Config::from_overrides(&[]).unwrap();
    assert_eq!(config.http.bind.to_string(), "127.0.0.1:8080");
    assert!(config.database_url().ends_with("gotthard.db"));
    assert!(!config.is_https());
}

#[test]
fn bad_value_names_the_key() {
    let err = Config::from_overrides(&[("http.bind", "not-an-address")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("http.bind"), "{err}");
    let err = Config::from_overrides(&[("password.memory_kib", "1024")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("GOTTHARD_PASSWORD__MEMORY_KIB"), "{err}");
}

#[test]
fn smtp_credentials_need_tls_unless_on_this_machine() {
    let check = |url: &str| Config::from_overrides(&[("smtp.url", url)]).map(|_| ());
    for refused in [
        "smtp://u:p@mail.example.com:25",
        "smtp://u@mail.example.com:587",
        "smtp://u:p@mail.example.com:587?tls=opportunistic",
        "smtp://u:p@10.0.0.5:25",
        "smtp://u:p@localhost.example.com:25",
    ] {
        let err = check(refused)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("smtp.url") && err.contains("GOTTHARD_SMTP__URL"),
            "{refused}: {err}"
        );
        assert!(!err.contains(":p@"), "the password is not repeated: {err}");
    }
    for accepted in [
        "",
        "smtps://u:p@mail.example.com:465",
        "smtp://u:p@mail.example.com:587?tls=required",
        "smtp://u:p@127.0.0.1:2525",
        "smtp://u:p@127.1.2.3:25",
        "smtp://u:p@[::1]:25",
        "smtp://u:p@localhost:25",
        "smtp://u:p@LOCALHOST.:25",
        // No credentials: allowed (an internal relay), with a warning at start-up.
        "smtp://relay.internal:25",
    ] {
        assert!(
            check(accepted).is_ok(),
            "{accepted}: {:?}",
            check(accepted).err().map(|e| e.to_string())
        );
    }
    let plain = Config::from_overrides(&[("smtp.url", "smtp://relay.internal:25")]).unwrap();
    assert!(plain.smtp.plain_towards_another_machine());
}

#[test]
fn unknown_key_is_refused() {
    let err = Config::from_overrides(&[("http.bnd", "127.0.0.1:1")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("bnd"), "{err}");
}
