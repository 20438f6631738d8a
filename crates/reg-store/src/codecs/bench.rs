//! Measurements, not tests: compression ratios and single-core MB/s on
//! synthetic tensors. Run with
//! `cargo test --release -p reg-store codecs::bench -- --ignored --nocapture`.

use super::testdata::{self, Rng};
use super::*;
use std::time::Instant;

const N: usize = 2 << 20;

struct Case {
    name: &'static str,
    width: u8,
    raw: Vec<u8>,
    parent: Vec<u8>,
}

/// The tensors measured: `raw` is "next epoch", `parent` the epoch before.
fn cases() -> Vec<Case> {
    let w = testdata::weights(N, 1);
    let w2 = testdata::next_weights(&w, 2);
    let w3 = testdata::drift(&w, 0.05, 5);
    let v = testdata::exp_avg_sq(N, 3);
    let v3 = testdata::drift(&v, 0.2, 6);
    let v2 = testdata::next_exp_avg_sq(&v, 4);
    vec![
        Case {
            name: "weights f32",
            width: 4,
            raw: testdata::f32_bytes(&w2),
            parent: testdata::f32_bytes(&w),
        },
        Case {
            name: "exp_avg_sq f32",
            width: 4,
            raw: testdata::f32_bytes(&v2),
            parent: testdata::f32_bytes(&v),
        },
        Case {
            name: "weights bf16",
            width: 2,
            raw: testdata::bf16_bytes(&w2),
            parent: testdata::bf16_bytes(&w),
        },
        Case {
            name: "weights f16",
            width: 2,
            raw: testdata::f16_bytes(&w2),
            parent: testdata::f16_bytes(&w),
        },
        Case {
            name: "exp_avg_sq bf16",
            width: 2,
            raw: testdata::bf16_bytes(&v2),
            parent: testdata::bf16_bytes(&v),
        },
        Case {
            name: "weights f32, all moved",
            width: 4,
            raw: testdata::f32_bytes(&w3),
            parent: testdata::f32_bytes(&w),
        },
        Case {
            name: "exp_avg_sq f32, all moved",
            width: 4,
            raw: testdata::f32_bytes(&v3),
            parent: testdata::f32_bytes(&v),
        },
        Case {
            name: "weights f64",
            width: 8,
            raw: testdata::f64_bytes(&w2),
            parent: testdata::f64_bytes(&w),
        },
    ]
}

fn zsize(data: &[u8], level: i32) -> usize {
    zstd::bulk::compress(data, level).map(|v| v.len()).unwrap_or(usize::MAX)
}

fn split_all(raw: &[u8], w: usize) -> Vec<u8> {
    let body = raw.len() / w * w;
    let mut p = vec![0u8; body];
    planes::split(w, &raw[..body], &mut p);
    p
}

fn xor_all(raw: &[u8], parent: &[u8]) -> Vec<u8> {
    raw.iter().zip(parent).map(|(a, b)| a ^ b).collect()
}

fn entropy(data: &[u8]) -> f64 {
    let mut h = [0usize; 256];
    for &b in data {
        h[b as usize] += 1;
    }
    let n = data.len() as f64;
    h.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn ratio(raw: usize, stored: usize) -> String {
    format!("{:.3}", raw as f64 / stored as f64)
}

/// CPU seconds this thread has used (from /proc, in clock ticks of 10 ms):
/// the machine is shared, and wall time counts the other processes too.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// CPU seconds per call, over at least a second of calls; and the best
/// wall time of one call.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = cpu_secs();
    let mut calls = 0;
    let mut best = f64::MAX;
    while calls < 3 || (cpu_secs() - start < 1.0 && calls < 500) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        calls += 1;
    }
    let cpu = (cpu_secs() - start) / calls as f64;
    if cpu > 0.0 {
        cpu
    } else {
        best
    }
}

fn mbs(len: usize, secs: f64) -> String {
    format!("{:.0}", len as f64 / secs / 1e6)
}

