//! Tests of JWT verification: tokens minted here with `jsonwebtoken`, and
//! fixed token strings made independently (Python's `hmac`, `hashlib` and
//! `base64`) for the refusals, so a bug shared by minting and verifying in
//! one crate cannot hide. Key files are the committed test keys under
//! `tests/data/jwt/` (made with `openssl genpkey`; test-only, never a real key).

use std::path::PathBuf;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &str = "comet-test-secret-0123456789abcdef";
/// 2023-11-14T22:13:20Z: the clock of these tests.
const NOW: u64 = 1_700_000_000;
/// 2100-01-01: the `exp` of the fixed tokens.
const FAR: u64 = 4_102_444_800;

/// HS256 `{"sub":"user42","cname":"room1","exp":4102444800}` with SECRET.
const FIXED_OK: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyNDIiLCJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.0XBEatuXNjcbE9FlAb72ybGfpOX1r1aCyFQ-OHi8YqA";
/// HS256 `{"cname":"room1","exp":946684800}` (2000-01-01) with SECRET.
const FIXED_EXPIRED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo5NDY2ODQ4MDB9.5ZIUPr3eOeWWCEFiwotmMrWo2rdBM9ijY_c04XIUtW8";
/// HS256 `{"cname":"room1","exp":4102444800,"nbf":4102440000}` with SECRET.
const FIXED_NBF: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwLCJuYmYiOjQxMDI0NDAwMDB9.WVmy00LNmFAjOX_BEpD6w_AzdM6GtqF0oTPzYa3hanM";
/// The claims of FIXED_OK, HS256 with another secret.
const FIXED_OTHER_SECRET: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyNDIiLCJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.536bjQ6qM01mrcAJUBVAvl6w9NpCzDwPviRPMuiop4s";
/// `{"alg":"none"}`, `{"cname":"room1","exp":4102444800}`, no signature.
const FIXED_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
/// HS512 with SECRET, same claims as FIXED_NONE.
const FIXED_HS512: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.x1PLwI0JkGlz1lvtVVEZfvM9S9_L6miLbZAN_VpXc48iifwgC91y0Y0IFaZ1LCH-ivNAgAbBHEkGxeyc-_FITA";
/// Key confusion: header HS256, HMAC keyed with the bytes of rs256-public.pem.
const FIXED_CONFUSED_HS: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.y-j0FH0SBwo5jdESToulMAnWiLWcVzX2fSQwDXPONQA";
/// Key confusion: header RS256, HMAC keyed with the bytes of rs256-public.pem.
const FIXED_CONFUSED_RS: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.KllmKkrlPjYbqo-72i0MYnaP3zyhzRBJB5X4ePazsKY";
/// HS256 `{"sub":"x","exp":4102444800}`: neither `channels` nor `cname`.
const FIXED_NO_CHANNEL: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.XhBIRRxrGbOXsHvB1d80j9G-gBG2wMjcbHPz_IaX-v0";
/// HS256 over a truncated claims object `{"cname":"room1","exp":4102444800`.
const FIXED_SIGNED_BAD_JSON: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAw.x7pnBKVuhCNuB09HOGWn8FUgEdGlMMxSFXqyUUjZIJg";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jwt")
        .join(name)
}

fn hs256() -> JwtVerifier {
    JwtVerifier::new(&JwtConfig {
        secret: SECRET.to_string(),
        ..JwtConfig::default()
    })
    .expect("valid HS256 config")
}

fn with_key(algorithm: JwtAlgorithm, file: &str) -> JwtVerifier {
    JwtVerifier::new(&JwtConfig {
        algorithm,
        public_key_file: data(file).to_string_lossy().into_owned(),
        ..JwtConfig::default()
    })
    .expect("valid public-key config")
}

fn mint_hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("non-empty secret"),
    )
    .expect("mint HS256")
}

fn mint_pem(alg: Algorithm, private: &str, claims: &Value) -> String {
    let pem = std::fs::read(data(private)).expect("test key");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("test private key");
    encode(&Header::new(alg), claims, &key).expect("mint")
}

