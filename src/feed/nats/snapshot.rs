//! Table snapshots in the JetStream object store: a checkpoint file's bytes
//! (`feed::checkpoint`, with its CRC) under the object name [`OBJECT`], the change sequence
//! number it covers also in the object's metadata and headers ([`HEADER_SNAPSHOT_SEQ`]) so
//! that it can be known without downloading. Relays put them; edges get them, verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::object_store::{self, ObjectInfo, ObjectMetadata, ObjectStore};
use async_nats::HeaderMap;

use crate::feed::checkpoint::{self, Loaded, Position};
use crate::table::Table;

/// The object holding the snapshot.
pub const OBJECT: &str = "table";
/// The metadata key and header of the sequence number a snapshot covers.
pub const HEADER_SNAPSHOT_SEQ: &str = "Clusterns-Snapshot-Seq";
/// The largest snapshot downloaded (far above a checkpoint of 100M apps).
pub const MAX_SNAPSHOT: u64 = 64 << 30;

/// What the object store says about a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The last change the snapshot's table holds.
    pub seq: u64,
    /// Its size.
    pub bytes: u64,
    /// When it was put.
    pub put_at: SystemTime,
}

/// Writes `table` as of `last_seq` as a checkpoint and puts it in `store` (replacing the
/// snapshot there).
pub async fn put(
    store: &ObjectStore,
    table: &Table,
    last_seq: u64,
    clusters: &[String],
) -> Result<SnapshotInfo, String> {
    put_at(
        store,
        table,
        Position {
            last_seq,
            ..Position::default()
        },
        clusters,
    )
    .await
}

/// [`put`] with a whole position (a relay following a journal records where in it the table
/// is, to resume from the snapshot; edges only use its `last_seq`).
pub async fn put_at(
    store: &ObjectStore,
    table: &Table,
    position: Position,
    clusters: &[String],
) -> Result<SnapshotInfo, String> {
    let seq = position.last_seq;
    let bytes = checkpoint_bytes(table, position, clusters)
        .map_err(|e| format!("snapshot {OBJECT} (seq {seq}): writing the checkpoint: {e}"))?;
    put_raw(store, &bytes, seq).await
}

/// Puts `bytes` as the snapshot covering `seq`, as they are (relays put checkpoints; tests put
/// damaged ones to see them refused).
pub async fn put_raw(store: &ObjectStore, bytes: &[u8], seq: u64) -> Result<SnapshotInfo, String> {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_SNAPSHOT_SEQ, seq.to_string().as_str());
    let meta = ObjectMetadata {
        name: OBJECT.into(),
        description: Some(format!("clusterns table at change {seq}")),
        chunk_size: Some(1 << 20),
        metadata: HashMap::from([(HEADER_SNAPSHOT_SEQ.to_string(), seq.to_string())]),
        headers: Some(headers),
    };
    let mut data = bytes;
    let info = store
        .put(meta, &mut data)
        .await
        .map_err(|e| format!("snapshot {OBJECT} (seq {seq}): uploading: {e}"))?;
    snapshot_info(&info)
}

/// The checkpoint of `table` at `position`, as bytes (written to a private temp file by
/// `checkpoint::write`, read back, removed): what [`put_raw`] uploads. Blocking.
pub fn checkpoint_bytes(
    table: &Table,
    position: Position,
    clusters: &[String],
) -> std::io::Result<Vec<u8>> {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "clusterns-snapshot-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let result =
        checkpoint::write(&path, table, position, clusters).and_then(|()| std::fs::read(&path));
    let _ = std::fs::remove_file(&path);
    result
}

/// The sequence number and size an object's info says a snapshot has.
fn snapshot_info(info: &ObjectInfo) -> Result<SnapshotInfo, String> {
    let text = info
        .metadata
        .get(HEADER_SNAPSHOT_SEQ)
        .map(String::as_str)
        .or_else(|| {
            info.headers
                .as_ref()
                .and_then(|h| h.get(HEADER_SNAPSHOT_SEQ))
                .map(|v| v.as_str())
        })
        .ok_or_else(|| format!("snapshot {OBJECT}: no {HEADER_SNAPSHOT_SEQ}"))?;
    let seq = text.parse::<u64>().map_err(|_| {
        format!("snapshot {OBJECT}: {HEADER_SNAPSHOT_SEQ} {text:?} is not a number")
    })?;
    let put_at = info.modified.map_or(SystemTime::UNIX_EPOCH, |t| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).unwrap_or(0))
    });
    Ok(SnapshotInfo {
        seq,
        bytes: info.size as u64,
        put_at,
    })
}