#[test]
#[ignore]
fn codecs_bench_ratios() {
    println!("| tensor | zstd-1 | zstd-3 | planes, one zstd-3 stream | planes, zstd-3 each | encode Planes (per-plane stored/zstd-3, 1 MiB blocks) | choose, no parent | XOR all planes | choose with parent |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in cases() {
        let w = c.width as usize;
        let n = c.raw.len();
        let p = split_all(&c.raw, w);
        let e = p.len() / w;
        let each: usize = p.chunks(e).map(|x| zsize(x, 3)).sum();
        let planes = encode(&c.raw, Transform::Planes { width: c.width }, None, 3).unwrap();
        let chosen = choose(&c.raw, c.width, None, 3).unwrap();
        let id = BlobId::of(&c.parent);
        let xor = encode(
            &c.raw,
            Transform::XorPlanes {
                width: c.width,
                parent: id,
            },
            Some(&c.parent),
            3,
        )
        .unwrap();
        let par = Parent { id, bytes: &c.parent };
        let chosen_p = choose(&c.raw, c.width, Some(par), 3).unwrap();
        let mask = if chosen_p.bytes.len() > 4 { chosen_p.bytes[4] } else { 0 };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} ({}, mask {mask:#b}) |",
            c.name,
            ratio(n, zsize(&c.raw, 1)),
            ratio(n, zsize(&c.raw, 3)),
            ratio(n, zsize(&p, 3)),
            ratio(n, each),
            ratio(n, planes.bytes.len()),
            ratio(n, chosen.bytes.len()),
            chosen.transform.name(),
            ratio(n, xor.bytes.len()),
            ratio(n, chosen_p.bytes.len()),
            chosen_p.transform.name(),
        );
    }
}

#[test]
#[ignore]
fn codecs_bench_planes() {
    let levels = [-5, -1, 1, 3, 6, 9, 19];
    println!("per plane: order-0 entropy bits/byte, then ratio at zstd levels {levels:?}; plain / XOR with parent");
    for c in cases() {
        let w = c.width as usize;
        let p = split_all(&c.raw, w);
        let x = split_all(&xor_all(&c.raw, &c.parent), w);
        let e = p.len() / w;
        for (name, planes) in [("plain", &p), ("xor", &x)] {
            for (i, plane) in planes.chunks(e).enumerate() {
                let r: Vec<String> = levels.iter().map(|&l| ratio(e, zsize(plane, l))).collect();
                println!(
                    "{:16} {name:5} plane {i}: H={:.3} {}",
                    c.name,
                    entropy(plane),
                    r.join(" ")
                );
            }
        }
    }
}

#[test]
#[ignore]
fn codecs_bench_speed() {
    for c in cases() {
        let n = c.raw.len();
        let id = BlobId::of(&c.parent);
        let par = Parent { id, bytes: &c.parent };
        let mut line = format!("{:16}", c.name);
        for level in [1, 3] {
            let mut enc = None;
            let t = time(|| enc = Some(choose(&c.raw, c.width, None, level).unwrap()));
            let enc = enc.unwrap();
            let d = time(|| {
                std::hint::black_box(decode(&enc.bytes, n as u64, None).unwrap());
            });
            let mut encp = None;
            let tp = time(|| encp = Some(choose(&c.raw, c.width, Some(par), level).unwrap()));
            let encp = encp.unwrap();
            let dp = time(|| {
                std::hint::black_box(decode(&encp.bytes, n as u64, Some(&c.parent)).unwrap());
            });
            line += &format!(
                " | L{level} choose: enc {} dec {} MB/s ({}) ; with parent: enc {} dec {} MB/s ({} {})",
                mbs(n, t),
                mbs(n, d),
                ratio(n, enc.bytes.len()),
                mbs(n, tp),
                mbs(n, dp),
                ratio(n, encp.bytes.len()),
                encp.transform.name()
            );
        }
        let z = time(|| {
            std::hint::black_box(zstd::bulk::compress(&c.raw, 3).unwrap());
        });
        let zc = zstd::bulk::compress(&c.raw, 3).unwrap();
        let zd = time(|| {
            std::hint::black_box(zstd::bulk::decompress(&zc, n).unwrap());
        });
        line += &format!(" | zstd-3 alone: enc {} dec {} MB/s", mbs(n, z), mbs(n, zd));
        println!("{line}");
    }
}

#[test]
#[ignore]
fn codecs_bench_kernels() {
    let mut r = Rng::new(5);
    let raw = r.bytes(N * 4);
    let mut out = vec![0u8; raw.len()];
    for w in [2usize, 4, 8] {
        let s = time(|| planes::split(w, &raw, &mut out));
        let m = time(|| planes::merge(w, &raw, &mut out));
        println!(
            "width {w}: split {} MB/s, merge {} MB/s",
            mbs(raw.len(), s),
            mbs(raw.len(), m)
        );
    }
    let mut sparse = raw.clone();
    for el in sparse.chunks_exact_mut(4) {
        if r.next_u64() % 10 < 7 {
            el.fill(0);
        }
    }
    let mut bitmap = vec![0u8; (sparse.len() / 4).div_ceil(8)];
    let mut k = 0;
    let g = time(|| k = planes::gather(4, &sparse, &mut bitmap, &mut out));
    let compact = out[..k * 4].to_vec();
    let mut back = vec![0u8; sparse.len()];
    let sc = time(|| planes::scatter(4, &bitmap, &compact, &mut back));
    assert!(back == sparse);
    let z = time(|| {
        std::hint::black_box(planes::zero_elements(4, &sparse));
    });
    println!(
        "width 4, 70% zero: gather {} MB/s, scatter {} MB/s, count zeros {} MB/s",
        mbs(raw.len(), g),
        mbs(raw.len(), sc),
        mbs(raw.len(), z)
    );
    let x = time(|| planes::xor_into(&mut out, &raw, &raw, !0));
    let c = time(|| {
        std::hint::black_box(checksum::of(&raw));
    });
    println!("xor {} MB/s, checksum {} MB/s", mbs(raw.len(), x), mbs(raw.len(), c));
}

