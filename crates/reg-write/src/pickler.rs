//! The protocol-2 opcodes of [`to_pickle`], written as
//! CPython's pickler writes them.

use std::collections::HashMap;

use super::emit::{check_tensor, storage_class, Emit, MetaRef, TensorRef};
use super::WriteError;

/// Pickle `root` (a value tree, [`Emit`]) at protocol 2.
pub fn to_pickle(root: &Emit) -> Result<Vec<u8>, WriteError> {
    pickle(root)
}
use reg_ckpt::dtype::DType;

const MARK: u8 = b'(';
const EMPTY_TUPLE: u8 = b')';
const STOP: u8 = b'.';
const BINFLOAT: u8 = b'G';
const BUILD: u8 = b'b';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const BINUNICODE: u8 = b'X';
const EMPTY_LIST: u8 = b']';
const APPEND: u8 = b'a';
const GLOBAL: u8 = b'c';
const APPENDS: u8 = b'e';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_DICT: u8 = b'}';
const PROTO: u8 = 0x80;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;

/// Items per `SETITEMS` / `APPENDS` batch, as CPython's pickler.
const BATCH: usize = 1000;

/// One step of emission.
enum Work<'a> {
    Value(&'a Emit),
    Op(u8),
}

#[derive(Default)]
struct Pickler {
    out: Vec<u8>,
    memo: HashMap<String, u32>,
    /// Storage key -> (dtype, numel) of its first use.
    storages: HashMap<String, (DType, u64)>,
}

/// Pickle `root` at protocol 2 with an explicit work stack.
pub(super) fn pickle(root: &Emit) -> Result<Vec<u8>, WriteError> {
    let mut p = Pickler::default();
    p.out.extend_from_slice(&[PROTO, 2]);
    let mut work = vec![Work::Value(root)];
    while let Some(w) = work.pop() {
        match w {
            Work::Op(op) => p.out.push(op),
            Work::Value(v) => p.value(v, &mut work)?,
        }
    }
    p.out.push(STOP);
    Ok(p.out)
}

/// Push `items` so they are emitted in order.
fn push_in_order<'a>(work: &mut Vec<Work<'a>>, items: Vec<Work<'a>>) {
    work.extend(items.into_iter().rev());
}

fn batched<'a, T>(items: &'a [T], several: u8, one: u8, each: impl Fn(&'a T, &mut Vec<Work<'a>>)) -> Vec<Work<'a>> {
    let mut seq = Vec::new();
    for chunk in items.chunks(BATCH) {
        if chunk.len() > 1 {
            seq.push(Work::Op(MARK));
        }
        for item in chunk {
            each(item, &mut seq);
        }
        seq.push(Work::Op(if chunk.len() > 1 { several } else { one }));
    }
    seq
}

fn pairs<'a>(items: &'a [(Emit, Emit)]) -> Vec<Work<'a>> {
    batched(items, SETITEMS, SETITEM, |(k, v), seq| {
        seq.push(Work::Value(k));
        seq.push(Work::Value(v));
    })
}

impl Pickler {
    fn value<'a>(&mut self, v: &'a Emit, work: &mut Vec<Work<'a>>) -> Result<(), WriteError> {
        match v {
            Emit::None => self.out.push(NONE),
            Emit::Bool(b) => self.out.push(if *b { NEWTRUE } else { NEWFALSE }),
            Emit::Int(i) => self.int(i128::from(*i)),
            Emit::BigInt(bytes) => self.long_bytes(bytes),
            Emit::Float(f) => {
                self.out.push(BINFLOAT);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Emit::Str(s) => self.str(s)?,
            Emit::List(items) => {
                self.out.push(EMPTY_LIST);
                push_in_order(work, batched(items, APPENDS, APPEND, |i, seq| seq.push(Work::Value(i))));
            }
            Emit::Tuple(items) => {
                let mut seq: Vec<Work<'a>> = Vec::with_capacity(items.len() + 2);
                match items.len() {
                    0 => seq.push(Work::Op(EMPTY_TUPLE)),
                    n @ 1..=3 => {
                        seq.extend(items.iter().map(Work::Value));
                        seq.push(Work::Op([TUPLE1, TUPLE2, TUPLE3][n - 1]));
                    }
                    _ => {
                        seq.push(Work::Op(MARK));
                        seq.extend(items.iter().map(Work::Value));
                        seq.push(Work::Op(TUPLE));
                    }
                }
                push_in_order(work, seq);
            }
            Emit::Dict(items) => {
                self.out.push(EMPTY_DICT);
                push_in_order(work, pairs(items));
            }
            Emit::OrderedDict(items) => {
                // CPython: OrderedDict.__reduce__ is (cls, (), None, None, items).
                self.global("collections", "OrderedDict")?;
                self.out.extend_from_slice(&[EMPTY_TUPLE, REDUCE]);
                push_in_order(work, pairs(items));
            }
            Emit::Tensor(t) => self.tensor(t)?,
            Emit::MetaTensor(t) => self.meta_tensor(t)?,
            Emit::Bytes(b) => {
                // CPython at protocol 2: codecs.encode(str(b, 'latin1'), 'latin1').
                self.global("_codecs", "encode")?;
                let text: String = b.iter().map(|&c| char::from(c)).collect();
                self.str(&text)?;
                self.str("latin1")?;
                self.out.extend_from_slice(&[TUPLE2, REDUCE]);
            }
            Emit::Complex(re, im) => {
                self.global("__builtin__", "complex")?;
                for part in [re, im] {
                    self.out.push(BINFLOAT);
                    self.out.extend_from_slice(&part.to_be_bytes());
                }
                self.out.extend_from_slice(&[TUPLE2, REDUCE]);
            }
            Emit::Built { value, state } => {
                push_in_order(work, vec![Work::Value(value), Work::Value(state), Work::Op(BUILD)]);
            }
        }
        Ok(())
    }

