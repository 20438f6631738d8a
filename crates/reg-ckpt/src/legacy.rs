//! torch's legacy (pre-zip) format, `torch.save(...,
//! _use_new_zipfile_serialization=False)`.
//!
//! Five pickles back to back (magic number, protocol version, sys_info, the
//! object, the list of storage keys), then for each key of that list an
//! 8-byte little-endian element count and the storage's raw bytes. The
//! element size of each storage comes from the storage class named in the
//! object pickle's persistent ids.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::dtype::DType;
use crate::segment::{cover, Segment};
use reg_pickle::{parse, Limits, Node, NodeId, PickleError, PickleGraph};

/// `torch.serialization.MAGIC_NUMBER`, little-endian, as `LONG1` carries it.
const MAGIC_LE: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The same number as protocol-0 `LONG` decimal text.
const MAGIC_DEC: &[u8] = b"119547037146038801333356";
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// Why a file is not a readable torch legacy checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// One of the five pickles could not be read.
    #[error("torch legacy {which} pickle at offset {offset}: {source}")]
    Pickle {
        /// Which pickle (`magic`, `protocol`, `sys_info`, `object`, `storage key list`).
        which: &'static str,
        /// Where it starts in the file.
        offset: u64,
        /// What the pickle reader said.
        source: PickleError,
    },
    /// The first pickle is not torch's magic number.
    #[error("not a torch legacy file: bad magic number")]
    Magic,
    /// The second pickle is not protocol version 1001.
    #[error("torch legacy protocol version is {0}, expected 1001")]
    Protocol(String),
    /// sys_info is not the dict torch writes.
    #[error("torch legacy sys_info: {0}")]
    SysInfo(String),
    /// The file was written on a big-endian machine.
    #[error("torch legacy file was saved big-endian (sys_info little_endian is false), which is not supported")]
    BigEndian,
    /// The storage key list is not a list of strings.
    #[error("torch legacy storage key list: {0}")]
    KeyList(String),
    /// Something is wrong with one storage.
    #[error("torch legacy storage {}: {reason}", .key.escape_debug())]
    Storage {
        /// The storage key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Bytes after the last storage.
    #[error("torch legacy file has {count} trailing bytes after the last storage (at offset {offset})")]
    TrailingBytes {
        /// Where the last storage ended.
        offset: u64,
        /// How many bytes follow.
        count: u64,
    },
}

/// One storage of a legacy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyStorage {
    /// The storage key the object pickle uses.
    pub key: String,
    /// Element type, from the storage class.
    pub dtype: DType,
    /// Number of elements.
    pub numel: u64,
    /// The raw bytes (after the 8-byte count).
    pub data: Range<u64>,
}

/// A located torch legacy checkpoint.
#[derive(Clone, Debug)]
pub struct LegacyFile {
    /// The bytes of the object pickle.
    pub object_pickle: Range<u64>,
    /// The object pickle, parsed.
    pub object: PickleGraph,
    /// The storages, in file order.
    pub storages: Vec<LegacyStorage>,
}

fn parse_at(file: &[u8], at: usize, which: &'static str) -> Result<(PickleGraph, usize), LegacyError> {
    let input = file.get(at..).unwrap_or(&[]);
    let graph = parse(input, &Limits::default()).map_err(|source| LegacyError::Pickle {
        which,
        offset: at as u64,
        source,
    })?;
    // consumed counts STOP, so it is at least 1 and at most the input.
    let end = at + graph.consumed.clamp(1, input.len().max(1));
    Ok((graph, end.min(file.len())))
}

fn is_magic(node: &Node) -> bool {
    match node {
        Node::BigInt(bytes) => {
            let mut b = bytes.as_slice();
            while let [rest @ .., 0] = b {
                b = rest;
            }
            b == MAGIC_LE || b == MAGIC_DEC || bytes.strip_suffix(b"L") == Some(MAGIC_DEC)
        }
        _ => false,
    }
}

