//! [`Config::validate`]: from a parsed config to one the server can trust. Paths and origins
//! are normalised, limits checked, and secrets required, or generated in development mode.
//! Every error names the key to fix.

use super::{AuthMode, Config, ConfigError, GeneratedSecrets, Secret};

impl Config {
    /// Checks the values and fills in what development mode generates.
    ///
    /// Secrets are generated only when `allow_generated` is set and no secret at all was
    /// configured; otherwise a missing secret is an error naming its key.
    ///
    /// # Errors
    /// A missing secret or an unusable value, naming its key.
    pub fn validate(&mut self, allow_generated: bool) -> Result<GeneratedSecrets, ConfigError> {
        self.engine_path = normalize_path("engine_path", &self.engine_path)?;
        self.public.path = normalize_path("public.path", &self.public.path)?;
        self.private.path = normalize_path("private.path", &self.private.path)?;
        self.chat.path = normalize_path("chat.path", &self.chat.path)?;
        if self.chat.enabled
            && [self.public.path.as_str(), self.private.path.as_str(), "/"]
                .contains(&self.chat.path.as_str())
        {
            return Err(ConfigError::Invalid {
                key: "chat.path",
                reason: "must differ from public.path, private.path and \"/\"".into(),
            });
        }
        self.cells.event_path = normalize_path("cells.event_path", &self.cells.event_path)?;
        self.cells.chat_path = normalize_path("cells.chat_path", &self.cells.chat_path)?;
        for (key, path) in [
            ("cells.event_path", &self.cells.event_path),
            ("cells.chat_path", &self.cells.chat_path),
        ] {
            if self.cells.enabled
                && (path == "/" || path.starts_with(&self.engine_path) || path.starts_with("/api/"))
            {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be a path outside engine_path and /api/".into(),
                });
            }
        }
        if self.cells.enabled && self.cells.event_path == self.cells.chat_path {
            return Err(ConfigError::Invalid {
                key: "cells.chat_path",
                reason: "must differ from cells.event_path".into(),
            });
        }
        if self.public.path == self.private.path {
            return Err(ConfigError::Invalid {
                key: "private.path",
                reason: "must differ from public.path".into(),
            });
        }
        if self.public.path == "/" || self.private.path == "/" {
            return Err(ConfigError::Invalid {
                key: "public.path",
                reason: "the root namespace \"/\" is reserved".into(),
            });
        }
        for (key, value) in [
            ("engine.max_payload_bytes", self.engine.max_payload_bytes),
            ("publish.max_body_bytes", self.publish.max_body_bytes as u64),
            ("publish.max_targets", self.publish.max_targets as u64),
            ("engine.max_buffer_size", self.engine.max_buffer_size as u64),
            (
                "engine.ws_read_buffer_bytes",
                self.engine.ws_read_buffer_bytes as u64,
            ),
            ("coalesce.max_pending", self.coalesce.max_pending as u64),
            ("history.size", self.history.size as u64),
            ("cluster.bus_size", self.cluster.bus_size as u64),
            ("history.ttl", u64::from(!self.history.ttl.is_zero())),
            ("chat.history_page", self.chat.history_page as u64),
            ("cells.max_frame_bytes", self.cells.max_frame_bytes as u64),
            ("cells.queue", self.cells.queue as u64),
            ("chat.max_history_limit", self.chat.max_history_limit as u64),
            ("chat.max_text", self.chat.max_text as u64),
            ("chat.max_label", self.chat.max_label as u64),
            (
                "chat.max_rooms_per_socket",
                self.chat.max_rooms_per_socket as u64,
            ),
            ("chat.max_room_users", self.chat.max_room_users as u64),
            (
                "chat.presence_timeout",
                u64::from(!self.chat.presence_timeout.is_zero()),
            ),
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "limits.max_handshakes_in_flight",
                self.limits.max_handshakes_in_flight as u64,
            ),
            (
                "limits.max_auth_calls_in_flight",
                self.limits.max_auth_calls_in_flight as u64,
            ),
            (
                "limits.max_sockets_per_user",
                self.limits.max_sockets_per_user as u64,
            ),
            (
                "limits.max_workspaces_per_socket",
                self.limits.max_workspaces_per_socket as u64,
            ),
            (
                "limits.events_per_second",
                u64::from(self.limits.events_per_second),
            ),
            ("limits.events_burst", u64::from(self.limits.events_burst)),
            (
                "limits.rate_limited_disconnect_after",
                u64::from(self.limits.rate_limited_disconnect_after),
            ),
            (
                "limits.handshake_timeout",
                u64::from(!self.limits.handshake_timeout.is_zero()),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be greater than zero".into(),
                });
            }
        }

        if self.chat.history_page > self.chat.max_history_limit {
            return Err(ConfigError::Invalid {
                key: "chat.history_page",
                reason: "must not exceed chat.max_history_limit".into(),
            });
        }
        if self.coalesce.max_delay < self.coalesce.delay {
            return Err(ConfigError::Invalid {
                key: "coalesce.max_delay",
                reason: "must not be shorter than coalesce.delay".into(),
            });
        }
        if self.cluster.prefix.is_empty()
            || !self
                .cluster
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::Invalid {
                key: "cluster.prefix",
                reason: "must be letters, digits, '-', '_' or '.'".into(),
            });
        }
        if self.recovery.enabled && self.recovery.max_disconnection > self.history.ttl {
            // A session is recovered from the event log: it must outlive no event it needs.
            return Err(ConfigError::Invalid {
                key: "recovery.max_disconnection",
                reason: "must not be longer than history.ttl".into(),
            });
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "tls.key",
                    reason: "tls.cert is set: the certificate needs its private key".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "tls.cert",
                    reason: "tls.key is set: the private key needs its certificate".into(),
                });
            }
            _ => {}
        }
        for origin in &mut self.allowed_origins {
            *origin = normalize_origin(origin)?;
        }

        let nothing_configured = self.private.key.is_none()
            && self.auth.jwt.secret.is_none()
            && self.auth.jwt.public_key_file.is_none()
            && self.auth.mode == AuthMode::Jwt;
        let mut generated = GeneratedSecrets::default();
        if allow_generated && nothing_configured {
            let key = Secret::generate();
            let secret = Secret::generate();
            self.private.key = Some(key.clone());
            self.auth.jwt.secret = Some(secret.clone());
            generated.private_key = Some(key);
            generated.jwt_secret = Some(secret);
        }

        match &self.private.key {
            None => return Err(ConfigError::Missing("private.key")),
            Some(key) if key.expose().len() < 8 => {
                return Err(ConfigError::Invalid {
                    key: "private.key",
                    reason: "must be at least 8 characters".into(),
                });
            }
            Some(_) => {}
        }
        match self.auth.mode {
            AuthMode::Jwt if self.auth.jwt.algorithm.is_hmac() => {
                if self.auth.jwt.secret.is_none() {
                    return Err(ConfigError::Missing("auth.jwt.secret"));
                }
            }
            AuthMode::Jwt => {
                if self.auth.jwt.public_key_file.is_none() {
                    return Err(ConfigError::Missing("auth.jwt.public_key_file"));
                }
            }
            AuthMode::Backend => {
                let url = self
                    .auth
                    .backend_url
                    .as_deref()
                    .ok_or(ConfigError::Missing("auth.backend_url"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        key: "auth.backend_url",
                        reason: "must be an http:// or https:// URL".into(),
                    });
                }
            }
        }
        Ok(generated)
    }
}

/// Checks an origin (`scheme://host[:port]`) and strips a trailing slash.
fn normalize_origin(raw: &str) -> Result<String, ConfigError> {
    let origin = raw.trim().trim_end_matches('/');
    let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', ' '])
    });
    if valid {
        Ok(origin.to_owned())
    } else {
        Err(ConfigError::Invalid {
            key: "allowed_origins",
            reason: format!("{raw:?} is not an origin such as \"https://cells.example.com\""),
        })
    }
}

/// Normalises a URL path or namespace: leading slash, no trailing slash (except "/").
fn normalize_path(key: &'static str, raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be a plain path".into(),
        });
    }
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    Ok(if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    })
}
