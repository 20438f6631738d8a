use super::encode::{encode_planes_as, PlaneCodec};
use super::testdata::{self, Rng};
use super::*;

fn pid(bytes: &[u8]) -> BlobId {
    BlobId::of(bytes)
}

/// Every transform that applies to `raw` for `width`, with a parent.
fn all_transforms(raw: &[u8], width: u8, parent: &[u8]) -> Vec<Encoded> {
    let huffman = |t: Transform, p: Option<&[u8]>| encode_planes_as(raw, t, p, PlaneCodec::Huffman).unwrap();
    let stored = |t: Transform, p: Option<&[u8]>| encode_planes_as(raw, t, p, PlaneCodec::Stored).unwrap();
    let xor = Transform::XorPlanes {
        width,
        parent: pid(parent),
    };
    let mut out = vec![
        huffman(Transform::None, None),
        huffman(Transform::Planes { width }, None),
        stored(Transform::Planes { width }, None),
        encode(raw, Transform::None, None, 3).unwrap(),
        encode(raw, Transform::Planes { width }, None, 3).unwrap(),
        encode(raw, Transform::Planes { width }, None, -5).unwrap(),
        choose(raw, width, None, 3).unwrap(),
        choose(
            raw,
            width,
            Some(Parent {
                id: pid(parent),
                bytes: parent,
            }),
            1,
        )
        .unwrap(),
    ];
    if parent.len() == raw.len() {
        out.push(huffman(xor, Some(parent)));
        out.push(stored(xor, Some(parent)));
        out.push(
            encode(
                raw,
                Transform::XorPlanes {
                    width,
                    parent: pid(parent),
                },
                Some(parent),
                3,
            )
            .unwrap(),
        );
    }
    out
}

fn round_trip(raw: &[u8], width: u8, parent: &[u8]) {
    for enc in all_transforms(raw, width, parent) {
        let info = inspect(&enc.bytes).unwrap();
        assert_eq!(info.transform, enc.transform);
        assert_eq!(info.raw_len, raw.len() as u64);
        let back = decode(&enc.bytes, raw.len() as u64, Some(parent)).unwrap();
        assert!(back == raw, "{:?} width {width} len {}", enc.transform, raw.len());
        if enc.transform.parent().is_none() {
            assert_eq!(decode(&enc.bytes, raw.len() as u64, None).unwrap(), raw);
        }
    }
}

/// A parent of the same length: `raw` with some bytes changed.
fn near(raw: &[u8], seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    raw.iter()
        .map(|&b| {
            if r.next_u64().is_multiple_of(4) {
                b ^ (r.next_u64() as u8)
            } else {
                b
            }
        })
        .collect()
}

#[test]
fn codecs_round_trip_small_and_odd_lengths() {
    let mut r = Rng::new(1);
    for width in [1u8, 2, 4, 8] {
        for len in [0usize, 1, 2, 3, 7, 8, 9, 63, 64, 65, 255, 4097, 70_001] {
            let raw = r.bytes(len);
            round_trip(&raw, width, &near(&raw, len as u64));
            round_trip(&raw, width, &[]);
            let zeros = vec![0u8; len];
            round_trip(&zeros, width, &raw);
        }
    }
    // 7 bytes of width 4: one element and a tail of 3.
    let raw = [1u8, 2, 3, 4, 5, 6, 7];
    let enc = encode(&raw, Transform::Planes { width: 4 }, None, 3).unwrap();
    assert_eq!(decode(&enc.bytes, 7, None).unwrap(), raw);
}

#[test]
fn codecs_round_trip_random_bytes_over_several_blocks() {
    let mut r = Rng::new(2);
    let raw = r.bytes((3 << 20) + 13);
    for width in [1u8, 2, 4, 8] {
        round_trip(&raw, width, &near(&raw, 3));
    }
}

#[test]
fn codecs_round_trip_float_specials() {
    let mut r = Rng::new(4);
    for width in [2usize, 4, 8] {
        let one = testdata::specials(width);
        // Specials alone, repeated, and mixed into ordinary values.
        let mut many = Vec::new();
        for i in 0..5000 {
            if i % 3 == 0 {
                many.extend_from_slice(&one);
            } else {
                many.extend_from_slice(&r.bytes(width * 7));
            }
        }
        let mut parent = many.clone();
        parent.rotate_left(width * 5);
        for raw in [&one[..], &many[..]] {
            round_trip(raw, width as u8, &parent[..raw.len()]);
        }
    }
    // Floats of every width from ordinary values.
    let v = testdata::weights(100_003, 5);
    let next = testdata::next_weights(&v, 6);
    for (raw, parent, width) in [
        (testdata::f32_bytes(&v), testdata::f32_bytes(&next), 4),
        (testdata::bf16_bytes(&v), testdata::bf16_bytes(&next), 2),
        (testdata::f16_bytes(&v), testdata::f16_bytes(&next), 2),
        (testdata::f64_bytes(&v), testdata::f64_bytes(&next), 8),
    ] {
        round_trip(&raw, width, &parent);
    }
}