fn room1(exp: u64) -> Value {
    json!({"sub": "user42", "cname": "room1", "exp": exp})
}

#[test]
fn accepted_token_gives_sub_and_expiry() {
    let v = hs256();
    let grant = v.verify_at(&mint_hs(&room1(NOW + 60)), "room1", NOW).expect("accepted");
    assert_eq!(
        grant,
        Grant {
            sub: Some("user42".into()),
            expires_at: NOW + 60
        }
    );
    let fixed = v.verify_at(FIXED_OK, "room1", NOW).expect("fixed token accepted");
    assert_eq!(fixed.sub.as_deref(), Some("user42"));
    assert_eq!(fixed.expires_at, FAR);
    // Without sub, fractional exp (PyJWT passes a float through).
    let t = mint_hs(&json!({"cname": "room1", "exp": (NOW as f64) + 10.75}));
    assert_eq!(
        v.verify_at(&t, "room1", NOW),
        Ok(Grant {
            sub: None,
            expires_at: NOW + 10
        })
    );
    // verify() uses the system clock: a fresh token passes.
    let t = mint_hs(&room1(unix_now() + 300));
    assert!(v.verify(&t, "room1").is_ok());
}

#[test]
fn expired_and_leeway_boundaries() {
    let v = hs256(); // leeway 5
    assert_eq!(v.verify_at(FIXED_EXPIRED, "room1", NOW), Err(JwtError::Expired));
    assert_eq!(v.verify_at(FIXED_OK, "room1", FAR + 5), Err(JwtError::Expired));
    assert!(v.verify_at(FIXED_OK, "room1", FAR + 4).is_ok(), "inside the leeway");
    let t = mint_hs(&room1(NOW - 3));
    assert!(v.verify_at(&t, "room1", NOW).is_ok(), "3 s late, leeway 5");
    let t = mint_hs(&room1(NOW - 5));
    assert_eq!(v.verify_at(&t, "room1", NOW), Err(JwtError::Expired));
    let strict = JwtVerifier::new(&JwtConfig {
        secret: SECRET.to_string(),
        leeway_secs: 0,
        ..JwtConfig::default()
    })
    .expect("config");
    assert_eq!(
        strict.verify_at(&mint_hs(&room1(NOW)), "room1", NOW),
        Err(JwtError::Expired)
    );
    assert!(strict.verify_at(&mint_hs(&room1(NOW + 1)), "room1", NOW).is_ok());
}

#[test]
fn not_yet_valid_and_leeway_boundaries() {
    let v = hs256();
    assert_eq!(v.verify_at(FIXED_NBF, "room1", NOW), Err(JwtError::NotYetValid));
    assert_eq!(
        v.verify_at(FIXED_NBF, "room1", 4_102_440_000 - 6),
        Err(JwtError::NotYetValid)
    );
    assert!(
        v.verify_at(FIXED_NBF, "room1", 4_102_440_000 - 5).is_ok(),
        "inside the leeway"
    );
    let t = mint_hs(&json!({"cname": "room1", "exp": NOW + 60, "nbf": NOW + 4}));
    assert!(v.verify_at(&t, "room1", NOW).is_ok());
    let t = mint_hs(&json!({"cname": "room1", "exp": NOW + 60, "nbf": NOW + 6}));
    assert_eq!(v.verify_at(&t, "room1", NOW), Err(JwtError::NotYetValid));
}

#[test]
fn missing_exp_is_malformed() {
    let t = mint_hs(&json!({"cname": "room1"}));
    assert_eq!(
        hs256().verify_at(&t, "room1", NOW),
        Err(JwtError::Malformed("no exp claim"))
    );
}