/// True when `file` starts with a pickle of torch's legacy magic number.
pub fn looks_like(file: &[u8]) -> bool {
    file.first() == Some(&0x80) && parse_at(file, 0, "magic").is_ok_and(|(g, _)| is_magic(g.root_node()))
}

/// Describe a node briefly for error messages (never its whole contents).
fn describe(node: &Node) -> String {
    let kind = match node {
        Node::Int(i) => return i.to_string(),
        Node::Bool(b) => return if *b { "True".into() } else { "False".into() },
        Node::Str(s) if s.len() <= 64 => return format!("{s:?}"),
        Node::Str(_) => "long string",
        Node::None => "None",
        Node::BigInt(_) => "big integer",
        Node::Float(_) => "float",
        Node::Bytes(_) => "bytes object",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Set(_) | Node::FrozenSet(_) => "set",
        Node::Global { .. } => "global",
        Node::PersistentId(_) => "persistent id",
        Node::Object { .. } => "call or object",
    };
    format!("a {kind}")
}

/// Every persistent id reachable from the root, walked without recursion.
fn persistent_ids(graph: &PickleGraph) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack: Vec<NodeId> = graph.root.into_iter().collect();
    while let Some(id) = stack.pop() {
        match seen.get_mut(id.index()) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        match graph.node(id) {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => stack.extend(v.iter().rev()),
            Node::Dict(pairs) => pairs.iter().rev().for_each(|(k, v)| stack.extend([*v, *k])),
            Node::PersistentId(inner) => out.push(*inner),
            Node::Object {
                callable,
                args,
                kwargs,
                state,
                dict_items,
                list_items,
            } => {
                stack.extend(list_items.iter().rev());
                dict_items.iter().rev().for_each(|(k, v)| stack.extend([*v, *k]));
                stack.extend(state.iter().chain(kwargs));
                stack.extend([*args, *callable]);
            }
            _ => {}
        }
    }
    out
}

/// A `('storage', StorageClass, key, location, numel, ...)` persistent id:
/// its key, dtype and element count. `None` for other persistent ids.
fn storage_ref(graph: &PickleGraph, pid: NodeId) -> Option<Result<(String, DType, u64), LegacyError>> {
    let Node::Tuple(items) = graph.node(pid) else {
        return None;
    };
    let field = |i: usize| items.get(i).map(|id| graph.node(*id)).unwrap_or(&Node::None);
    if !matches!(field(0), Node::Str(s) if s == "storage") {
        return None;
    }
    let key = match field(2) {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        other => {
            return Some(Err(LegacyError::Storage {
                key: "?".into(),
                reason: format!("persistent id has {} as its key", describe(other)),
            }))
        }
    };
    let err = |reason: String| {
        Some(Err(LegacyError::Storage {
            key: key.clone(),
            reason,
        }))
    };
    if items.len() < 5 {
        return err(format!("persistent id has {} fields, expected 5 or 6", items.len()));
    }
    let dtype = match field(1) {
        Node::Global { module, name } if module.starts_with("torch") => {
            if name == "UntypedStorage" {
                DType::Uint8
            } else if let Some(d) = DType::from_storage_class(name) {
                d
            } else {
                return err(format!(
                    "unknown storage type {}.{}",
                    module.escape_debug(),
                    name.escape_debug()
                ));
            }
        }
        other => {
            return err(format!(
                "storage type is {}, not a torch storage class",
                describe(other)
            ))
        }
    };
    let numel = match field(4) {
        Node::Int(n) if *n >= 0 => *n as u64,
        other => return err(format!("element count is {}", describe(other))),
    };
    Some(Ok((key, dtype, numel)))
}