    /// An int the way CPython's `save_long` writes it at protocol 2.
    fn int(&mut self, v: i128) {
        if (0..=0xff).contains(&v) {
            self.out.extend_from_slice(&[BININT1, v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.out.push(BININT2);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if let Ok(small) = i32::try_from(v) {
            self.out.push(BININT);
            self.out.extend_from_slice(&small.to_le_bytes());
        } else {
            self.long_bytes(&minimal_twos_complement(v));
        }
    }

    fn long_bytes(&mut self, bytes: &[u8]) {
        if let Ok(n) = u8::try_from(bytes.len()) {
            self.out.extend_from_slice(&[LONG1, n]);
        } else {
            self.out.push(LONG4);
            // An Emit::BigInt beyond 2^31 bytes is not a real value.
            self.out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(bytes);
    }

    fn put(&mut self, key: String) {
        let index = self.memo.len() as u32;
        if let Ok(small) = u8::try_from(index) {
            self.out.extend_from_slice(&[BINPUT, small]);
        } else {
            self.out.push(LONG_BINPUT);
            self.out.extend_from_slice(&index.to_le_bytes());
        }
        self.memo.insert(key, index);
    }

    /// Emit a memo hit for `key`; false when it is not memoized yet.
    fn get(&mut self, key: &str) -> bool {
        let Some(&index) = self.memo.get(key) else {
            return false;
        };
        if let Ok(small) = u8::try_from(index) {
            self.out.extend_from_slice(&[BINGET, small]);
        } else {
            self.out.push(LONG_BINGET);
            self.out.extend_from_slice(&index.to_le_bytes());
        }
        true
    }

    fn str(&mut self, s: &str) -> Result<(), WriteError> {
        // Memo keys: strings as "s" + text, globals as "g" + module + "\n" + name.
        let key = format!("s{s}");
        if self.get(&key) {
            return Ok(());
        }
        let len = u32::try_from(s.len()).map_err(|_| WriteError::TooLong {
            what: "a pickled string".into(),
            len: s.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        self.out.push(BINUNICODE);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self.put(key);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), WriteError> {
        let key = format!("g{module}\n{name}");
        if self.get(&key) {
            return Ok(());
        }
        self.out.push(GLOBAL);
        for part in [module, name] {
            self.out.extend_from_slice(part.as_bytes());
            self.out.push(b'\n');
        }
        self.put(key);
        Ok(())
    }

    /// A tuple of non-negative ints (a size or stride).
    fn dims(&mut self, dims: &[u64]) {
        if dims.len() > 3 {
            self.out.push(MARK);
        }
        for d in dims {
            self.int(i128::from(*d));
        }
        self.out.push(match dims.len() {
            0 => EMPTY_TUPLE,
            1 => TUPLE1,
            2 => TUPLE2,
            3 => TUPLE3,
            _ => TUPLE,
        });
    }

    fn tensor(&mut self, t: &TensorRef) -> Result<(), WriteError> {
        check_tensor(t)?;
        let size = t.dtype.size() as u64;
        let nbytes = t.storage_numel.saturating_mul(size);
        match self.storages.get(&t.storage_key) {
            Some(&(dtype, numel)) if dtype != t.dtype || numel != t.storage_numel => {
                return Err(WriteError::StorageConflict {
                    key: t.storage_key.clone(),
                    first: format!("{dtype} x {numel}"),
                    second: format!("{} x {}", t.dtype, t.storage_numel),
                });
            }
            Some(_) => {}
            None => {
                self.storages.insert(t.storage_key.clone(), (t.dtype, t.storage_numel));
            }
        }
        let class = storage_class(t.dtype);
        let v3 = class.is_none();
        self.global(
            "torch._utils",
            if v3 { "_rebuild_tensor_v3" } else { "_rebuild_tensor_v2" },
        )?;
        self.out.push(MARK);
        self.out.push(MARK);
        self.str("storage")?;
        match class {
            Some(c) => self.global("torch", c)?,
            None => self.global("torch.storage", "UntypedStorage")?,
        }
        self.str(&t.storage_key)?;
        self.str("cpu")?;
        self.int(i128::from(if v3 { nbytes } else { t.storage_numel }));
        self.out.extend_from_slice(&[TUPLE, BINPERSID]);
        self.int(i128::from(t.offset));
        self.dims(&t.shape);
        self.dims(&t.stride);
        self.out.push(if t.requires_grad { NEWTRUE } else { NEWFALSE });
        self.global("collections", "OrderedDict")?;
        self.out.extend_from_slice(&[EMPTY_TUPLE, REDUCE]);
        if v3 {
            self.global("torch", t.dtype.name())?;
        }
        self.out.extend_from_slice(&[TUPLE, REDUCE]);
        Ok(())
    }
}

impl Pickler {
    /// `_rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)`.
    fn meta_tensor(&mut self, t: &MetaRef) -> Result<(), WriteError> {
        if t.shape.len() != t.stride.len() {
            return Err(WriteError::BadTensor {
                tensor: "on the meta device".into(),
                reason: format!("shape has {} dimensions, stride {}", t.shape.len(), t.stride.len()),
            });
        }
        self.global("torch._utils", "_rebuild_meta_tensor_no_storage")?;
        self.out.push(MARK);
        self.global("torch", t.dtype.name())?;
        self.dims(&t.shape);
        self.dims(&t.stride);
        self.out.push(if t.requires_grad { NEWTRUE } else { NEWFALSE });
        self.out.extend_from_slice(&[TUPLE, REDUCE]);
        Ok(())
    }
}

/// CPython's `encode_long`: the shortest little-endian two's complement.
pub(crate) fn minimal_twos_complement(v: i128) -> Vec<u8> {
    if v == 0 {
        return Vec::new();
    }
    let mut bytes = v.to_le_bytes().to_vec();
    while bytes.len() > 1 {
        let last = bytes[bytes.len() - 1];
        let sign_of_prev = bytes[bytes.len() - 2] & 0x80;
        if (last == 0 && sign_of_prev == 0) || (last == 0xff && sign_of_prev != 0) {
            bytes.pop();
        } else {
            break;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_pickle::{parse, Limits, Node};

    fn round(v: &Emit) -> reg_pickle::PickleGraph {
        parse(&pickle(v).unwrap(), &Limits::default()).unwrap()
    }

    #[test]
    fn ints_like_cpython() {
        let cases: &[(i64, &[u8])] = &[
            (0, b"K\x00"),
            (255, b"K\xff"),
            (256, b"M\x00\x01"),
            (65535, b"M\xff\xff"),
            (65536, b"J\x00\x00\x01\x00"),
            (-1, b"J\xff\xff\xff\xff"),
            (i64::from(i32::MAX), b"J\xff\xff\xff\x7f"),
            (1 << 31, b"\x8a\x05\x00\x00\x00\x80\x00"),
            (-(1 << 31) - 1, b"\x8a\x05\xff\xff\xff\x7f\xff"),
            (i64::MAX, b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"),
            (i64::MIN, b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"),
        ];
        for (v, want) in cases {
            let p = pickle(&Emit::Int(*v)).unwrap();
            assert_eq!(&p[2..p.len() - 1], *want, "{v}");
            assert_eq!(round(&Emit::Int(*v)).root_node(), &Node::Int(*v));
        }
    }

    #[test]
    fn containers_and_batches() {
        let big: Vec<(Emit, Emit)> = (0..2500).map(|i| (Emit::Int(i), Emit::Str(format!("v{i}")))).collect();
        let tree = Emit::Dict(vec![
            (Emit::Str("d".into()), Emit::Dict(big.clone())),
            (Emit::Str("o".into()), Emit::OrderedDict(big[..1].to_vec())),
            (Emit::Str("l".into()), Emit::List((0..1001).map(Emit::Int).collect())),
            (
                Emit::Str("t".into()),
                Emit::Tuple((0..5).map(|i| Emit::Float(f64::from(i) / 3.0)).collect()),
            ),
            (
                Emit::Int(7),
                Emit::Tuple(vec![Emit::None, Emit::Bool(true), Emit::Bool(false)]),
            ),
            (Emit::Str("nan".into()), Emit::Float(f64::NAN)),
            (Emit::Str("big".into()), Emit::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1])),
            // A memo hit past index 255 (LONG_BINGET).
            (Emit::Str("again".into()), Emit::Str("v2400".into())),
        ]);
        let p = pickle(&tree).unwrap();
        assert!(p.iter().filter(|b| **b == SETITEMS).count() >= 3);
        let g = round(&tree);
        let Node::Dict(top) = g.root_node() else { panic!() };
        assert_eq!(top.len(), 8);
        assert_eq!(g.node(top[7].1), &Node::Str("v2400".into()));
        assert!(p.windows(2).any(|w| w[0] == LONG_BINGET));
        let Node::Dict(d) = g.node(top[0].1) else { panic!() };
        assert_eq!(d.len(), 2500);
        assert_eq!(g.node(d[2499].1), &Node::Str("v2499".into()));
        let Node::Object { dict_items, .. } = g.node(top[1].1) else {
            panic!()
        };
        assert_eq!(dict_items.len(), 1);
        let Node::List(l) = g.node(top[2].1) else { panic!() };
        assert_eq!(l.len(), 1001);
        assert!(matches!(g.node(top[5].1), Node::Float(f) if f.is_nan()));
        assert_eq!(g.node(top[6].1), &Node::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1]));
    }
}