#[test]
fn channel_claims() {
    let v = hs256();
    assert_eq!(v.verify_at(FIXED_OK, "room2", NOW), Err(JwtError::ChannelNotAllowed));
    assert_eq!(v.verify_at(FIXED_OK, "room", NOW), Err(JwtError::ChannelNotAllowed));
    assert_eq!(v.verify_at(FIXED_OK, "room1x", NOW), Err(JwtError::ChannelNotAllowed));
    assert_eq!(
        v.verify_at(FIXED_NO_CHANNEL, "room1", NOW),
        Err(JwtError::ChannelNotAllowed)
    );
    let t = mint_hs(&json!({"channels": ["news", "chat.*", "user.7*"], "exp": NOW + 60}));
    for ok in ["news", "chat.1", "chat.", "chat.a.b", "user.7", "user.77", "user.7/x"] {
        assert!(v.verify_at(&t, ok, NOW).is_ok(), "{ok} is granted");
    }
    for refused in [
        "new", "newsroom", "chat", "chatroom", "chat-1", "user.", "user.8", "NEWS", "",
    ] {
        assert_eq!(
            v.verify_at(&t, refused, NOW),
            Err(JwtError::ChannelNotAllowed),
            "{refused} is not granted"
        );
    }
    let all = mint_hs(&json!({"channels": ["*"], "exp": NOW + 60}));
    assert!(v.verify_at(&all, "anything", NOW).is_ok());
    let empty = mint_hs(&json!({"channels": [], "exp": NOW + 60}));
    assert_eq!(v.verify_at(&empty, "room1", NOW), Err(JwtError::ChannelNotAllowed));
    // Either claim is enough.
    let both = mint_hs(&json!({"channels": ["a"], "cname": "b", "exp": NOW + 60}));
    assert!(v.verify_at(&both, "a", NOW).is_ok());
    assert!(v.verify_at(&both, "b", NOW).is_ok());
    assert_eq!(v.verify_at(&both, "c", NOW), Err(JwtError::ChannelNotAllowed));
}

#[test]
fn prefix_rule_exactly() {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(channel_allowed(Some(&list(&["chat.*"])), None, "chat.x"));
    assert!(!channel_allowed(Some(&list(&["chat.*"])), None, "chatroom"));
    assert!(!channel_allowed(Some(&list(&["chat.*"])), None, "chat"));
    assert!(channel_allowed(Some(&list(&["chat*"])), None, "chatroom"));
    assert!(channel_allowed(Some(&list(&["chat*"])), None, "chat"));
    // Only a final star is special.
    assert!(channel_allowed(Some(&list(&["a*b"])), None, "a*b"));
    assert!(!channel_allowed(Some(&list(&["a*b"])), None, "axb"));
    // A name that itself ends in a star is covered by its own prefix.
    assert!(channel_allowed(Some(&list(&["x*"])), None, "x*"));
    // Multi-byte names compare by bytes.
    assert!(channel_allowed(Some(&list(&["é*"])), None, "été"));
    assert!(!channel_allowed(None, None, "x"));
    assert!(channel_allowed(None, Some("x"), "x"));
    assert!(
        !channel_allowed(None, Some("x*"), "xy"),
        "cname is exact, never a prefix"
    );
}

#[test]
fn wrong_signature() {
    let v = hs256();
    assert_eq!(
        v.verify_at(FIXED_OTHER_SECRET, "room1", NOW),
        Err(JwtError::BadSignature)
    );
    // One signature character changed.
    let mut t = FIXED_OK.as_bytes().to_vec();
    let i = t.len() - 10;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    let t = String::from_utf8(t).expect("ASCII");
    assert_eq!(v.verify_at(&t, "room1", NOW), Err(JwtError::BadSignature));
    // Claims changed under the old signature.
    let forged = FIXED_OK.replace("eyJzdWIiOiJ1c2VyNDIi", "eyJzdWIiOiJ1c2VyNDMi");
    assert_ne!(forged, FIXED_OK);
    assert_eq!(v.verify_at(&forged, "room1", NOW), Err(JwtError::BadSignature));
    // An empty signature.
    let (head, _) = FIXED_OK.rsplit_once('.').expect("three parts");
    assert_eq!(
        v.verify_at(&format!("{head}."), "room1", NOW),
        Err(JwtError::BadSignature)
    );
    // A garbled signature refuses before the claims are even read.
    let t = format!("{head}.!!!");
    assert!(matches!(v.verify_at(&t, "room1", NOW), Err(JwtError::Malformed(_))));
}

