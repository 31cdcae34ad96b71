//! Configuration checks beyond the unit tests in `src/config.rs`: each missing or unusable
//! value is named in the error, development mode only kicks in when nothing is configured,
//! and the `HERALD_*` environment layer (exercised through the binary, so this process's
//! environment is never mutated) overrides the file and is checked for unknown keys too.

// A test crate: panicking on an unexpected `Err` is how a test (or its helpers) fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use herald::{Config, config::ConfigError};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const KEYS: &str = "[private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"\n";

/// The error and all its causes, as `anyhow`'s `{:#}` prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn validate(toml: &str, allow_generated: bool) -> Result<Config, ConfigError> {
    let mut cfg = Config::from_toml(toml)?;
    cfg.validate(allow_generated)?;
    Ok(cfg)
}

fn error(toml: &str) -> String {
    validate(toml, false)
        .expect_err("the config should be refused")
        .to_string()
}

#[test]
fn unknown_keys_in_any_section_are_errors() {
    for toml in [
        "[auth.jwt]\nalgoritm = \"HS256\"",
        "[engine]\nping_intervall = \"1s\"",
        "[publish]\nmax_target = 3",
        "[metrics]\nenabled = true",
    ] {
        let err = chain(&Config::from_toml(toml).expect_err(toml));
        let key = if toml.starts_with("[metrics]") {
            "metrics"
        } else {
            toml.lines()
                .last()
                .and_then(|l| l.split([' ', '=']).next())
                .expect("key")
        };
        assert!(err.contains(key), "{toml}: {err}");
    }
}

#[test]
fn each_missing_value_is_named() {
    assert_eq!(
        error("[auth.jwt]\nsecret = \"s3cret-s3cret\""),
        "missing configuration value `private.key`"
    );
    assert_eq!(
        error("[private]\nkey = \"0123456789\"\n[auth.jwt]\nalgorithm = \"RS256\""),
        "missing configuration value `auth.jwt.public_key_file`"
    );
    assert_eq!(
        error("[private]\nkey = \"0123456789\"\n[auth]\nmode = \"backend\""),
        "missing configuration value `auth.backend_url`"
    );
}

#[test]
fn unusable_values_are_named() {
    let cases = [
        (
            "[private]\nkey = \"short\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"",
            "private.key",
        ),
        (
            "[private]\nkey = \"0123456789\"\n[auth]\nmode = \"backend\"\nbackend_url = \"ftp://x\"",
            "auth.backend_url",
        ),
        (
            &format!("{KEYS}[public]\npath = \"/private\""),
            "private.path",
        ),
        (&format!("{KEYS}[public]\npath = \"/\""), "public.path"),
        (
            &format!("{KEYS}[engine]\nmax_payload_bytes = 0"),
            "engine.max_payload_bytes",
        ),
        (
            &format!("{KEYS}[publish]\nmax_body_bytes = 0"),
            "publish.max_body_bytes",
        ),
        (&format!("{KEYS}[public]\npath = \"/a b\""), "public.path"),
        (
            &format!("{KEYS}[coalesce]\ndelay = \"5s\"\nmax_delay = \"1s\""),
            "coalesce.max_delay",
        ),
        (&format!("{KEYS}[history]\nsize = 0"), "history.size"),
        (&format!("{KEYS}[history]\nttl = \"0s\""), "history.ttl"),
        (
            &format!(
                "{KEYS}[history]\nttl = \"1m\"\n[recovery]\nenabled = true\nmax_disconnection = \"2m\""
            ),
            "recovery.max_disconnection",
        ),
    ];
    for (toml, key) in cases {
        let err = error(toml);
        assert!(err.contains(&format!("`{key}`")), "{toml:?}: {err}");
    }
}

#[test]
fn bad_addresses_and_modes_do_not_parse() {
    for toml in [
        "trusted_proxies = [\"localhost\"]",
        "[private]\nauthorized_hosts = [\"10.0.0.0/33\"]",
        "[public]\nhost = \"example.com\"",
        "[auth]\nmode = \"ldap\"",
        "[auth.jwt]\nalgorithm = \"none\"",
        "[auth.jwt]\nleeway = 5",
    ] {
        assert!(Config::from_toml(toml).is_err(), "{toml} parsed");
    }
    let err =
        chain(&Config::from_toml("trusted_proxies = [\"localhost\"]").expect_err("not an address"));
    assert!(err.contains("localhost"), "{err}");
}

#[test]
fn development_mode_needs_an_empty_configuration() {
    // Backend mode is configuration: nothing is generated, the missing key is named.
    let err = validate(
        "[auth]\nmode = \"backend\"\nbackend_url = \"http://127.0.0.1:1/a\"",
        true,
    )
    .expect_err("no key in backend mode")
    .to_string();
    assert_eq!(err, "missing configuration value `private.key`");
    // A public key file is configuration too.
    let err = validate(
        "[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"/nonexistent.pem\"",
        true,
    )
    .expect_err("no key with a public key file")
    .to_string();
    assert_eq!(err, "missing configuration value `private.key`");
    // Generated secrets are fresh each time.
    let a = validate("", true).expect("dev mode");
    let b = validate("", true).expect("dev mode");
    assert_ne!(
        a.private.key.expect("key").expose(),
        b.private.key.expect("key").expose()
    );
}

#[tokio::test]
async fn an_unreadable_or_malformed_key_file_stops_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").expect("write");
    let missing = dir.path().join("missing.pem");
    for file in [&garbage, &missing] {
        let mut cfg = Config::from_toml(&format!(
            "[private]\nkey = \"0123456789\"\n[auth.jwt]\nalgorithm = \"RS256\"\n\
             public_key_file = {:?}",
            file.display().to_string()
        ))
        .expect("parses");
        cfg.validate(false).expect("validates");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let err = herald::run(listener, std::sync::Arc::new(cfg), shutdown)
            .await
            .expect_err("a server without a usable key")
            .to_string();
        assert!(err.starts_with("auth.jwt:"), "{err}");
    }
}

/// Runs `herald <args>` with exactly the environment `env`.
fn herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the herald binary")
}

fn verifies_with(token: &str, secret: &str) -> bool {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .is_ok()
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "[auth.jwt]\nsecret = \"from-the-file\"\n").expect("write");
    let file = file.to_str().expect("UTF-8 path");

    let out = herald(&["--config", file, "token", "--user", "alice"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(verifies_with(token.trim(), "from-the-file"));

    let out = herald(
        &["--config", file, "token", "--user", "alice"],
        &[("HERALD_AUTH__JWT__SECRET", "from-the-env")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        verifies_with(token.trim(), "from-the-env"),
        "the env did not win"
    );
}

#[test]
fn unknown_environment_keys_are_errors() {
    let out = herald(
        &["token", "--user", "alice"],
        &[
            ("HERALD_AUTH__JWT__SECRET", "s3cret-s3cret"),
            ("HERALD_PUBLIC__PROT", "9000"),
        ],
    );
    assert!(!out.status.success(), "an unknown env key was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prot"), "{stderr}");
}

#[test]
fn a_named_config_file_must_exist() {
    let out = herald(
        &[
            "--config",
            "/nonexistent/herald.toml",
            "token",
            "--user",
            "a",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config"), "{stderr}");
}