/// Read a torch legacy checkpoint and locate its storages.
pub fn read(file: &[u8]) -> Result<LegacyFile, LegacyError> {
    let (magic, at) = parse_at(file, 0, "magic")?;
    if !is_magic(magic.root_node()) {
        return Err(LegacyError::Magic);
    }
    let (protocol, at) = parse_at(file, at, "protocol")?;
    match protocol.root_node() {
        Node::Int(PROTOCOL_VERSION) => {}
        other => return Err(LegacyError::Protocol(describe(other))),
    }
    let (sys_info, at) = parse_at(file, at, "sys_info")?;
    check_sys_info(&sys_info)?;
    let object_start = at;
    let (object, at) = parse_at(file, at, "object")?;
    let object_pickle = object_start as u64..at as u64;
    let (keys, mut at) = parse_at(file, at, "storage key list")?;

    let mut refs: HashMap<String, (DType, u64)> = HashMap::new();
    for pid in persistent_ids(&object) {
        let Some(r) = storage_ref(&object, pid) else {
            continue;
        };
        let (key, dtype, numel) = r?;
        let prev = *refs.entry(key.clone()).or_insert((dtype, numel));
        if prev != (dtype, numel) {
            return Err(LegacyError::Storage {
                key,
                reason: format!(
                    "referenced as {numel} {dtype} elements and as {} {} elements",
                    prev.1, prev.0
                ),
            });
        }
    }

    let Node::List(ids) = keys.root_node() else {
        return Err(LegacyError::KeyList(format!(
            "is {}, not a list",
            describe(keys.root_node())
        )));
    };
    let mut listed = HashSet::with_capacity(ids.len());
    let mut storages = Vec::with_capacity(ids.len());
    for id in ids {
        let Node::Str(key) = keys.node(*id) else {
            return Err(LegacyError::KeyList(format!(
                "holds {}, not a string",
                describe(keys.node(*id))
            )));
        };
        let err = |reason: String| LegacyError::Storage {
            key: key.clone(),
            reason,
        };
        if !listed.insert(key.as_str()) {
            return Err(err("listed twice".into()));
        }
        let &(dtype, numel) = refs
            .get(key)
            .ok_or_else(|| err("listed but never referenced by the object pickle".into()))?;
        let count = at
            .checked_add(8)
            .and_then(|end| file.get(at..end))
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_le_bytes(a)
            })
            .ok_or_else(|| err(format!("element count at offset {at} runs past the end of the file")))?;
        if u64::try_from(count) != Ok(numel) {
            return Err(err(format!(
                "file holds {count} elements at offset {at}, the object pickle says {numel}"
            )));
        }
        let start = at + 8;
        let end = numel
            .checked_mul(dtype.size() as u64)
            .and_then(|n| n.checked_add(start as u64))
            .filter(|&end| end <= file.len() as u64)
            .ok_or_else(|| {
                err(format!(
                    "{numel} {dtype} elements at offset {start} run past the end of the file ({} bytes)",
                    file.len()
                ))
            })?;
        storages.push(LegacyStorage {
            key: key.clone(),
            dtype,
            numel,
            data: start as u64..end,
        });
        // end <= file.len(), so it fits in usize.
        at = end as usize;
    }
    if let Some(key) = refs.keys().find(|k| !listed.contains(k.as_str())) {
        return Err(LegacyError::Storage {
            key: key.clone(),
            reason: "referenced by the object pickle but missing from the storage key list".into(),
        });
    }
    if at != file.len() {
        return Err(LegacyError::TrailingBytes {
            offset: at as u64,
            count: (file.len() - at) as u64,
        });
    }
    Ok(LegacyFile {
        object_pickle,
        object,
        storages,
    })
}

fn check_sys_info(graph: &PickleGraph) -> Result<(), LegacyError> {
    let Node::Dict(pairs) = graph.root_node() else {
        return Err(LegacyError::SysInfo(format!(
            "is {}, not a dict",
            describe(graph.root_node())
        )));
    };
    let little = pairs.iter().find_map(|(k, v)| match graph.node(*k) {
        Node::Str(s) if s == "little_endian" => Some(graph.node(*v)),
        _ => None,
    });
    match little {
        Some(Node::Bool(true)) => Ok(()),
        Some(Node::Bool(false)) => Err(LegacyError::BigEndian),
        Some(other) => Err(LegacyError::SysInfo(format!("little_endian is {}", describe(other)))),
        None => Err(LegacyError::SysInfo("no little_endian entry".into())),
    }
}