#[test]
fn wrong_algorithm_and_none() {
    let v = hs256();
    assert_eq!(v.verify_at(FIXED_NONE, "room1", NOW), Err(JwtError::WrongAlgorithm));
    assert_eq!(v.verify_at(FIXED_HS512, "room1", NOW), Err(JwtError::WrongAlgorithm));
    assert_eq!(
        v.verify_at(FIXED_CONFUSED_RS, "room1", NOW),
        Err(JwtError::WrongAlgorithm)
    );
    // `none` with a signature part, and in other spellings.
    for alg in ["none", "None", "NONE", "", "HS1024"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
        let t = format!("{header}.eyJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln");
        assert_eq!(
            v.verify_at(&t, "room1", NOW),
            Err(JwtError::WrongAlgorithm),
            "alg {alg:?}"
        );
    }
    // Tokens properly signed with RS256/ES256 keys are refused by an HS256 verifier.
    let rs = mint_pem(Algorithm::RS256, "rs256-private.pem", &room1(NOW + 60));
    assert_eq!(v.verify_at(&rs, "room1", NOW), Err(JwtError::WrongAlgorithm));
    let es = mint_pem(Algorithm::ES256, "es256-private.pem", &room1(NOW + 60));
    assert_eq!(v.verify_at(&es, "room1", NOW), Err(JwtError::WrongAlgorithm));
    // An RS256 verifier refuses the HS256 token keyed with its own public key.
    let r = with_key(JwtAlgorithm::RS256, "rs256-public.pem");
    assert_eq!(
        r.verify_at(FIXED_CONFUSED_HS, "room1", NOW),
        Err(JwtError::WrongAlgorithm)
    );
    assert_eq!(
        r.verify_at(FIXED_CONFUSED_RS, "room1", NOW),
        Err(JwtError::BadSignature)
    );
    assert_eq!(r.verify_at(FIXED_NONE, "room1", NOW), Err(JwtError::WrongAlgorithm));
    assert_eq!(r.verify_at(&es, "room1", NOW), Err(JwtError::WrongAlgorithm));
}

#[test]
fn malformed_tokens() {
    let v = hs256();
    let cases: &[(&str, &str)] = &[
        ("", "not three dot-separated parts"),
        ("abc", "not three dot-separated parts"),
        ("a.b", "not three dot-separated parts"),
        ("a.b.c.d", "not three dot-separated parts"),
        ("..", "bad JSON or a claim of the wrong type"),
        ("!!!.e30.c2ln", "bad base64url"),
        // Header `{` (base64url "ew"): not JSON.
        ("ew.e30.c2ln", "bad JSON or a claim of the wrong type"),
        // Header `[]`.
        ("W10.e30.c2ln", "bad JSON or a claim of the wrong type"),
        (FIXED_SIGNED_BAD_JSON, "bad JSON or a claim of the wrong type"),
    ];
    for (token, why) in cases {
        assert_eq!(
            v.verify_at(token, "room1", NOW),
            Err(JwtError::Malformed(why)),
            "{token:?}"
        );
    }
    // Validly signed, claims of the wrong type.
    for claims in [
        json!({"cname": "room1", "exp": "tomorrow"}),
        json!({"channels": "room1", "exp": NOW + 60}),
        json!({"channels": ["room1", 7], "exp": NOW + 60}),
        json!({"cname": 1, "exp": NOW + 60}),
        json!({"sub": 42, "cname": "room1", "exp": NOW + 60}),
        json!(["room1"]),
    ] {
        assert!(
            matches!(
                v.verify_at(&mint_hs(&claims), "room1", NOW),
                Err(JwtError::Malformed(_))
            ),
            "{claims}"
        );
    }
    let long = format!("{FIXED_OK}{}", "A".repeat(MAX_TOKEN_BYTES));
    assert_eq!(
        v.verify_at(&long, "room1", NOW),
        Err(JwtError::Malformed("longer than 8192 bytes"))
    );
    // Every message is one line and every reason is listed.
    for e in [
        JwtError::Malformed("x"),
        JwtError::WrongAlgorithm,
        JwtError::ChannelNotAllowed,
    ] {
        assert!(!e.to_string().contains('\n'));
        assert!(JwtError::REASONS.contains(&e.reason()));
    }
}