/// zstd with explicit parameters on top of a level.
fn zcfg(data: &[u8], level: i32, params: &[zstd::zstd_safe::CParameter]) -> usize {
    let mut c = zstd::bulk::Compressor::new(level).unwrap();
    for p in params {
        c.set_parameter(*p).unwrap();
    }
    c.compress(data).unwrap().len()
}

#[test]
#[ignore]
fn codecs_bench_ideas() {
    use zstd::zstd_safe::{CParameter as P, Strategy};
    let lit = [
        P::Strategy(Strategy::ZSTD_fast),
        P::MinMatch(7),
        P::WindowLog(10),
        P::HashLog(6),
        P::ChainLog(6),
        P::SearchLog(1),
    ];
    let mm7 = [P::MinMatch(7)];
    for c in cases() {
        let w = c.width as usize;
        let p = split_all(&c.raw, w);
        let e = p.len() / w;
        // The most significant plane (sign and exponent): level 1, 3, a
        // literals-only setting, level 1 with min match 7; speed of each.
        let top = &p[(w - 1) * e..];
        let mut line = format!(
            "{:16} top plane H={:.3} bound {:.3}:",
            c.name,
            entropy(top),
            8.0 / entropy(top)
        );
        for (name, level, params) in [
            ("l1", 1, &[][..]),
            ("l3", 3, &[][..]),
            ("lit", 1, &lit[..]),
            ("l1mm7", 1, &mm7[..]),
            ("l3mm7", 3, &mm7[..]),
        ] {
            let z = zcfg(top, level, params);
            let t = time(|| {
                std::hint::black_box(zcfg(top, level, params));
            });
            line += &format!(" {name} {} ({} MB/s)", ratio(e, z), mbs(e, t));
        }
        println!("{line}");
        // Rotating each element left by one bit puts the whole exponent in
        // the top byte and the sign at the bottom.
        let rot: Vec<u8> = match w {
            4 => c
                .raw
                .chunks_exact(4)
                .flat_map(|b| {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                        .rotate_left(1)
                        .to_le_bytes()
                })
                .collect(),
            2 => c
                .raw
                .chunks_exact(2)
                .flat_map(|b| u16::from_le_bytes([b[0], b[1]]).rotate_left(1).to_le_bytes())
                .collect(),
            _ => c.raw.clone(),
        };
        let best = |planes: &[u8]| -> usize {
            planes
                .chunks(e)
                .map(|x| x.len().min(zsize(x, 1)).min(zsize(x, 3)))
                .sum()
        };
        let rp = split_all(&rot, w);
        println!(
            "{:16} planes best(stored, l1, l3): {}  rotated by one bit: {}",
            c.name,
            ratio(c.raw.len(), best(&p)),
            ratio(c.raw.len(), best(&rp))
        );
        // Sparse XOR: a bitmap of the elements that changed, then the planes
        // of the changed elements only.
        let x = xor_all(&c.raw, &c.parent);
        let mut bitmap = vec![0u8; e.div_ceil(8)];
        let mut changed = Vec::new();
        for (i, el) in x.chunks_exact(w).enumerate() {
            if el.iter().any(|&b| b != 0) {
                bitmap[i / 8] |= 1 << (i % 8);
                changed.extend_from_slice(el);
            }
        }
        let cp = split_all(&changed, w);
        let ce = cp.len() / w;
        let sparse = bitmap.len().min(zsize(&bitmap, 1))
            + cp.chunks(ce.max(1))
                .map(|x| x.len().min(zsize(x, 1)).min(zsize(x, 3)))
                .sum::<usize>();
        let xp = split_all(&x, w);
        println!(
            "{:16} xor planes best: {}  sparse xor (bitmap + changed elements' planes): {}",
            c.name,
            ratio(c.raw.len(), best(&xp)),
            ratio(c.raw.len(), sparse)
        );
    }
}

