//! Delta blobs in a real store: chains decode, never loop, survive the
//! loss of nothing they need, and report damage instead of wrong bytes.

use crate::codecs::testdata::{drift, f32_bytes, weights};
use crate::frames::FRAME_RAW;
use crate::{BlobId, BlobStore, Codec, ParentCheck, StoreError};
use std::fs;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

/// Three "epochs" of one f32 tensor a little over one frame long: each
/// every element moved by a relative 1e-3 (as Adam moves weights).
fn epochs() -> [Vec<u8>; 3] {
    let n = FRAME_RAW / 4 + 3000;
    let a = weights(n, 1);
    let b = drift(&a, 1e-3, 2);
    let c = drift(&b, 1e-3, 3);
    [f32_bytes(&a), f32_bytes(&b), f32_bytes(&c)]
}

fn store() -> std::result::Result<(tempfile::TempDir, BlobStore), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = BlobStore::open(dir.path().join("blobs"), 3)?;
    Ok((dir, store))
}

fn put_all(store: &BlobStore, blobs: &[Vec<u8>]) -> std::result::Result<Vec<BlobId>, StoreError> {
    blobs
        .iter()
        .map(|b| {
            let id = BlobId::of(b);
            store.put_typed(id, &b.as_slice(), Some(4)).map(|_| id)
        })
        .collect()
}

#[test]
fn rebased_blobs_decode_through_their_chain() -> Result {
    let (_dir, store) = store()?;
    let data = epochs();
    let ids = put_all(&store, &data)?;
    let full = store.stored_len(ids[0])?;
    // Older versions become deltas against newer ones: 0 -> 1 -> 2.
    let out = store
        .encode_as_delta(ids[1], 4, ids[2], &data[2].as_slice(), ParentCheck::Id)?
        .ok_or("delta 1 did not pay")?;
    assert_eq!((out.codec, out.parent), (Codec::Delta, Some(ids[2])));
    let out = store
        .encode_as_delta(ids[0], 4, ids[1], &data[1].as_slice(), ParentCheck::Id)?
        .ok_or("delta 0 did not pay")?;
    assert!(out.stored_len * 100 < full * 97, "{} vs {full}", out.stored_len);
    assert_eq!(store.chain(ids[0])?, vec![ids[1], ids[2]]);
    assert_eq!(store.describe(ids[0])?.parent, Some(ids[1]));
    for (id, raw) in ids.iter().zip(&data) {
        assert_eq!(&store.read(*id)?, raw);
        store.verify(*id)?;
        let mut via_reader = Vec::new();
        std::io::Read::read_to_end(&mut store.reader(*id)?, &mut via_reader)?;
        assert_eq!(&via_reader, raw);
    }
    // Frames moved out to another owner come out whole and in order,
    // through a chain (0 -> 1 -> 2) and from a self-contained blob, with
    // the buffers handed back each time; a raw blob too.
    let raw_bytes = b"raw bytes of a small blob".repeat(1000);
    let raw_id = BlobId::of(&raw_bytes);
    store.put(raw_id, &raw_bytes)?;
    for (id, raw) in ids.iter().zip(&data).chain([(&raw_id, &raw_bytes)]) {
        let mut reader = store.unchecked_reader(*id)?;
        let (mut out, mut spare) = (Vec::new(), Vec::new());
        loop {
            let frame = reader.next_owned(spare)?;
            if frame.is_empty() {
                break;
            }
            assert!(frame.len() <= FRAME_RAW);
            out.extend_from_slice(&frame);
            spare = frame;
        }
        assert_eq!(&out, raw);
    }
    // Never a loop: 2 cannot become a delta against 0, which depends on it.
    assert!(store
        .encode_as_delta(ids[2], 4, ids[0], &data[0].as_slice(), ParentCheck::Id)?
        .is_none());
    assert!(store
        .encode_as_delta(ids[1], 4, ids[1], &data[1].as_slice(), ParentCheck::Id)?
        .is_none());
    // Self-contained again, same bytes.
    let out = store.make_self_contained(ids[1])?;
    assert_eq!((out.codec, out.parent), (Codec::Planes, None));
    assert_eq!(store.chain(ids[0])?, vec![ids[1]]);
    assert_eq!(store.read(ids[0])?, data[0]);
    assert_eq!(store.read(ids[1])?, data[1]);
    Ok(())
}

#[test]
fn a_missing_or_damaged_parent_is_an_error_never_wrong_bytes() -> Result {
    let (_dir, store) = store()?;
    let data = epochs();
    let ids = put_all(&store, &data)?;
    store
        .encode_as_delta(ids[0], 4, ids[1], &data[1].as_slice(), ParentCheck::Id)?
        .ok_or("no delta")?;
    // Damage in the parent's body.
    let path = store.path_of(ids[1]);
    let good = fs::read(&path)?;
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x10;
    fs::write(&path, &bad)?;
    assert!(matches!(store.read(ids[0]), Err(StoreError::Corrupt { .. })));
    assert!(store.verify(ids[0]).is_err());
    // The parent gone.
    fs::remove_file(&path)?;
    match store.read(ids[0]) {
        Err(StoreError::MissingParent { id, parent }) => assert_eq!((id, parent), (ids[0], ids[1])),
        other => panic!("expected MissingParent, got {other:?}"),
    }
    fs::write(&path, &good)?;
    assert_eq!(store.read(ids[0])?, data[0]);
    Ok(())
}