#[test]
fn audience_and_issuer() {
    let v = JwtVerifier::new(&JwtConfig {
        secret: SECRET.to_string(),
        audience: "comet".to_string(),
        issuer: "https://app.example".to_string(),
        ..JwtConfig::default()
    })
    .expect("config");
    let base = |extra: Value| {
        let mut c = json!({"cname": "room1", "exp": NOW + 60});
        for (k, x) in extra.as_object().expect("object") {
            c[k] = x.clone();
        }
        mint_hs(&c)
    };
    let ok = json!({"aud": "comet", "iss": "https://app.example"});
    assert!(v.verify_at(&base(ok), "room1", NOW).is_ok());
    let many = json!({"aud": ["x", "comet"], "iss": "https://app.example"});
    assert!(v.verify_at(&base(many), "room1", NOW).is_ok());
    let no_aud = json!({"iss": "https://app.example"});
    assert_eq!(v.verify_at(&base(no_aud), "room1", NOW), Err(JwtError::WrongAudience));
    let other_aud = json!({"aud": ["x"], "iss": "https://app.example"});
    assert_eq!(
        v.verify_at(&base(other_aud), "room1", NOW),
        Err(JwtError::WrongAudience)
    );
    let other_iss = json!({"aud": "comet", "iss": "https://evil.example"});
    assert_eq!(v.verify_at(&base(other_iss), "room1", NOW), Err(JwtError::WrongIssuer));
    assert_eq!(
        v.verify_at(&base(json!({"aud": "comet"})), "room1", NOW),
        Err(JwtError::WrongIssuer)
    );
    // Unset, neither is looked at.
    assert!(hs256().verify_at(&base(json!({"aud": "other"})), "room1", NOW).is_ok());
}

#[test]
fn rs256_and_es256_with_key_files() {
    let r = with_key(JwtAlgorithm::RS256, "rs256-public.pem");
    let t = mint_pem(Algorithm::RS256, "rs256-private.pem", &room1(NOW + 60));
    assert_eq!(r.verify_at(&t, "room1", NOW).map(|g| g.sub), Ok(Some("user42".into())));
    assert_eq!(r.verify_at(&t, "room2", NOW), Err(JwtError::ChannelNotAllowed));
    assert_eq!(r.verify_at(&t, "room1", NOW + 65), Err(JwtError::Expired));

    let e = with_key(JwtAlgorithm::ES256, "es256-public.pem");
    let t = mint_pem(Algorithm::ES256, "es256-private.pem", &room1(NOW + 60));
    assert_eq!(e.verify_at(&t, "room1", NOW).map(|g| g.expires_at), Ok(NOW + 60));
    let other = mint_pem(Algorithm::ES256, "es256-other-private.pem", &room1(NOW + 60));
    assert_eq!(e.verify_at(&other, "room1", NOW), Err(JwtError::BadSignature));
    let rs = mint_pem(Algorithm::RS256, "rs256-private.pem", &room1(NOW + 60));
    assert_eq!(e.verify_at(&rs, "room1", NOW), Err(JwtError::WrongAlgorithm));
    assert_eq!(
        e.verify_at(&mint_hs(&room1(NOW + 60)), "room1", NOW),
        Err(JwtError::WrongAlgorithm)
    );
}