/// Real tensors: `REG_CODEC_DATA` names a directory of pairs
/// `NAME.parent.f32` / `NAME.f32` (raw little-endian float32, the same
/// tensor at two epochs; scripts/bench_compress/dump_tensors.py writes
/// them from a training series). Prints ratio and single-core MB/s of
/// `choose` without and with the parent, and of decoding.
#[test]
#[ignore]
fn codecs_bench_real() {
    let Some(dir) = std::env::var_os("REG_CODEC_DATA") else {
        println!("REG_CODEC_DATA is not set: nothing to measure");
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".f32") && !n.ends_with(".parent.f32"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    println!(
        "| tensor | MB | choose: ratio, enc, dec MB/s | with parent: ratio, enc, dec MB/s, transform | zstd -3 alone: ratio, enc, dec MB/s |"
    );
    println!("|---|---:|---|---|---|");
    let (mut raw_total, mut plain_total, mut xor_total) = (0usize, 0usize, 0usize);
    let (mut enc_s, mut dec_s, mut xenc_s, mut xdec_s) = (0.0, 0.0, 0.0, 0.0);
    for name in names {
        let dirp = std::path::Path::new(&dir);
        let raw = std::fs::read(dirp.join(&name)).unwrap();
        // Without a parent file, the tensor is measured against itself
        // shifted by one element: no gain, so `choose` keeps plain planes.
        let parent = std::fs::read(dirp.join(name.replace(".f32", ".parent.f32"))).unwrap_or_else(|_| {
            let mut p = raw.clone();
            p.rotate_left(4);
            p
        });
        let n = raw.len();
        let mut enc = None;
        let t = time(|| enc = Some(choose(&raw, 4, None, 3).unwrap()));
        let enc = enc.unwrap();
        let d = time(|| {
            std::hint::black_box(decode(&enc.bytes, n as u64, None).unwrap());
        });
        let par = Parent {
            id: BlobId::of(&parent),
            bytes: &parent,
        };
        let mut encp = None;
        let tp = time(|| encp = Some(choose(&raw, 4, Some(par), 3).unwrap()));
        let encp = encp.unwrap();
        let dp = time(|| {
            std::hint::black_box(decode(&encp.bytes, n as u64, Some(&parent)).unwrap());
        });
        let z = time(|| {
            std::hint::black_box(zstd::bulk::compress(&raw, 3).unwrap());
        });
        let zc = zstd::bulk::compress(&raw, 3).unwrap();
        let zd = time(|| {
            std::hint::black_box(zstd::bulk::decompress(&zc, n).unwrap());
        });
        raw_total += n;
        plain_total += enc.bytes.len();
        xor_total += encp.bytes.len();
        enc_s += t;
        dec_s += d;
        xenc_s += tp;
        xdec_s += dp;
        println!(
            "| {name} | {:.1} | {} {} {} | {} {} {} {} | {} {} {} |",
            n as f64 / 1e6,
            ratio(n, enc.bytes.len()),
            mbs(n, t),
            mbs(n, d),
            ratio(n, encp.bytes.len()),
            mbs(n, tp),
            mbs(n, dp),
            encp.transform.name(),
            ratio(n, zc.len()),
            mbs(n, z),
            mbs(n, zd)
        );
    }
    println!(
        "| all | {:.1} | {} {} {} | {} {} {} | |",
        raw_total as f64 / 1e6,
        ratio(raw_total, plain_total),
        mbs(raw_total, enc_s),
        mbs(raw_total, dec_s),
        ratio(raw_total, xor_total),
        mbs(raw_total, xenc_s),
        mbs(raw_total, xdec_s)
    );
}

/// One pass of `choose` (without and with the parent) and `decode` over
/// the `REG_CODEC_DATA` tensors, for an instruction count under
/// `valgrind --tool=callgrind` (repeatable where timings on a shared
/// machine are not).
#[test]
#[ignore]
fn codecs_count_real() {
    let Some(dir) = std::env::var_os("REG_CODEC_DATA") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let mut ws = Workspace::new();
    let mut out = Vec::new();
    for name in ["w", "m", "v"] {
        let (Ok(raw), Ok(parent)) = (
            std::fs::read(dir.join(format!("{name}.f32"))),
            std::fs::read(dir.join(format!("{name}.parent.f32"))),
        ) else {
            continue;
        };
        out.resize(raw.len(), 0);
        let enc = choose_in(&mut ws, &raw, 4, None, 3).unwrap();
        decode_into_in(&mut ws, &enc.bytes, None, &mut out).unwrap();
        let p = Parent {
            id: BlobId::of(&parent),
            bytes: &parent,
        };
        let encp = choose_in(&mut ws, &raw, 4, Some(p), 3).unwrap();
        decode_into_in(&mut ws, &encp.bytes, Some(&parent), &mut out).unwrap();
        std::hint::black_box(&out);
    }
}