#[test]
fn codecs_round_trip_large_weights() {
    let v = testdata::weights(2 << 20, 7);
    let raw = testdata::f32_bytes(&v);
    let parent = testdata::f32_bytes(&testdata::next_weights(&v, 8));
    round_trip(&raw, 4, &parent);
    // Planes beat zstd alone on float32 weights.
    let plain = choose(&raw, 4, None, 3).unwrap();
    assert_eq!(plain.transform, Transform::Planes { width: 4 });
    let none = encode(&raw, Transform::None, None, 3).unwrap();
    assert!(plain.bytes.len() < none.bytes.len());
}

#[test]
fn codecs_choose_uses_the_parent_only_when_it_pays() {
    let v = testdata::weights(300_000, 9);
    let parent = testdata::f32_bytes(&v);
    let raw = testdata::f32_bytes(&testdata::next_weights(&v, 10));
    let p = Parent {
        id: pid(&parent),
        bytes: &parent,
    };
    let enc = choose(&raw, 4, Some(p), 3).unwrap();
    assert_eq!(enc.transform, Transform::XorPlanes { width: 4, parent: p.id });
    let without = choose(&raw, 4, None, 3).unwrap();
    assert!(enc.bytes.len() * 100 <= without.bytes.len() * 97);
    assert_eq!(decode(&enc.bytes, raw.len() as u64, Some(&parent)).unwrap(), raw);

    // An unrelated parent does not pay.
    let other = testdata::f32_bytes(&testdata::weights(300_000, 11));
    let q = Parent {
        id: pid(&other),
        bytes: &other,
    };
    assert_eq!(
        choose(&raw, 4, Some(q), 3).unwrap().transform,
        Transform::Planes { width: 4 }
    );
    // Nor does a parent of another length: not applicable, not an error.
    let short = Parent {
        id: pid(&parent[4..]),
        bytes: &parent[4..],
    };
    assert_eq!(
        choose(&raw, 4, Some(short), 3).unwrap().transform,
        Transform::Planes { width: 4 }
    );
    // No parent, no delta.
    assert_eq!(without.transform, Transform::Planes { width: 4 });
}

#[test]
fn codecs_wrong_parent_is_an_error() {
    let v = testdata::weights(200_000, 12);
    let parent = testdata::f32_bytes(&v);
    let raw = testdata::f32_bytes(&testdata::next_weights(&v, 13));
    let t = Transform::XorPlanes {
        width: 4,
        parent: pid(&parent),
    };
    let enc = encode(&raw, t, Some(&parent), 3).unwrap();
    let n = raw.len() as u64;
    assert!(matches!(decode(&enc.bytes, n, None), Err(CodecError::ParentMissing(_))));
    assert!(matches!(
        decode(&enc.bytes, n, Some(&parent[1..])),
        Err(CodecError::ParentLength { .. })
    ));
    let mut other = parent.clone();
    other[12345] ^= 0x10;
    assert!(matches!(
        decode(&enc.bytes, n, Some(&other)),
        Err(CodecError::WrongParent(_))
    ));
    assert!(matches!(
        decode(&enc.bytes, n, Some(&raw)),
        Err(CodecError::WrongParent(_))
    ));
    // Encoding checks the parent too.
    assert!(matches!(encode(&raw, t, None, 3), Err(CodecError::ParentMissing(_))));
    assert!(matches!(
        encode(&raw, t, Some(&parent[4..]), 3),
        Err(CodecError::ParentLength { .. })
    ));
    assert!(matches!(
        encode(&raw, Transform::Planes { width: 3 }, None, 3),
        Err(CodecError::BadWidth(3))
    ));
    assert!(matches!(choose(&raw, 0, None, 3), Err(CodecError::BadWidth(0))));
}

#[test]
fn codecs_corrupt_bytes_are_errors_not_panics() {
    let mut r = Rng::new(14);
    let v = testdata::weights(70_000, 15);
    let parent = testdata::f32_bytes(&v);
    let raw = testdata::f32_bytes(&testdata::next_weights(&v, 16));
    let mut encodings = all_transforms(&raw, 4, &parent);
    let small = r.bytes(100);
    encodings.extend(all_transforms(&small, 4, &small));
    for enc in encodings {
        let n = if enc.bytes.len() < 1000 { 100 } else { raw.len() as u64 };
        let b = &enc.bytes;
        // Wrong length asked for.
        assert!(matches!(
            decode(b, n + 1, Some(&parent)),
            Err(CodecError::LengthMismatch { .. })
        ));
        assert!(decode(b, u64::MAX, Some(&parent)).is_err());
        // Truncations, extensions.
        for cut in [0, 1, 23, 24, 25, 63, 64, 65, b.len() / 2, b.len() - 1] {
            assert!(decode(&b[..cut.min(b.len() - 1)], n, Some(&parent)).is_err());
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer, n, Some(&parent)).is_err());
        // Bit flips anywhere.
        for _ in 0..40 {
            let mut bad = b.clone();
            let at = (r.next_u64() % bad.len() as u64) as usize;
            bad[at] ^= 1 << (r.next_u64() % 8);
            // A flip zstd does not read (padding bits) may decode to the
            // same bytes; never to different ones.
            if let Ok(back) = decode(&bad, n, Some(&parent)) {
                let want = if n == 100 { &small[..] } else { &raw[..] };
                assert!(back == want, "flip at {at} of {} decoded to other bytes", bad.len());
            }
        }
        // A huge raw length in the header is refused before allocating.
        let mut huge = b.clone();
        huge[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode(&huge, 1 << 60, Some(&parent)).is_err());
    }
    assert!(decode(&[], 0, None).is_err());
    assert!(inspect(&[1, 9, 1, 20]).is_err());
}