#[test]
fn setup_errors_name_the_key() {
    let err = |c: JwtConfig| JwtVerifier::new(&c).expect_err("refused").to_string();
    assert_eq!(
        err(JwtConfig::default()),
        "front.jwt.secret must not be empty when front.jwt.algorithm is HS256"
    );
    assert_eq!(
        err(JwtConfig {
            secret: "short".into(),
            ..JwtConfig::default()
        }),
        "front.jwt.secret must be at least 32 bytes for HS256 (RFC 7518 3.2; got 5)"
    );
    assert_eq!(
        err(JwtConfig {
            algorithm: JwtAlgorithm::ES256,
            ..JwtConfig::default()
        }),
        "front.jwt.public_key_file must not be empty when front.jwt.algorithm is ES256"
    );
    assert_eq!(
        err(JwtConfig {
            algorithm: JwtAlgorithm::RS256,
            secret: SECRET.into(),
            public_key_file: "k.pem".into(),
            ..JwtConfig::default()
        }),
        "front.jwt.secret must be empty when front.jwt.algorithm is RS256 (it uses front.jwt.public_key_file)"
    );
    assert_eq!(
        err(JwtConfig {
            secret: SECRET.into(),
            public_key_file: "k.pem".into(),
            ..JwtConfig::default()
        }),
        "front.jwt.public_key_file must be empty when front.jwt.algorithm is HS256 (it uses front.jwt.secret)"
    );
    assert_eq!(
        err(JwtConfig {
            secret: SECRET.into(),
            leeway_secs: 301,
            ..JwtConfig::default()
        }),
        "front.jwt.leeway_secs must be at most 300 (got 301)"
    );
    let missing = data("absent.pem").to_string_lossy().into_owned();
    let m = err(JwtConfig {
        algorithm: JwtAlgorithm::ES256,
        public_key_file: missing.clone(),
        ..JwtConfig::default()
    });
    assert!(
        m.starts_with(&format!("front.jwt.public_key_file: cannot read {missing}: ")),
        "{m}"
    );
    // The wrong kind of key for the algorithm, and a private key.
    for (alg, file) in [
        (JwtAlgorithm::ES256, "rs256-public.pem"),
        (JwtAlgorithm::RS256, "es256-public.pem"),
        (JwtAlgorithm::ES256, "es256-private.pem"),
    ] {
        let m = err(JwtConfig {
            algorithm: alg,
            public_key_file: data(file).to_string_lossy().into_owned(),
            ..JwtConfig::default()
        });
        let want = format!(
            "front.jwt.public_key_file: {} is not a {} public key in PEM form (",
            data(file).display(),
            alg.name()
        );
        assert!(m.starts_with(&want), "{m}");
    }
}

#[test]
fn config_parses_from_yaml_with_defaults() {
    let c: JwtConfig = serde_norway::from_str("algorithm: ES256\npublic_key_file: /k.pem\n").expect("yaml");
    assert_eq!(c.algorithm, JwtAlgorithm::ES256);
    assert_eq!(c.leeway_secs, 5);
    assert_eq!(c.validate().map_err(|e| e.to_string()), Ok(()));
    let e = serde_norway::from_str::<JwtConfig>("algorithm: none\n").expect_err("unknown algorithm");
    assert!(e.to_string().contains("unknown variant `none`"), "{e}");
    let e = serde_norway::from_str::<JwtConfig>("leeway: 5\n").expect_err("unknown key");
    assert!(e.to_string().contains("unknown field `leeway`"), "{e}");
}

