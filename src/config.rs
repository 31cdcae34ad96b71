//! Typed configuration, loaded once at startup and shared as `Arc<Config>`.
//!
//! Layers, lowest first: the embedded `config.default.toml`, the `--config` file, `HERALD_*`
//! environment variables (sections joined by `__`), then command-line flags ([`Overrides`]).
//! Unknown keys are errors. [`Config::validate`] turns a loaded config into one the server can
//! trust: paths normalised, secrets present (or generated in development mode), key files read.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

mod cells;
mod chat;
mod limits;
mod net;
mod secret;
mod validate;

pub use cells::CellsConfig;
pub use chat::ChatConfig;
pub use limits::{LimitsConfig, ShutdownConfig};

pub use net::{IpRange, any_contains};
pub use secret::Secret;

/// The defaults, embedded so that herald runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

/// Prefix of every environment variable herald reads.
const ENV_PREFIX: &str = "HERALD_";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be parsed or holds an unknown key or a wrong type.
    #[error("invalid configuration")]
    Parse(#[from] Box<figment::Error>),
    /// A required value is missing; names the key.
    #[error("missing configuration value `{0}`")]
    Missing(&'static str),
    /// A value is present but unusable; names the key.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Dotted key path.
        key: &'static str,
        /// What is wrong, without echoing secrets.
        reason: String,
    },
}

/// Root of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the Engine.IO endpoint (socket.io-client's `path` option).
    pub engine_path: String,
    /// Serve `GET /status` without the private key.
    pub status_public: bool,
    /// Hard bound on a graceful shutdown (drain included).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How a node leaves: sockets disconnected gradually.
    pub shutdown: ShutdownConfig,
    /// Admission control and per-client limits.
    pub limits: LimitsConfig,
    /// Peers whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpRange>,
    /// Browser origins allowed on the Engine.IO path (empty: any, without CORS headers).
    pub allowed_origins: Vec<String>,
    /// The browser side and the listener.
    pub public: PublicConfig,
    /// The backend side.
    pub private: PrivateConfig,
    /// How browsers are authenticated.
    pub auth: AuthConfig,
    /// Engine.IO transport settings.
    pub engine: EngineConfig,
    /// Publishing limits.
    pub publish: PublishConfig,
    /// Merging of keyed events.
    pub coalesce: CoalesceConfig,
    /// The per-room event log.
    pub history: HistoryConfig,
    /// Socket.IO connection state recovery.
    pub recovery: RecoveryConfig,
    /// Several nodes joined by Redis.
    pub cluster: ClusterConfig,
    /// Chat rooms on their own namespace.
    pub chat: ChatConfig,
    /// The Pydio Cells door.
    pub cells: CellsConfig,
    /// Native TLS on the listener.
    pub tls: TlsConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[public]`: the listener and the browsers' namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (logged at startup).
    pub port: u16,
    /// Namespace browsers connect to.
    pub path: String,
}

/// `[private]`: the backends' namespace and what admits them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateConfig {
    /// Namespace backends connect to.
    pub path: String,
    /// Shared secret of the backends. Required outside development mode.
    pub key: Option<Secret>,
    /// Peers allowed to publish.
    pub authorized_hosts: Vec<IpRange>,
}

/// `[auth]`: browser authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Local JWT verification or a call to the backend.
    pub mode: AuthMode,
    /// Backend mode: the validation URL.
    pub backend_url: Option<String>,
    /// Backend mode: lifetime of a cached positive answer.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Backend mode: how long to wait for an answer.
    #[serde(with = "humantime_serde")]
    pub backend_timeout: Duration,
    /// Backend mode: bound on cached answers.
    pub cache_capacity: u64,
    /// JWT mode settings.
    pub jwt: JwtConfig,
}

/// How browser credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Verify a JWT locally.
    Jwt,
    /// Forward the credentials to `auth.backend_url`.
    Backend,
}

/// `[auth.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted algorithm: exactly one, so that no token can pick another.
    pub algorithm: JwtAlgorithm,
    /// HS*: the shared secret.
    pub secret: Option<Secret>,
    /// RS256/ES256: PEM file with the public key.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Tolerated clock skew on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// How long before a token's `exp` its socket gets `token_expiring`.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
}

/// The JWT algorithms herald accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[allow(missing_docs)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
}

