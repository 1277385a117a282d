//! The JetStream client plumbing relays and edges share: a current-thread runtime, the
//! connection, the change stream (created by relays, only looked up by edges), the snapshot
//! object store, and reading and decoding single messages of the stream by sequence.

use std::time::Duration;

use async_nats::jetstream::{self, object_store::ObjectStore, stream::Stream};
use async_nats::{HeaderMap, ServerAddr};

use super::message::{decode, Message, HEADER_RESET, HEADER_SEQ, MAX_BODY};
use crate::config::NatsConfig;

/// JetStream's error code for "stream not found".
const STREAM_NOT_FOUND: jetstream::ErrorCode = jetstream::ErrorCode::STREAM_NOT_FOUND;

/// How far back [`last_message`] looks past deleted messages at the stream's tail.
const TAIL_LOOKBACK: u64 = 64;

/// The stream's de-duplication window: a message published again within it with the same
/// `Nats-Msg-Id` is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A current-thread tokio runtime with every driver (time, I/O) on, for the one thread that
/// runs the NATS client.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The servers of `cfg`, for messages.
fn servers(cfg: &NatsConfig) -> String {
    cfg.servers.join(", ")
}

/// Connects to `cfg.servers` (any of them; the client learns the rest of the cluster) as
/// `name`, with the credentials file when one is configured. Once connected the client
/// reconnects by itself, forever, with its own backoff. An error names the servers.
pub async fn connect(cfg: &NatsConfig, name: &str) -> Result<async_nats::Client, String> {
    let addrs = cfg
        .servers
        .iter()
        .map(|s| {
            s.parse::<ServerAddr>()
                .map_err(|e| format!("nats server {s}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = async_nats::ConnectOptions::new();
    if let Some(path) = &cfg.credentials {
        options = options.credentials_file(path).await.map_err(|e| {
            format!(
                "nats: the credentials file {}: {e}",
                crate::name::quote(&path.display().to_string())
            )
        })?;
    }
    options
        .name(name)
        .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .max_reconnects(None)
        .connect(addrs)
        .await
        .map_err(|e| format!("nats: connecting to {}: {e}", servers(cfg)))
}

/// The stream configuration a relay creates: the one subject, file storage, messages kept
/// `retention_secs`, `replicas` copies, a de-duplication window of [`DUPLICATE_WINDOW`], the
/// oldest discarded first.
pub fn stream_config(cfg: &NatsConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: cfg.stream.clone(),
        description: Some("clusterns change stream".into()),
        subjects: vec![cfg.subject.clone()],
        storage: jetstream::stream::StorageType::File,
        max_age: Duration::from_secs(cfg.retention_secs),
        num_replicas: cfg.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        discard: jetstream::stream::DiscardPolicy::Old,
        max_message_size: i32::try_from(MAX_BODY + 4096).unwrap_or(i32::MAX),
        allow_direct: true,
        ..Default::default()
    }
}

/// Whether a get-stream error says the stream does not exist.
fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j) if j.error_code() == STREAM_NOT_FOUND)
}

/// Checks that `stream` takes `cfg.subject`.
fn check_subjects(stream: &Stream, cfg: &NatsConfig) -> Result<(), String> {
    let subjects = &stream.cached_info().config.subjects;
    if subjects.iter().any(|s| s == &cfg.subject) {
        Ok(())
    } else {
        Err(format!(
            "nats: stream {} takes the subjects {subjects:?}, not nats.subject {}",
            cfg.stream, cfg.subject
        ))
    }
}

/// The stream `cfg.stream`, created when missing (see [`stream_config`]). An existing stream
/// whose subjects do not include `cfg.subject` is an error; its other settings are left as
/// they are (a retention or replica count other than `cfg`'s is logged: `nats stream edit`
/// changes them).
pub async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<Stream, String> {
    match js.get_stream(&cfg.stream).await {
        Ok(stream) => {
            check_subjects(&stream, cfg)?;
            let c = &stream.cached_info().config;
            if c.max_age != Duration::from_secs(cfg.retention_secs)
                || c.num_replicas != cfg.replicas
            {
                tracing::warn!(
                    stream = cfg.stream,
                    max_age_secs = c.max_age.as_secs(),
                    replicas = c.num_replicas,
                    "nats: the stream exists with another retention or replica count than [nats] \
                     retention_secs = {} and replicas = {}; left as it is",
                    cfg.retention_secs,
                    cfg.replicas
                );
            }
            Ok(stream)
        }
        Err(e) if is_not_found(&e) => {
            tracing::info!(
                stream = cfg.stream,
                subject = cfg.subject,
                retention_secs = cfg.retention_secs,
                replicas = cfg.replicas,
                "nats: creating the stream"
            );
            match js.create_stream(stream_config(cfg)).await {
                Ok(stream) => Ok(stream),
                // Another relay may have created it meanwhile.
                Err(create) => match js.get_stream(&cfg.stream).await {
                    Ok(stream) => {
                        check_subjects(&stream, cfg)?;
                        Ok(stream)
                    }
                    Err(_) => Err(format!(
                        "nats: creating the stream {}: {create}",
                        cfg.stream
                    )),
                },
            }
        }
        Err(e) => Err(format!("nats: looking up the stream {}: {e}", cfg.stream)),
    }
}