#[test]
fn codecs_planes_split_merge_and_xor_invert() {
    let mut r = Rng::new(17);
    for width in [1usize, 2, 4, 8] {
        for n in [0usize, 1, 31, 32, 33, 100, 1000] {
            let src = r.bytes(n * width);
            let mut p = vec![0u8; src.len()];
            planes::split(width, &src, &mut p);
            for i in 0..n {
                for b in 0..width {
                    assert_eq!(p[b * n + i], src[i * width + b]);
                }
            }
            let mut back = vec![0u8; src.len()];
            planes::merge(width, &p, &mut back);
            assert_eq!(back, src);
            let other = r.bytes(src.len());
            let mask = planes::byte_mask(width, 0b101);
            let mut x = vec![0u8; src.len()];
            planes::xor_into(&mut x, &src, &other, mask);
            for (j, (&xx, (&s, &o))) in x.iter().zip(src.iter().zip(other.iter())).enumerate() {
                let plane = j % width;
                assert_eq!(xx, if 0b101 >> plane & 1 == 1 { s ^ o } else { s });
            }
            planes::xor_in_place(&mut x, &other, mask);
            assert_eq!(x, src);
        }
    }
}

#[test]
fn codecs_round_trip_sparse_blocks() {
    let mut r = Rng::new(19);
    for width in [2usize, 4, 8] {
        // Half the elements zero, in runs and alone, over several blocks,
        // and a parent that equals the blob on 70% of the elements.
        let n = (3 << 20) / width + 5;
        let mut raw = r.bytes(n * width + width - 1);
        for (i, el) in raw.chunks_exact_mut(width).enumerate() {
            if r.next_u64().is_multiple_of(2) || (i / 1000).is_multiple_of(7) {
                el.fill(0);
            }
        }
        let mut parent = raw.clone();
        for el in parent.chunks_exact_mut(width) {
            if r.next_u64() % 10 < 3 {
                el[0] ^= 0x5a;
            }
        }
        round_trip(&raw, width as u8, &parent);
        let enc = encode(&raw, Transform::Planes { width: width as u8 }, None, 3).unwrap();
        assert!(enc.bytes.len() < raw.len() * 6 / 10, "sparse blocks pay");
    }
}

#[test]
fn codecs_gather_scatter_invert() {
    let mut r = Rng::new(20);
    for width in [2usize, 4, 8] {
        for n in [0usize, 1, 7, 8, 9, 1000] {
            let mut src = r.bytes(n * width);
            for el in src.chunks_exact_mut(width) {
                if r.next_u64().is_multiple_of(3) {
                    el.fill(0);
                }
            }
            let zeros = planes::zero_elements(width, &src);
            let mut bitmap = vec![0u8; n.div_ceil(8)];
            let mut compact = vec![0u8; src.len()];
            let k = planes::gather(width, &src, &mut bitmap, &mut compact);
            assert_eq!(k + zeros, n);
            let mut back = vec![1u8; src.len()];
            planes::scatter(width, &bitmap, &compact[..k * width], &mut back);
            assert_eq!(back, src);
        }
    }
}

#[test]
fn codecs_checksum_streams_and_detects_changes() {
    let mut r = Rng::new(18);
    let data = r.bytes(1000);
    let whole = checksum::of(&data);
    for cut in [0, 1, 31, 32, 33, 500, 999, 1000] {
        let mut c = checksum::Checksum::new();
        c.update(&data[..cut]);
        c.update(&data[cut..]);
        assert_eq!(c.finish(), whole);
    }
    let mut c = checksum::Checksum::new();
    for b in data.chunks(7) {
        c.update(b);
    }
    assert_eq!(c.finish(), whole);
    for at in [0, 31, 32, 999] {
        let mut d = data.clone();
        d[at] ^= 0x80;
        assert_ne!(checksum::of(&d), whole);
    }
    assert_ne!(checksum::of(&[]), checksum::of(&[0]));
    assert_ne!(checksum::of(&[0; 32]), checksum::of(&[0; 33]));
}
