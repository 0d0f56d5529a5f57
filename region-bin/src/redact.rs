//! Keeping secrets out of answers and logs: which names hold secrets, masking known secret
//! values in text, and database URLs and connection strings fit for a log line.

/// What a masked secret reads as.
pub const MASK: &str = "********";

/// Whether a parameter or field named `name` holds a secret (`power_pass`, `password`,
/// `sslpassword`, `license_key`, `api_token`, `snmp_community`…).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "key", "token", "community", "credential"]
        .iter()
        .any(|word| name.contains(word))
}

/// `text` with every occurrence of each non-empty secret replaced by [`MASK`] (longest first,
/// so a secret containing another is masked whole).
pub fn redact_secrets(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in secrets {
        out = out.replace(secret, MASK);
    }
    out
}

/// A database URL or connection string fit for a log line or an error message: the password
/// of `scheme://user:password@host`, every secret-named query parameter (`?password=…`,
/// `&sslpassword=…`) and every secret-named `key=value` pair of a libpq keyword/value
/// connection string (`host=db password='x y'`) replaced by [`MASK`].
pub fn redact_url(url: &str) -> String {
    if url.contains("://") {
        redact_uri(url)
    } else if url.contains('=') {
        redact_conninfo(url)
    } else {
        url.to_owned()
    }
}

fn redact_uri(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.find("://") {
        Some(scheme) => {
            let rest = &head[scheme + 3..];
            // The userinfo ends at the last '@' before the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => match rest[..at].split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:{MASK}{}", &head[..scheme + 3], &rest[at..])
                    }
                    None => head.to_owned(),
                },
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(&percent_decoded_lossy(name)) => {
                    format!("{name}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Good enough to recognise a parameter name such as `pass%77ord`.
fn percent_decoded_lossy(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(name.get(i + 1..i + 3).unwrap_or(""), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's keyword/value form: `key = value` pairs separated by spaces, values optionally in
/// single quotes with backslash escapes.
fn redact_conninfo(conninfo: &str) -> String {
    let mut out = String::with_capacity(conninfo.len());
    let mut chars = conninfo.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        out.push_str(&key);
        while let Some(&c) = chars.peek() {
            if !c.is_whitespace() {
                break;
            }
            out.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        out.push('=');
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            value.push('\'');
            chars.next();
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else if c == '\'' {
                    break;
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if is_secret_name(&key) {
            out.push_str(MASK);
        } else {
            out.push_str(&value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_connection_strings_lose_their_passwords() {
        let cases = [
            (
                "postgres://osmesh:S3cretPW@db.example:5432/region",
                "postgres://osmesh:********@db.example:5432/region",
            ),
            (
                "postgres://osmesh:p@ss@db/region?sslmode=verify-full",
                "postgres://osmesh:********@db/region?sslmode=verify-full",
            ),
            (
                "postgres://db/region?user=osmesh&password=S3cretPW&sslmode=verify-full",
                "postgres://db/region?user=osmesh&password=********&sslmode=verify-full",
            ),
            (
                "postgresql://db/r?sslpassword=S3cretPW",
                "postgresql://db/r?sslpassword=********",
            ),
            (
                "host=db user=osmesh password=S3cretPW dbname=region",
                "host=db user=osmesh password=******** dbname=region",
            ),
            (
                "host=db password = 'S3cret PW \\' x' dbname=region",
                "host=db password =******** dbname=region",
            ),
            ("sqlite://region.db", "sqlite://region.db"),
            ("postgres://osmesh@db/region", "postgres://osmesh@db/region"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
            assert!(!redact_url(url).contains("S3cret"), "{url}");
        }
    }

    #[test]
    fn known_secrets_are_masked_whole_in_text() {
        let text = "<ProductKey>ABCDE-FGHIJ</ProductKey> pass=hunter2hunter2";
        let secrets = vec!["hunter2".to_owned(), "hunter2hunter2".into(), String::new()];
        let masked = redact_secrets(text, &secrets);
        assert_eq!(masked, "<ProductKey>ABCDE-FGHIJ</ProductKey> pass=********");
        assert!(is_secret_name("power_pass") && is_secret_name("Password"));
        assert!(!is_secret_name("power_address"));
    }
}