/// The stream `cfg.stream`, which must exist (edges never create it).
pub async fn get_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<Stream, String> {
    match js.get_stream(&cfg.stream).await {
        Ok(stream) => {
            check_subjects(&stream, cfg)?;
            Ok(stream)
        }
        Err(e) if is_not_found(&e) => Err(format!(
            "nats: there is no stream {} (a relay creates it)",
            cfg.stream
        )),
        Err(e) => Err(format!("nats: looking up the stream {}: {e}", cfg.stream)),
    }
}

/// The snapshot object store `cfg.snapshot_bucket`; created when missing if `create` (file
/// storage, `replicas` copies, nothing expires: each snapshot replaces the last).
pub async fn snapshot_store(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    create: bool,
) -> Result<ObjectStore, String> {
    let bucket = &cfg.snapshot_bucket;
    let got = js.get_object_store(bucket).await;
    match got {
        Ok(store) => Ok(store),
        Err(e) if !create => Err(format!("nats: the snapshot object store {bucket}: {e}")),
        Err(_) => {
            let config = jetstream::object_store::Config {
                bucket: bucket.clone(),
                description: Some("clusterns table snapshots".into()),
                storage: jetstream::stream::StorageType::File,
                num_replicas: cfg.replicas,
                ..Default::default()
            };
            match js.create_object_store(config).await {
                Ok(store) => Ok(store),
                // Another relay may have created it meanwhile.
                Err(create) => js.get_object_store(bucket).await.map_err(|_| {
                    format!("nats: creating the snapshot object store {bucket}: {create}")
                }),
            }
        }
    }
}

/// Decodes a message of the stream from its headers and body (see `message::decode`).
pub fn decode_headers(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Message, String> {
    let seq = headers.and_then(|h| h.get(HEADER_SEQ)).map(|v| v.as_str());
    let reset = headers
        .and_then(|h| h.get(HEADER_RESET))
        .map(|v| v.as_str());
    decode(seq, reset, payload)
}

/// The message at stream sequence `stream_seq`, decoded; `None` if there is none (deleted,
/// purged, expired, or not yet written). An undecodable message is an error naming it.
pub async fn message_at(stream: &Stream, stream_seq: u64) -> Result<Option<Message>, String> {
    use jetstream::stream::LastRawMessageErrorKind as Kind;
    match stream.get_raw_message(stream_seq).await {
        Ok(m) => decode_headers(Some(&m.headers), &m.payload)
            .map(Some)
            .map_err(|e| format!("nats: stream message {stream_seq}: {e}")),
        Err(e) if matches!(e.kind(), Kind::NoMessageFound) => Ok(None),
        Err(e) if matches!(e.kind(), Kind::JetStream(j) if j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND) => {
            Ok(None)
        }
        Err(e) => Err(format!("nats: reading stream message {stream_seq}: {e}")),
    }
}

/// The stream's last message (looking back past a few deleted ones), with its stream
/// sequence; `None` when the stream holds none. An undecodable last message is an error
/// naming its stream sequence.
pub async fn last_message(stream: &Stream) -> Result<Option<(u64, Message)>, String> {
    let info = stream
        .get_info()
        .await
        .map_err(|e| format!("nats: stream info: {e}"))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    if info.state.messages == 0 || last == 0 {
        return Ok(None);
    }
    let lowest = first.max(last.saturating_sub(TAIL_LOOKBACK)).max(1);
    for seq in (lowest..=last).rev() {
        if let Some(m) = message_at(stream, seq).await? {
            return Ok(Some((seq, m)));
        }
    }
    Ok(None)
}

/// The stream's last sequence number (0: it never held a message), whether or not the message
/// is still there: what a publish fenced with `Nats-Expected-Last-Sequence` expects.
pub async fn last_stream_seq(stream: &Stream) -> Result<u64, String> {
    stream
        .get_info()
        .await
        .map(|i| i.state.last_sequence)
        .map_err(|e| format!("nats: stream info: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NatsConfig {
        NatsConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            stream: "s".into(),
            subject: "a.b".into(),
            snapshot_bucket: "snap".into(),
            lease_bucket: "lease".into(),
            credentials: None,
            connect_timeout_ms: 500,
            retention_secs: 3600,
            replicas: 3,
        }
    }

    #[test]
    fn the_stream_config_follows_nats() {
        let c = stream_config(&cfg());
        assert_eq!(c.name, "s");
        assert_eq!(c.subjects, ["a.b"]);
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.discard, jetstream::stream::DiscardPolicy::Old);
        assert_eq!(c.storage, jetstream::stream::StorageType::File);
    }

    #[test]
    fn headers_decode_both_kinds() {
        let mut h = HeaderMap::new();
        h.insert(HEADER_RESET, "7");
        assert_eq!(
            decode_headers(Some(&h), b"").unwrap(),
            Message::Reset { seq: 7 }
        );
        let mut h = HeaderMap::new();
        h.insert(HEADER_SEQ, "3-3");
        let m = decode_headers(Some(&h), b"3 delete r1\n").unwrap();
        assert_eq!(m.last_seq(), 3);
        assert!(decode_headers(None, b"3 delete r1\n")
            .unwrap_err()
            .contains("neither"));
    }

    #[test]
    fn connecting_nowhere_names_the_servers() {
        let rt = runtime().unwrap();
        let mut c = cfg();
        // A port nothing listens on (bound then dropped).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        c.servers = vec![format!("nats://127.0.0.1:{port}")];
        let e = rt.block_on(connect(&c, "t")).unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
