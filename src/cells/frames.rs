//! What a Cells client may send (parsed into [`Request`]), what herald answers when it cannot
//! serve it ([`ErrorCode`], as an error frame), and the close codes herald uses.

use serde::{Deserialize, Serialize};

/// A client frame, understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `{"@type":"subscribe","jwt":…}`; `None` when the token is missing or empty.
    Subscribe(Option<String>),
    /// `{"@type":"unsubscribe"}`.
    Unsubscribe,
}

/// Why a frame or a subscribe was refused: the `code` of the error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// A subscribe without a token.
    MissingToken,
    /// The token was refused.
    Unauthorized,
    /// The auth backend could not be asked.
    AuthUnavailable,
    /// The token expired and no fresh subscribe came in time.
    TokenExpired,
    /// Not JSON, not an object, no or an unknown `@type`.
    BadMessage,
    /// Over the rate: the frame was ignored.
    RateLimited,
    /// A chat frame before a subscribe.
    NotSubscribed,
    /// The session may not use this chat room.
    Forbidden,
    /// A chat room of a type herald does not serve (`USER`, `GLOBAL`, `ANY`).
    UnsupportedRoom,
    /// A chat frame for a room this socket does not hold.
    NotJoined,
    /// A chat text over `chat.max_text`.
    TooLong,
    /// The chat store or the auth backend could not answer now.
    Unavailable,
}

impl ErrorCode {
    fn code(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Unauthorized => "unauthorized",
            Self::AuthUnavailable => "auth_unavailable",
            Self::TokenExpired => "token_expired",
            Self::BadMessage => "bad_message",
            Self::RateLimited => "rate_limited",
            Self::NotSubscribed => "not_subscribed",
            Self::Forbidden => "forbidden",
            Self::UnsupportedRoom => "unsupported_room",
            Self::NotJoined => "not_joined",
            Self::TooLong => "too_long",
            Self::Unavailable => "unavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "subscribe with a token: {\"@type\":\"subscribe\",\"jwt\":…}",
            Self::Unauthorized => "the token was refused; subscribe again with a valid one",
            Self::AuthUnavailable => "the token could not be checked now; subscribe again",
            Self::TokenExpired => "the token expired; subscribe again with a fresh one",
            Self::BadMessage => {
                "expected a JSON object with a known \"@type\" (subscribe, unsubscribe; on the \
                 chat JOIN, HISTORY, POST, DELETE_MSG, LEAVE) and its fields"
            }
            Self::RateLimited => "too many frames; this one was ignored",
            Self::NotSubscribed => "subscribe with a token first",
            Self::Forbidden => "the session may not use that room",
            Self::UnsupportedRoom => "rooms of type WORKSPACE and NODE are served",
            Self::NotJoined => "JOIN the room first",
            Self::TooLong => "the message is too long",
            Self::Unavailable => "the chat cannot answer now; try again",
        }
    }

    /// The error frame: `{"@type":"error","code":…,"error":…}`.
    pub(crate) fn frame(self) -> String {
        #[derive(Serialize)]
        struct Frame {
            #[serde(rename = "@type")]
            kind: &'static str,
            code: &'static str,
            error: &'static str,
        }
        serde_json::to_string(&Frame {
            kind: "error",
            code: self.code(),
            error: self.message(),
        })
        .unwrap_or_default()
    }
}

/// Parses a text frame.
///
/// # Errors
/// [`ErrorCode::BadMessage`]: not a JSON object, no `@type`, or one herald does not know.
pub(crate) fn parse(text: &str) -> Result<Request, ErrorCode> {
    /// Cells reads exactly these fields and ignores others.
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "@type")]
        kind: Option<String>,
        #[serde(default)]
        jwt: Option<String>,
    }
    if !text.trim_start().starts_with('{') {
        return Err(ErrorCode::BadMessage);
    }
    let raw: Raw = serde_json::from_str(text).map_err(|_| ErrorCode::BadMessage)?;
    match raw.kind.as_deref() {
        Some("subscribe") => Ok(Request::Subscribe(raw.jwt.filter(|t| !t.is_empty()))),
        Some("unsubscribe") => Ok(Request::Unsubscribe),
        _ => Err(ErrorCode::BadMessage),
    }
}

/// Why herald closes a socket: the close code and reason it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// Unsubscribed for `cells.unsubscribed_timeout`.
    NotSubscribed,
    /// Over the rate for too long.
    RateLimit,
    /// A binary frame.
    Binary,
    /// A frame over `cells.max_frame_bytes`.
    TooLarge,
    /// Its queue was full.
    SlowConsumer,
    /// The node shuts down.
    ShuttingDown,
    /// The user opened more sessions than `limits.max_sockets_per_user`: the oldest goes.
    Replaced,
    /// A backend disconnected the user.
    Kicked,
}

impl CloseReason {
    /// The close code (RFC 6455, section 7.4.1).
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::NotSubscribed | Self::RateLimit | Self::Replaced | Self::Kicked => 1008,
            Self::Binary => 1003,
            Self::TooLarge => 1009,
            Self::SlowConsumer => 1013,
            Self::ShuttingDown => 1001,
        }
    }

    /// The close reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::NotSubscribed => "not subscribed",
            Self::RateLimit => "rate limit",
            Self::Binary => "binary frames are not supported",
            Self::TooLarge => "frame too large",
            Self::SlowConsumer => "slow consumer",
            Self::ShuttingDown => "server shutting down",
            Self::Replaced => "replaced",
            Self::Kicked => "disconnected",
        }
    }

    /// The label of `herald_cells_closes_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::NotSubscribed => "not_subscribed",
            Self::RateLimit => "rate_limit",
            Self::Binary => "binary",
            Self::TooLarge => "too_large",
            Self::SlowConsumer => "slow_consumer",
            Self::ShuttingDown => "shutting_down",
            Self::Replaced => "replaced",
            Self::Kicked => "kicked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_ui_sends() {
        assert_eq!(
            parse(r#"{"@type":"subscribe","jwt":"t","extra":1}"#),
            Ok(Request::Subscribe(Some("t".into())))
        );
        assert_eq!(
            parse(r#"{"@type":"subscribe"}"#),
            Ok(Request::Subscribe(None))
        );
        assert_eq!(
            parse(r#"{"@type":"subscribe","jwt":""}"#),
            Ok(Request::Subscribe(None))
        );
        assert_eq!(
            parse(r#"{"@type":"unsubscribe"}"#),
            Ok(Request::Unsubscribe)
        );
        for bad in [
            "",
            "dump",
            "\"dump\"",
            "[]",
            "{}",
            r#"{"@type":"JOIN"}"#,
            r#"{"@type":1}"#,
            r#"{"@type":"subscribe","jwt":5}"#,
        ] {
            assert_eq!(parse(bad), Err(ErrorCode::BadMessage), "{bad}");
        }
    }

    #[test]
    fn error_frames_carry_a_code() {
        assert_eq!(
            ErrorCode::TokenExpired.frame(),
            r#"{"@type":"error","code":"token_expired","error":"the token expired; subscribe again with a fresh one"}"#
        );
    }
}