#[test]
fn a_delta_refuses_parent_bytes_that_are_not_the_parent() -> Result {
    let (_dir, store) = store()?;
    let data = epochs();
    let ids = put_all(&store, &data)?;
    let before = fs::read(store.path_of(ids[0]))?;
    // data[2] claimed to be the bytes of ids[1].
    assert!(store
        .encode_as_delta(ids[0], 4, ids[1], &data[2].as_slice(), ParentCheck::Id)
        .is_err());
    assert_eq!(fs::read(store.path_of(ids[0]))?, before);
    Ok(())
}

#[test]
fn put_delta_stores_new_blobs_against_a_base() -> Result {
    let (_dir, store) = store()?;
    let data = epochs();
    let base = BlobId::of(&data[0]);
    store.put_typed(base, &data[0].as_slice(), Some(4))?;
    let id = BlobId::of(&data[1]);
    let out = store.put_delta(id, &data[1].as_slice(), 4, base)?;
    assert!(out.written);
    assert_eq!((out.codec, out.parent), (Codec::Delta, Some(base)));
    assert_eq!(store.read(id)?, data[1]);
    // Unrelated bytes gain nothing from the base: stored without it.
    let other = f32_bytes(&weights(data[0].len() / 4, 99));
    let oid = BlobId::of(&other);
    let out = store.put_delta(oid, &other.as_slice(), 4, base)?;
    assert_eq!((out.codec, out.parent), (Codec::Planes, None));
    assert_eq!(store.read(oid)?, other);
    Ok(())
}

#[test]
fn stored_deltas_travel_after_their_parents() -> Result {
    let (_dir, src) = store()?;
    let (_dir2, dst) = store()?;
    let data = epochs();
    let ids = put_all(&src, &data[..2])?;
    src.encode_as_delta(ids[0], 4, ids[1], &data[1].as_slice(), ParentCheck::Id)?
        .ok_or("no delta")?;
    let delta = src.read_stored(ids[0])?;
    match dst.put_stored(ids[0], &delta) {
        Err(StoreError::MissingParent { parent, .. }) => assert_eq!(parent, ids[1]),
        other => panic!("expected MissingParent, got {other:?}"),
    }
    assert!(!dst.contains(ids[0]));
    dst.put_stored(ids[1], &src.read_stored(ids[1])?)?;
    let out = dst.put_stored(ids[0], &delta)?;
    assert_eq!((out.codec, out.parent), (Codec::Delta, Some(ids[1])));
    assert_eq!(dst.read(ids[0])?, data[0]);
    Ok(())
}

#[test]
fn every_blob_codec_round_trips_float_specials_of_every_width() -> Result {
    use crate::codecs::testdata::{specials, Rng};
    let mut r = Rng::new(11);
    for width in [1u8, 2, 4, 8] {
        let one = if width == 1 {
            (0..=255u8).collect()
        } else {
            specials(width as usize)
        };
        // NaN payloads, infinities, zeros of both signs, denormals and
        // extremes, alone, repeated and mixed with noise; and empty.
        let mut many = Vec::new();
        for i in 0..(FRAME_RAW / one.len() + 7) {
            if i % 3 == 0 {
                many.extend_from_slice(&one);
            } else {
                many.extend_from_slice(&r.bytes(one.len()));
            }
        }
        for raw in [Vec::new(), one.clone(), many.clone()] {
            let mut parent = raw.clone();
            for b in parent.iter_mut().step_by(5) {
                *b ^= 0x01;
            }
            let (_dir, store) = store()?;
            let (pid, id) = (BlobId::of(&parent), BlobId::of(&raw));
            store.put_typed(pid, &parent.as_slice(), Some(width))?;
            if id == pid {
                continue;
            }
            // As planes, as a delta against a stored parent, rebased, and
            // made whole again: the same bytes every time.
            store.put_delta(id, &raw.as_slice(), width, pid)?;
            assert_eq!(store.read(id)?, raw, "width {width}, {} bytes, put_delta", raw.len());
            store.make_self_contained(id)?;
            assert_eq!(store.read(id)?, raw, "width {width}, self-contained");
            let _ = store.encode_as_delta(id, width, pid, &parent.as_slice(), ParentCheck::Id)?;
            assert_eq!(store.read(id)?, raw, "width {width}, rebased");
            store.verify(id)?;
            let zstd_only = BlobId::of(&[raw.as_slice(), b"z"].concat());
            store.put(zstd_only, &[raw.as_slice(), b"z"].concat())?;
            assert_eq!(store.read(zstd_only)?, [raw.as_slice(), b"z"].concat());
        }
    }
    Ok(())
}

/// With `durability = "fast"` the newest blob may not be on the disk yet:
/// re-encoding an older, durable blob as a delta against it makes the
/// parent durable first, so a crash cannot take the older blob with it.
#[cfg(feature = "crash-sim")]
#[test]
fn a_fast_delta_makes_its_parent_durable_first() -> Result {
    use crate::backend::{CrashDisk, Writeback};
    use crate::Durability;
    let disk = CrashDisk::new(7);
    let on = |d: &CrashDisk, durability| {
        BlobStore::with_backend(std::sync::Arc::new(d.clone()), 3).with_durability(durability)
    };
    let data = epochs();
    let old = put_all(&on(&disk, Durability::Full), &data[..1])?[0];
    on(&disk, Durability::Full).sync_names(&[old])?;
    let fast = on(&disk, Durability::Fast);
    let new = put_all(&fast, &data[1..2])?[0];
    fast.encode_as_delta(old, 4, new, &data[1].as_slice(), ParentCheck::Id)?
        .ok_or("the delta did not pay")?;
    fast.sync()?;
    let after = on(&disk.crash(Writeback::None), Durability::Fast);
    assert_eq!(after.describe(old)?.parent, Some(new));
    assert_eq!(after.read(old)?, data[0]);
    Ok(())
}