impl JwtAlgorithm {
    /// Whether the algorithm uses a shared secret (HMAC) rather than a public key.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// `[engine]`: Engine.IO transport settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Heartbeat interval.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long a missing pong is tolerated.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Largest Engine.IO message, polling and WebSocket alike.
    pub max_payload_bytes: u64,
    /// Outgoing packets queued per socket; when full, emits to that socket are dropped.
    pub max_buffer_size: usize,
    /// Initial read buffer of each WebSocket (tungstenite's `read_buffer_size`); it grows for
    /// a larger message. Browsers send small frames (`register`, pongs), so a small buffer
    /// saves memory on every idle connection.
    pub ws_read_buffer_bytes: usize,
}

/// `[publish]`: publishing limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Largest `POST /api/v1/publish` body.
    pub max_body_bytes: usize,
    /// Most target rooms in one publish.
    pub max_targets: usize,
}

/// `[coalesce]`: merging of events that carry a `coalesce_key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoalesceConfig {
    /// Quiet time after the latest merged event before the delivery.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Longest a delivery may wait after the first merged event.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Most distinct (targets, event, key) held at once; beyond, events go out unmerged.
    pub max_pending: usize,
}

/// `[history]`: the per-room event log that `since` replays from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events kept per room.
    pub size: usize,
    /// How long an event is kept.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

/// `[recovery]`: Socket.IO connection state recovery for socket.io-client >= 4.6.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Whether CONNECT answers carry a `pid` and events a string offset as their last argument.
    pub enabled: bool,
    /// How long a dropped socket's session may be recovered.
    #[serde(with = "humantime_serde")]
    pub max_disconnection: Duration,
}

/// `[cluster]`: several herald nodes sharing events, offsets and epochs through Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port/db`; on a Redis Cluster, its seed nodes' URLs separated by commas;
    /// unset: a single herald node.
    pub redis_url: Option<Secret>,
    /// What `redis_url` points to.
    pub redis_mode: RedisMode,
    /// Prefix of every Redis key herald writes (one cluster per prefix).
    pub prefix: String,
    /// Events kept in the stream every node reads; a node that falls further behind (a long
    /// Redis outage for it alone) loses events and says so.
    pub bus_size: usize,
    /// The `key` of backends' npm `@socket.io/redis-emitter` whose publishes herald takes in;
    /// empty: none.
    pub emitter_key: String,
}

/// What kind of Redis `cluster.redis_url` points to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One Redis server (or a failover pair behind one address).
    #[default]
    Standalone,
    /// A Redis Cluster: herald's keys share one hash slot, `{prefix}`.
    Cluster,
}

/// `[tls]`: `https` and `wss` served by herald itself, without a proxy. Both files or neither.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Fallback filter when `RUST_LOG` is unset.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Values given on the command line: the top layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    /// `--port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    fn into_figment(self) -> Figment {
        let mut figment = Figment::new();
        if let Some(host) = self.host {
            figment = figment.merge(Serialized::default("public.host", host));
        }
        if let Some(port) = self.port {
            figment = figment.merge(Serialized::default("public.port", port));
        }
        if let Some(format) = self.log_format {
            figment = figment.merge(Serialized::default("log.format", format));
        }
        figment
    }
}

/// Secrets that were generated because none was configured (development mode).
#[derive(Debug, Default)]
pub struct GeneratedSecrets {
    /// The generated `private.key`, if any.
    pub private_key: Option<Secret>,
    /// The generated `auth.jwt.secret`, if any.
    pub jwt_secret: Option<Secret>,
}

impl GeneratedSecrets {
    /// Whether herald runs on generated secrets.
    pub fn any(&self) -> bool {
        self.private_key.is_some() || self.jwt_secret.is_some()
    }
}

impl Config {
    /// Loads the layers: defaults < `file` < `HERALD_*` env < `overrides`.
    ///
    /// # Errors
    /// A layer that does not parse, an unknown key or a wrong type.
    pub fn load(file: Option<&std::path::Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            // `Toml::file` silently skips a missing file; a named file must exist.
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: "--config",
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment
            // HERALD_CONFIG names the file and HERALD_DOCTOR_TOKEN is `herald doctor`'s token:
            // command-line inputs, not configuration keys.
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .split("__")
                    .ignore(&["config", "doctor_token"]),
            )
            .merge(overrides.into_figment());
        figment
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    /// Parses a complete TOML document over the defaults, with no environment: for tests and
    /// embedding.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_toml(toml: &str) -> Result<Self, ConfigError> {
        Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_need_secrets() {
        let mut cfg = Config::from_toml("").unwrap();
        assert_eq!(cfg.public.port, 8090);
        assert_eq!(cfg.public.path, "/public");
        assert!(matches!(
            cfg.validate(false),
            Err(ConfigError::Missing("private.key"))
        ));
    }