#[test]
fn cache_skips_the_signature_but_not_the_clock() {
    let v = hs256();
    let t = mint_hs(&json!({"sub": "u", "cname": "room1", "exp": NOW + 60, "nbf": NOW - 10}));
    assert!(v.verify_at(&t, "room1", NOW).is_ok());
    assert_eq!(v.cache_hits(), 0);
    assert_eq!(v.verify_at(&t, "room1", NOW + 1).map(|g| g.sub), Ok(Some("u".into())));
    assert_eq!(v.cache_hits(), 1);
    // Another channel is another key, and is refused on its own merits.
    assert_eq!(v.verify_at(&t, "room2", NOW), Err(JwtError::ChannelNotAllowed));
    assert_eq!(v.cache_hits(), 1);
    // From the cache, time still runs out, and nbf still holds.
    assert_eq!(v.verify_at(&t, "room1", NOW + 65), Err(JwtError::Expired));
    assert_eq!(v.verify_at(&t, "room1", NOW - 20), Err(JwtError::NotYetValid));
    assert_eq!(v.cache_hits(), 3);
    // Refusals are not remembered.
    for _ in 0..3 {
        assert_eq!(
            v.verify_at(FIXED_OTHER_SECRET, "room1", NOW),
            Err(JwtError::BadSignature)
        );
    }
    assert_eq!(v.cache_hits(), 3);
    // With the cache off nothing is remembered.
    let off = JwtVerifier::new(&JwtConfig {
        secret: SECRET.to_string(),
        cache_max: 0,
        ..JwtConfig::default()
    })
    .expect("config");
    for _ in 0..3 {
        assert!(off.verify_at(&t, "room1", NOW).is_ok());
    }
    assert_eq!(off.cache_hits(), 0);
    // A cached pair keeps working for ES256 too.
    let e = with_key(JwtAlgorithm::ES256, "es256-public.pem");
    let es = mint_pem(Algorithm::ES256, "es256-private.pem", &room1(NOW + 60));
    for _ in 0..3 {
        assert!(e.verify_at(&es, "room1", NOW).is_ok());
    }
    assert_eq!(e.cache_hits(), 2);
}

/// Verification cost per token, release build:
/// `cargo test --release --lib auth::tests::bench_verify -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run by hand in release"]
fn bench_verify() {
    let now = unix_now();
    let claims = json!({"sub": "user42", "channels": ["chat.*"], "exp": now + 3600});
    let config = |algorithm, cache_max| {
        let public = match algorithm {
            JwtAlgorithm::HS256 => String::new(),
            JwtAlgorithm::RS256 => data("rs256-public.pem").to_string_lossy().into_owned(),
            JwtAlgorithm::ES256 => data("es256-public.pem").to_string_lossy().into_owned(),
        };
        JwtVerifier::new(&JwtConfig {
            algorithm,
            secret: if public.is_empty() {
                SECRET.to_string()
            } else {
                String::new()
            },
            public_key_file: public,
            cache_max,
            ..JwtConfig::default()
        })
        .expect("config")
    };
    let tokens = [
        (JwtAlgorithm::HS256, mint_hs(&claims)),
        (
            JwtAlgorithm::ES256,
            mint_pem(Algorithm::ES256, "es256-private.pem", &claims),
        ),
        (
            JwtAlgorithm::RS256,
            mint_pem(Algorithm::RS256, "rs256-private.pem", &claims),
        ),
    ];
    let time = |v: &JwtVerifier, token: &str, n: u32| {
        for _ in 0..n / 10 {
            assert!(v.verify_at(token, "chat.1", now).is_ok());
        }
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(v.verify_at(std::hint::black_box(token), "chat.1", now).is_ok());
        }
        start.elapsed().as_nanos() / u128::from(n)
    };
    for (alg, token) in &tokens {
        let n = if *alg == JwtAlgorithm::HS256 { 200_000 } else { 5_000 };
        let uncached = time(&config(*alg, 0), token, n);
        let cached = time(&config(*alg, 10_000), token, 200_000);
        println!(
            "{}: {uncached} ns/op verified ({n} runs), {cached} ns/op from the cache (token {} bytes)",
            alg.name(),
            token.len()
        );
    }
    let v = config(JwtAlgorithm::HS256, 0);
    let start = std::time::Instant::now();
    for _ in 0..100_000 {
        assert!(v
            .verify_at(std::hint::black_box(FIXED_OTHER_SECRET), "room1", NOW)
            .is_err());
    }
    println!(
        "HS256 refused (bad signature): {} ns/op",
        start.elapsed().as_nanos() / 100_000
    );
}
