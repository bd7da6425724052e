//! Device labels for the session list, the activity log and alert mails, from the
//! User-Agent (woothee's maintained rules).

/// What a person recognizes a device by: browser, operating system, kind of device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceLabel {
    pub browser: String,
    pub os: String,
    /// `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler` or `unknown`.
    pub category: String,
}

impl DeviceLabel {
    pub fn from_user_agent(user_agent: &str) -> Self {
        let parsed = woothee::parser::Parser::new().parse(user_agent);
        let known = |value: &str| !value.is_empty() && value != "UNKNOWN";
        let (name, version, os, category) = parsed
            .map(|ua| (ua.name, ua.version, ua.os, ua.category))
            .unwrap_or(("", "", "", ""));
        let browser = match (known(name), known(version)) {
            (true, true) => format!("{name} {}", version.split('.').next().unwrap_or(version)),
            (true, false) => name.to_string(),
            _ => "Unknown browser".to_string(),
        };
        Self {
            browser,
            os: if known(os) { os } else { "unknown OS" }.to_string(),
            category: if known(category) { category } else { "unknown" }.to_string(),
        }
    }

    pub fn summary(&self) -> String {
        format!("{} on {}", self.browser, self.os)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_common_browsers() {
        let chrome = DeviceLabel::from_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(chrome.browser, "Chrome 120");
        assert_eq!(chrome.os, "Linux");
        assert_eq!(chrome.category, "pc");
        let iphone = DeviceLabel::from_user_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone.os, "iPhone");
        assert_eq!(iphone.category, "smartphone");
        assert_eq!(DeviceLabel::from_user_agent("").category, "unknown");
    }
}
