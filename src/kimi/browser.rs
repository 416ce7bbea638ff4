//! The browser this server presents itself as to Kimi, in one place: the web client version
//! (`X-Msh-Version`), the User-Agent, and the client hints (`sec-ch-ua*`) that go with it.
//!
//! Checked on 2026-12-03 against `docs/kimi-protocol.md` §7.9: a browser capture of 2026-09-15
//! sent `x-msh-version: 2.2.0` and Chrome 146 with its `sec-ch-ua*`; sources of about October
//! send 2.3.0. `--kimi-web-version` and `--user-agent` override both without a new release.

/// The web client version sent as `X-Msh-Version` (`docs/kimi-protocol.md` §7.9).
pub const DEFAULT_WEB_VERSION: &str = "2.3.0";

/// Desktop Chrome 146 on Windows, the browser of the 2026-09-15 capture (`docs/kimi-protocol.md` §7.9).
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                                      (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";

/// The `sec-ch-ua` that Chrome 146 sends ([`client_hints`] derives it from the User-Agent).
pub const DEFAULT_SEC_CH_UA: &str = r#""Chromium";v="146", "Not-A.Brand";v="24", "Google Chrome";v="146""#;

/// The browser identity every call to Kimi carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Browser {
    /// Sent as `X-Msh-Version` on Connect calls.
    pub web_version: String,
    /// Sent as `User-Agent` to every Kimi host (and on attachment fetches).
    pub user_agent: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser { web_version: DEFAULT_WEB_VERSION.into(), user_agent: DEFAULT_USER_AGENT.into() }
    }
}

impl Browser {
    /// The headers of the web client besides the User-Agent: `X-Msh-Version` and, for a Chrome
    /// User-Agent, its client hints.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("X-Msh-Version", self.web_version.clone())];
        headers.extend(client_hints(&self.user_agent));
        headers
    }
}

/// The `sec-ch-ua`, `sec-ch-ua-mobile` and `sec-ch-ua-platform` a Chrome with this User-Agent
/// sends; none for a User-Agent without `Chrome/NNN` (other browsers send no client hints).
pub fn client_hints(user_agent: &str) -> Vec<(&'static str, String)> {
    let Some(major) = chrome_major(user_agent) else { return Vec::new() };
    let mobile = if user_agent.contains("Mobile") { "?1" } else { "?0" };
    let mut hints = vec![("sec-ch-ua", brands(major)), ("sec-ch-ua-mobile", mobile.to_string())];
    if let Some(platform) = platform(user_agent) {
        hints.push(("sec-ch-ua-platform", format!("\"{platform}\"")));
    }
    hints
}

/// The major version in `Chrome/NNN.…`.
fn chrome_major(user_agent: &str) -> Option<u32> {
    let rest = &user_agent[user_agent.find("Chrome/")? + "Chrome/".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|major| *major > 0)
}

/// Chrome's brand list for a major version, with its "GREASE" brand: the brand's characters,
/// its version and the order of the three entries all follow from the major version (Chromium's
/// `GenerateBrandVersionList`; 146 gives [`DEFAULT_SEC_CH_UA`]).
fn brands(major: u32) -> String {
    const GREASE_CHARS: [&str; 11] = [" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_"];
    const GREASE_VERSIONS: [&str; 3] = ["8", "99", "24"];
    const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    let seed = major as usize;
    let grease = format!(
        "\"Not{}A{}Brand\";v=\"{}\"",
        GREASE_CHARS[seed % 11],
        GREASE_CHARS[(seed + 1) % 11],
        GREASE_VERSIONS[seed % 3]
    );
    let entries = [grease, format!("\"Chromium\";v=\"{major}\""), format!("\"Google Chrome\";v=\"{major}\"")];
    let mut list = [""; 3];
    for (entry, place) in entries.iter().zip(ORDERS[seed % 6]) {
        list[place] = entry;
    }
    list.join(", ")
}

/// The platform a User-Agent names, as `sec-ch-ua-platform` spells it.
fn platform(user_agent: &str) -> Option<&'static str> {
    // Android's User-Agent names Linux too, so Linux comes last.
    const PLATFORMS: [(&str, &str); 5] = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("CrOS", "Chrome OS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    PLATFORMS.iter().find(|(token, _)| user_agent.contains(token)).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_identity_is_chrome_146_on_windows_with_version_2_3_0() {
        let headers = Browser::default().headers();
        let expected = [
            ("X-Msh-Version", "2.3.0"),
            ("sec-ch-ua", DEFAULT_SEC_CH_UA),
            ("sec-ch-ua-mobile", "?0"),
            ("sec-ch-ua-platform", "\"Windows\""),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(headers, expected);
    }

    #[test]
    fn client_hints_follow_an_overridden_chrome_user_agent() {
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                   Chrome/124.0.0.0 Safari/537.36";
        let hints = client_hints(mac);
        assert_eq!(hints[0].1, r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#);
        assert_eq!(hints[2].1, "\"macOS\"");
        let old = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0";
        assert_eq!(
            client_hints(old)[0].1,
            r#""Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120""#
        );
        assert_eq!(client_hints(old)[2].1, "\"Linux\"");
        let phone =
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/146.0.0.0 Mobile Safari/537.36";
        assert_eq!(
            (client_hints(phone)[1].1.as_str(), client_hints(phone)[2].1.as_str()),
            ("?1", "\"Android\"")
        );
    }

    #[test]
    fn a_user_agent_without_a_chrome_version_sends_no_client_hints() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert!(client_hints(firefox).is_empty());
        assert!(client_hints("curl/8.0").is_empty());
        assert!(client_hints("Chrome/").is_empty());
        let browser = Browser { web_version: "9.9.9".into(), user_agent: firefox.into() };
        assert_eq!(browser.headers(), [("X-Msh-Version", "9.9.9".to_string())]);
    }
}