    #[test]
    fn development_mode_generates_both_secrets() {
        let mut cfg = Config::from_toml("").unwrap();
        let generated = cfg.validate(true).unwrap();
        assert!(generated.private_key.is_some() && generated.jwt_secret.is_some());
        assert_ne!(
            cfg.private.key.unwrap().expose(),
            cfg.auth.jwt.secret.unwrap().expose()
        );
    }

    #[test]
    fn a_partial_config_names_the_missing_secret() {
        let mut cfg = Config::from_toml("[private]\nkey = \"0123456789\"").unwrap();
        let err = cfg.validate(true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing configuration value `auth.jwt.secret`"
        );
    }

    #[test]
    fn the_chat_namespace_must_be_its_own() {
        let base = "[private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"\n";
        let mut cfg =
            Config::from_toml(&format!("{base}[chat]\nenabled = true\npath = \"public\"")).unwrap();
        let err = cfg.validate(false).unwrap_err();
        assert!(err.to_string().contains("chat.path"), "{err}");
        let mut cfg =
            Config::from_toml(&format!("{base}[chat]\nenabled = true\nhistory_page = 500"))
                .unwrap();
        let err = cfg.validate(false).unwrap_err();
        assert!(err.to_string().contains("chat.history_page"), "{err}");
        let mut cfg = Config::from_toml(&format!("{base}[chat]\nenabled = true")).unwrap();
        cfg.validate(false).unwrap();
        assert_eq!(
            (cfg.chat.path.as_str(), cfg.chat.history_page),
            ("/chat", 50)
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_toml("[private]\nkye = \"x\"").unwrap_err();
        let ConfigError::Parse(inner) = err else {
            panic!("expected a parse error");
        };
        assert!(inner.to_string().contains("kye"), "{inner}");
        assert!(Config::from_toml("colour = 1").is_err());
    }

    #[test]
    fn paths_are_normalised() {
        let mut cfg = Config::from_toml(
            "engine_path = \"socket.io/appsuite/\"\n[public]\npath = \"browsers\"\n\
             [private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"",
        )
        .unwrap();
        cfg.validate(false).unwrap();
        assert_eq!(cfg.engine_path, "/socket.io/appsuite");
        assert_eq!(cfg.public.path, "/browsers");
    }

    #[test]
    fn origins_are_checked() {
        let base = "[private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"\n";
        let mut cfg = Config::from_toml(&format!(
            "allowed_origins = [\"https://a.example/\"]\n{base}"
        ))
        .unwrap();
        cfg.validate(false).unwrap();
        assert_eq!(cfg.allowed_origins, ["https://a.example"]);
        let mut bad =
            Config::from_toml(&format!("allowed_origins = [\"a.example/path\"]\n{base}")).unwrap();
        assert!(bad.validate(false).is_err());
    }

    #[test]
    fn tls_takes_both_files_or_neither() {
        let base = "[private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"\n";
        let mut off = Config::from_toml(base).unwrap();
        off.validate(false).unwrap();
        assert!(off.tls.files().is_none());
        let mut on =
            Config::from_toml(&format!("{base}[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"")).unwrap();
        on.validate(false).unwrap();
        assert!(on.tls.files().is_some());
        for half in ["cert = \"c.pem\"", "key = \"k.pem\""] {
            let mut cfg = Config::from_toml(&format!("{base}[tls]\n{half}")).unwrap();
            let error = cfg.validate(false).unwrap_err();
            assert!(error.to_string().contains("tls."), "{error}");
        }
    }

    #[test]
    fn redis_mode_is_standalone_or_cluster() {
        let cfg = Config::from_toml("").unwrap();
        assert_eq!(cfg.cluster.redis_mode, RedisMode::Standalone);
        let cfg = Config::from_toml("[cluster]\nredis_mode = \"cluster\"").unwrap();
        assert_eq!(cfg.cluster.redis_mode, RedisMode::Cluster);
        let err = Config::from_toml("[cluster]\nredis_mode = \"sentinel\"").unwrap_err();
        let ConfigError::Parse(inner) = err else {
            panic!("expected a parse error");
        };
        assert!(inner.to_string().contains("sentinel"), "{inner}");
    }

    #[test]
    fn durations_need_units() {
        assert!(Config::from_toml("shutdown_timeout = 10").is_err());
        let cfg = Config::from_toml("shutdown_timeout = \"1500ms\"").unwrap();
        assert_eq!(cfg.shutdown_timeout, Duration::from_millis(1500));
    }
}