impl LegacyFile {
    /// Cut a file of `file_len` bytes into one payload segment per storage
    /// (keyed by storage key) and skeleton segments for the pickles and the
    /// element counts.
    pub fn segments(&self, file_len: u64) -> Vec<Segment> {
        cover(
            file_len,
            self.storages.iter().map(|s| (s.data.clone(), s.key.clone())).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_forms() {
        assert!(is_magic(&Node::BigInt(MAGIC_LE.to_vec())));
        let mut padded = MAGIC_LE.to_vec();
        padded.push(0);
        assert!(is_magic(&Node::BigInt(padded)));
        assert!(is_magic(&Node::BigInt(MAGIC_DEC.to_vec())));
        assert!(!is_magic(&Node::Int(1001)));
        assert!(!is_magic(&Node::BigInt(vec![0x6c])));
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// A legacy file with one storage `"k"` of class `class` and `count`
    /// elements announced, `data` bytes after it.
    fn build(little: bool, class: &str, numel: u8, count: i64, data: &[u8]) -> Vec<u8> {
        let mut f = b"\x80\x02\x8a\x0a".to_vec();
        f.extend_from_slice(&MAGIC_LE);
        f.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}(");
        f.extend(unicode("little_endian"));
        f.extend_from_slice(if little { b"\x88u." } else { b"\x89u." });
        f.extend_from_slice(b"\x80\x02(");
        f.extend(unicode("storage"));
        f.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
        f.extend(unicode("k"));
        f.extend(unicode("cpu"));
        f.extend_from_slice(&[b'K', numel, b'N', b't', b'Q', b'.']);
        f.extend_from_slice(b"\x80\x02]");
        f.extend(unicode("k"));
        f.extend_from_slice(b"a.");
        f.extend_from_slice(&count.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn synthetic_files() {
        let ok = build(true, "HalfStorage", 2, 2, &[1, 2, 3, 4]);
        assert!(looks_like(&ok));
        let l = read(&ok).unwrap();
        assert_eq!(l.storages.len(), 1);
        let s = &l.storages[0];
        assert_eq!((s.key.as_str(), s.dtype, s.numel), ("k", DType::Float16, 2));
        assert_eq!(s.data, ok.len() as u64 - 4..ok.len() as u64);
        let u = read(&build(true, "UntypedStorage", 3, 3, &[1, 2, 3])).unwrap();
        assert_eq!(u.storages[0].dtype, DType::Uint8);

        let err = |f: Vec<u8>| read(&f).unwrap_err().to_string();
        assert!(matches!(
            read(&build(false, "HalfStorage", 2, 2, &[0; 4])),
            Err(LegacyError::BigEndian)
        ));
        assert!(err(build(true, "HalfStorage", 2, 2, &[0; 5])).contains("1 trailing bytes"));
        assert!(err(build(true, "HalfStorage", 2, 2, &[0; 3])).contains("past the end"));
        assert!(err(build(true, "HalfStorage", 2, 3, &[0; 6])).contains("holds 3 elements"));
        assert!(err(build(true, "HalfStorage", 2, -1, &[])).contains("holds -1 elements"));
        assert!(err(build(true, "NopeStorage", 2, 2, &[0; 4]))
            .contains("storage k: unknown storage type torch.NopeStorage"));
        for n in 0..ok.len() {
            assert!(read(&ok[..n]).is_err());
        }
    }

    #[test]
    fn not_legacy() {
        assert!(!looks_like(b""));
        assert!(!looks_like(b"\x80\x02K\x01."));
        assert!(!looks_like(b"PK\x03\x04"));
        assert!(matches!(read(b"\x80\x02K\x01."), Err(LegacyError::Magic)));
    }
}
