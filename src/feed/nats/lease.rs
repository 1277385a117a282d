//! Leadership among relays: a lease in a JetStream key-value bucket (key [`KEY`], value the
//! holder's name, the bucket's `max_age` the lease's length). A relay becomes leader by
//! creating the key (which succeeds only while it is absent or expired), keeps it by updating
//! it at the revision it last wrote every third of the lease, and gives it up by deleting it.
//! A renewal that fails (the revision moved: another relay holds it; or the lease ran out)
//! means leadership is lost.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use crate::config::NatsConfig;

/// The key of the lease.
pub const KEY: &str = "leader";

/// The lease bucket `cfg.lease_bucket`, created when missing (history 1, entries expire after
/// `lease`).
pub async fn bucket(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    lease: Duration,
) -> Result<kv::Store, String> {
    let name = &cfg.lease_bucket;
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    // The bucket's stream, made as the client's `create_key_value` would (which first asks
    // for the account's info, a reply from a 2.9 server the client cannot parse).
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        description: Some("clusterns relay leadership".into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: lease,
        storage: jetstream::stream::StorageType::File,
        num_replicas: cfg.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.create_stream(config).await.err();
    // Created now, or by another relay meanwhile.
    js.get_key_value(name).await.map_err(|e| match created {
        Some(c) => format!("nats: creating the lease bucket {name}: {c}"),
        None => format!("nats: the lease bucket {name}: {e}"),
    })
}

/// A lease held.
#[derive(Debug)]
pub struct Lease {
    /// The revision last written.
    revision: u64,
    /// When it was last written (its expiry is `lease` after).
    renewed: Instant,
    lease: Duration,
    name: String,
}

impl Lease {
    /// Tries to become leader as `name`: `Ok(None)` while another relay holds the lease.
    pub async fn acquire(
        store: &kv::Store,
        name: &str,
        lease: Duration,
    ) -> Result<Option<Lease>, String> {
        let started = Instant::now();
        match store.create(KEY, name.as_bytes().to_vec().into()).await {
            Ok(revision) => Ok(Some(Lease {
                revision,
                renewed: started,
                lease,
                name: name.to_string(),
            })),
            Err(e) if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) => Ok(None),
            Err(e) => Err(format!("nats: taking the lease: {e}")),
        }
    }

    /// Who holds the lease now, if anyone (for the log).
    pub async fn holder(store: &kv::Store) -> Option<String> {
        match store.get(KEY).await {
            Ok(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        }
    }

    /// Renews the lease. An error means it is lost: another relay took it, or it ran out
    /// before this renewal (it is not renewed then even if the key is still there).
    pub async fn renew(&mut self, store: &kv::Store) -> Result<(), String> {
        if !self.valid() {
            return Err(format!(
                "the lease ran out ({} ms since the last renewal)",
                self.renewed.elapsed().as_millis()
            ));
        }
        let started = Instant::now();
        match tokio::time::timeout(
            self.remaining(),
            store.update(KEY, self.name.as_bytes().to_vec().into(), self.revision),
        )
        .await
        {
            Ok(Ok(revision)) => {
                self.revision = revision;
                self.renewed = started;
                Ok(())
            }
            Ok(Err(e)) => Err(format!("renewing the lease: {e}")),
            Err(_) => Err("renewing the lease: no answer before it ran out".into()),
        }
    }

    /// The lease's length.
    pub fn lease_len(&self) -> Duration {
        self.lease
    }

    /// Whether the lease is still ours by the clock (with a margin of a tenth of it).
    pub fn valid(&self) -> bool {
        self.renewed.elapsed() + self.lease / 10 < self.lease
    }

    /// How long until the lease runs out (less the margin).
    pub fn remaining(&self) -> Duration {
        (self.lease - self.lease / 10).saturating_sub(self.renewed.elapsed())
    }

    /// Gives the lease up (a standby takes it at once), only if it is still ours.
    pub async fn release(self, store: &kv::Store) -> Result<(), String> {
        store
            .delete_expect_revision(KEY, Some(self.revision))
            .await
            .map_err(|e| format!("releasing the lease: {e}"))
    }
}