/// Whether an object-store error says the object does not exist.
fn info_not_found(e: &object_store::InfoError) -> bool {
    matches!(e.kind(), object_store::InfoErrorKind::NotFound)
}

/// What the store says about its snapshot, without downloading it; `None`: there is none.
pub async fn info(store: &ObjectStore) -> Result<Option<SnapshotInfo>, String> {
    match store.info(OBJECT).await {
        Ok(info) if info.deleted => Ok(None),
        Ok(info) => snapshot_info(&info).map(Some),
        Err(e) if info_not_found(&e) => Ok(None),
        Err(e) => Err(format!("snapshot {OBJECT}: {e}")),
    }
}

/// Downloads the snapshot (into memory, at most its announced size and [`MAX_SNAPSHOT`]) and
/// verifies it: the object store's digest, the checkpoint's every check (its CRC, the
/// structure), and that the checkpoint's position is the sequence number the object
/// announces. `None`: there is none. Any damage is an error naming what failed; the caller
/// refuses the snapshot.
pub async fn get(store: &ObjectStore) -> Result<Option<(Loaded, SnapshotInfo)>, String> {
    use tokio::io::AsyncReadExt;
    let mut object = match store.get(OBJECT).await {
        Ok(o) => o,
        Err(e) if matches!(e.kind(), object_store::GetErrorKind::NotFound) => return Ok(None),
        Err(e) => return Err(format!("snapshot {OBJECT}: {e}")),
    };
    let info = snapshot_info(object.info())?;
    let seq = info.seq;
    let fail = |what: String| format!("snapshot {OBJECT} (seq {seq}): {what}");
    if info.bytes > MAX_SNAPSHOT {
        return Err(fail(format!("{} bytes, over {MAX_SNAPSHOT}", info.bytes)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(info.bytes).unwrap_or(0).min(1 << 30));
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = object
            .read(&mut chunk)
            .await
            .map_err(|e| fail(format!("downloading: {e}")))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() as u64 > info.bytes {
            return Err(fail(format!(
                "more than the {} bytes announced",
                info.bytes
            )));
        }
    }
    if bytes.len() as u64 != info.bytes {
        return Err(fail(format!(
            "{} bytes downloaded, {} announced",
            bytes.len(),
            info.bytes
        )));
    }
    let loaded = verify(&bytes, seq).map_err(fail)?;
    Ok(Some((loaded, info)))
}

/// Reads a snapshot's bytes as a checkpoint covering `seq`.
pub fn verify(bytes: &[u8], seq: u64) -> Result<Loaded, String> {
    let loaded = checkpoint::read_from(bytes, bytes.len() as u64).map_err(|e| e.to_string())?;
    if loaded.position.last_seq != seq {
        return Err(format!(
            "the checkpoint is at sequence {}, not the announced {seq}",
            loaded.position.last_seq
        ));
    }
    Ok(loaded)
}

/// The cluster names a table's indexes refer to (its registry), in index order: what a
/// snapshot lists.
pub fn cluster_names(table: &Table) -> Vec<String> {
    table
        .clusters()
        .names()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Table, Vec<String>) {
        let mut t = Table::default();
        t.upsert("r1", "mark", "game", 0).unwrap();
        t.upsert("r2", "ann", "site", 1).unwrap();
        (t, vec!["c0".into(), "c1".into()])
    }

    #[test]
    fn a_checkpoint_verifies_and_damage_is_refused() {
        let (t, clusters) = table();
        let pos = Position {
            last_seq: 42,
            ..Position::default()
        };
        let bytes = checkpoint_bytes(&t, pos, &clusters).unwrap();
        let loaded = verify(&bytes, 42).unwrap();
        assert_eq!(loaded.table.len(), 2);
        assert_eq!(loaded.clusters, clusters);
        let (back, pos) = loaded.into_table().unwrap();
        assert_eq!((back.len(), pos.last_seq), (2, 42));
        assert_eq!(cluster_names(&back), clusters);
        let e = verify(&bytes, 41).err().unwrap();
        assert!(e.contains("not the announced 41"), "{e}");
        let mut damaged = bytes.clone();
        let at = damaged.len() - 10;
        damaged[at] ^= 0x40;
        let e = verify(&damaged, 42).err().unwrap();
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = verify(&bytes[..bytes.len() - 1], 42).err().unwrap();
        assert!(!e.is_empty());
    }
}
