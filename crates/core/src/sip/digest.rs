//! HTTP digest authentication for SIP clients (RFC 2617, RFC 7616 with SHA-256, RFC 3261 §22).

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::message::{is_lws, split_list, trim_lws, Response};

/// User name and password for digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The digest challenge a 401 or 407 carries, and the header name that answers it
/// (`Authorization` or `Proxy-Authorization`).
pub fn challenge_of(resp: &Response) -> Option<(Challenge, &'static str)> {
    let (asks, answer) = match resp.code {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    let challenge = resp.headers.get_all(asks).find_map(Challenge::parse)?;
    Some((challenge, answer))
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered qop=auth.
    pub qop_auth: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }
}

impl Challenge {
    /// Parses a Digest challenge; other schemes (and malformed ones) give None.
    pub fn parse(value: &str) -> Option<Challenge> {
        // The scheme ends at LWS (SP/HTAB), not at any Unicode space.
        let value = trim_lws(value);
        let (scheme, rest) = value.split_once(is_lws)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop_auth = false;
        let mut stale = false;
        for part in split_list(rest) {
            let (k, v) = trim_lws(part).split_once('=')?;
            let v = trim_lws(v);
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            match trim_lws(k).to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v.to_string()),
                "nonce" => nonce = Some(v.to_string()),
                "opaque" => opaque = Some(v.to_string()),
                "algorithm" => {
                    algorithm = match v.to_ascii_uppercase().as_str() {
                        "MD5" => Algorithm::Md5,
                        "MD5-SESS" => Algorithm::Md5Sess,
                        "SHA-256" => Algorithm::Sha256,
                        "SHA-256-SESS" => Algorithm::Sha256Sess,
                        _ => return None,
                    }
                }
                "qop" => {
                    qop_auth = v
                        .split(',')
                        .any(|q| trim_lws(q).eq_ignore_ascii_case("auth"))
                }
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        // Realm, nonce and opaque go back to the server in our credentials: a control byte in
        // one (an escaped one passes the message grammar) would be written into our request.
        let sendable = |v: &Option<String>| {
            v.as_deref()
                .is_none_or(|v| !v.chars().any(|c| c.is_ascii_control()))
        };
        if !(sendable(&realm) && sendable(&nonce) && sendable(&opaque)) {
            return None;
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The answer for `method` on `uri`, with a fresh client nonce.
    pub fn authorize(&self, cred: &Credentials, method: &str, uri: &str, cnonce: &str) -> String {
        self.respond(&cred.username, &cred.password, method, uri, cnonce, 1)
    }

    /// The `Authorization` value answering this challenge for `method` on `uri`.
    pub fn respond(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        if matches!(alg, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc_text = format!("{nc:08x}");
        let response = if self.qop_auth {
            alg.hash(&format!(
                "{ha1}:{}:{nc_text}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            alg.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc_text}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(auth: &'a str, name: &str) -> &'a str {
        let start = auth.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = auth[start..].find('"').unwrap();
        &auth[start..start + end]
    }

    /// RFC 2617 §3.5 example.
    #[test]
    fn rfc2617_example() {
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let a = c.respond(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(field(&a, "response"), "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1 example, SHA-256.
    #[test]
    fn rfc7616_sha256_example() {
        let c = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let a = c.respond(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert_eq!(
            field(&a, "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn other_schemes_and_garbage() {
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"x\"").is_none());
        assert!(Challenge::parse("Digest realm=\"x\", nonce=\"y\", algorithm=ROT13").is_none());
        assert!(Challenge::parse("").is_none());
    }

    #[test]
    fn scheme_ends_at_lws_only() {
        assert!(Challenge::parse("Digest\u{a0}realm=\"x\", nonce=\"y\"").is_none());
        assert!(Challenge::parse("Digest\trealm=\"x\", nonce=\"y\"").is_some());
        assert!(Challenge::parse("Digest realm=\"é\", nonce=\"\", é=é, \"").is_none());
        let c = Challenge::parse("Digest realm=é, nonce=\"ü\"").unwrap();
        assert_eq!((c.realm.as_str(), c.nonce.as_str()), ("é", "ü"));
    }
}
