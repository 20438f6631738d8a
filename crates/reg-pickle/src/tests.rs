use super::*;

mod literals;
use literals::*;

fn ok(input: &[u8]) -> PickleGraph {
    match parse(input, &Limits::default()) {
        Ok(graph) => graph,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn err(input: &[u8]) -> PickleError {
    match parse(input, &Limits::default()) {
        Ok(graph) => panic!("parsed, expected an error: {}", show(&graph)),
        Err(e) => e,
    }
}

fn err_with(input: &[u8], limits: &Limits) -> PickleError {
    match parse(input, limits) {
        Ok(graph) => panic!("parsed, expected an error: {}", show(&graph)),
        Err(e) => e,
    }
}

fn root(graph: &PickleGraph) -> NodeId {
    graph.root.expect("root")
}

fn show(graph: &PickleGraph) -> String {
    graph.repr(root(graph), 10_000)
}

/// The rendering of a whole pickle.
fn render(input: &[u8]) -> String {
    show(&ok(input))
}

fn items(graph: &PickleGraph, id: NodeId) -> &[NodeId] {
    match graph.node(id) {
        Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => v,
        other => panic!("not a sequence: {other:?}"),
    }
}

#[test]
fn literals_are_intact() {
    for (bytes, len) in LENGTHS {
        assert_eq!(bytes.len(), *len);
    }
}

// ----- Scalars ---------------------------------------------------------------

#[test]
fn scalars_every_protocol() {
    let all = [SCALARS_P0, SCALARS_P1, SCALARS_P2, SCALARS_P3, SCALARS_P4, SCALARS_P5];
    for (protocol, input) in all.iter().enumerate() {
        let graph = ok(input);
        assert_eq!(graph.consumed, input.len(), "protocol {protocol}");
        let want = if protocol >= 2 { protocol } else { 0 };
        assert_eq!(usize::from(graph.protocol), want);
        let v: Vec<&Node> = items(&graph, root(&graph)).iter().map(|&i| graph.node(i)).collect();
        assert_eq!(v.len(), 25);
        let expect_ints = [
            Node::None,
            Node::Bool(true),
            Node::Bool(false),
            Node::Int(0),
            Node::Int(1),
            Node::Int(-1),
            Node::Int(255),
            Node::Int(256),
            Node::Int(65535),
            Node::Int(65536),
            Node::Int(-(1 << 31)),
            Node::Int((1 << 31) - 1),
            Node::Int(1 << 31),
            Node::Int(i64::MAX),
            Node::Int(i64::MIN),
        ];
        for (i, want) in expect_ints.iter().enumerate() {
            assert_eq!(v[i], want, "protocol {protocol} item {i}");
        }
        // 2**100 and -2**70: decimal text from protocol-0 LONG, LE bytes after.
        if protocol < 2 {
            assert_eq!(*v[15], Node::BigInt(b"1267650600228229401496703205376".to_vec()));
            assert_eq!(*v[16], Node::BigInt(b"-1180591620717411303424".to_vec()));
        } else {
            let mut big = vec![0u8; 12];
            big.push(0x10);
            assert_eq!(*v[15], Node::BigInt(big));
            let mut neg = vec![0u8; 8];
            neg.push(0xc0);
            assert_eq!(*v[16], Node::BigInt(neg));
        }
        assert_eq!(*v[17], Node::Float(1.5));
        match v[18] {
            Node::Float(z) => assert!(*z == 0.0 && z.is_sign_negative()),
            other => panic!("{other:?}"),
        }
        assert_eq!(*v[19], Node::Float(f64::INFINITY));
        assert_eq!(*v[20], Node::Float(f64::NEG_INFINITY));
        assert!(matches!(v[21], Node::Float(f) if f.is_nan()));
        assert_eq!(*v[22], Node::Str("h\u{e9}llo\n\\ \u{20ac}\u{1F600}".into()));
        let bytes = items(&graph, root(&graph))[23];
        if protocol >= 3 {
            assert_eq!(*v[23], Node::Bytes(b"by\x00tes".to_vec()));
        } else {
            // Protocols 0-2 pickle bytes as `_codecs.encode(str, "latin1")`.
            assert_eq!(graph.repr(bytes, 1000), r#"obj(_codecs.encode, ("by\0tes", "latin1"))"#);
        }
        assert_eq!(*v[24], Node::Str(String::new()));
    }
}

#[test]
fn protocol0_text_opcodes() {
    // INT beyond i64, LONG with and without L, bools.
    assert_eq!(
        render(b"I99999999999999999999\n."),
        r#"bigint(b"99999999999999999999")"#
    );
    assert_eq!(render(b"L-0042L\n."), "-42");
    assert_eq!(render(b"L-0042\n."), "-42");
    assert_eq!(render(b"I01\n."), "True");
    assert_eq!(render(b"I00\n."), "False");
    assert_eq!(render(b"I000\n."), "0");
    assert_eq!(render(b"F1e+100\n."), "1e100");
    assert_eq!(render(b"Fnan\n."), "nan");
    // Python 2 STRING: quoted repr with escapes.
    assert_eq!(render(b"S'a\\nb\\x41\\'q\\\\'\n."), r#""a\nbA'q\\""#);
    assert_eq!(render(b"S\"it's\"\n."), r#""it's""#);
    assert_eq!(render(b"S'\\303\\251\\t\\0'\n."), "\"\u{e9}\\t\\0\"");
    assert_eq!(render(b"S'\\xe9'\n."), "\"\u{e9}\""); // Latin-1 fallback
    assert_eq!(render(b"S'a\\qb'\n."), r#""a\\qb""#); // unknown escape kept
                                                      // UNICODE: raw-unicode-escape.
    assert_eq!(render(b"V\\\\u0041\n."), r#""\\\\u0041""#); // even backslashes
    assert_eq!(render(b"V\\\\\\u0041\n."), r#""\\\\A""#);
    assert_eq!(render(b"V\\ud83d\\ude00\n."), "\"\u{1F600}\"");
    assert_eq!(render(b"V\\ud800x\n."), "\"\u{FFFD}x\"");
    assert_eq!(render(b"V\xe9\n."), "\"\u{e9}\"");
    // Short binary strings (Python 2 `str`).
    assert_eq!(render(b"U\x03abcT\x03\x00\x00\x00xyz\x86."), r#"("abc", "xyz")"#);
    // Text memo keys.
    let graph = ok(b"((lp0\ng0\nt.");
    let t = items(&graph, root(&graph));
    assert_eq!(t[0], t[1]);
}

#[test]
fn long1_edges() {
    assert_eq!(render(b"\x8a\x00."), "0");
    assert_eq!(render(b"\x8a\x01\xff."), "-1");
    assert_eq!(render(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xff."), "-1");
    assert_eq!(
        render(b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80."),
        i64::MIN.to_string()
    );
    // 2**63: nine bytes, does not fit.
    assert_eq!(
        render(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00."),
        r#"bigint(b"\x00\x00\x00\x00\x00\x00\x00\x80\x00")"#
    );
    assert_eq!(render(b"\x8b\x01\x00\x00\x00\x7f."), "127");
}

// ----- Containers and sharing ---------------------------------------------

#[test]
fn nested_containers_every_protocol() {
    let all = [NESTED_P0, NESTED_P1, NESTED_P2, NESTED_P3, NESTED_P4, NESTED_P5];
    for input in all {
        assert_eq!(render(input), r#"{"a": [1, (2, 3), {"b": None}], "c": ((),), "e": []}"#);
    }
}

#[test]
fn memo_shares_identity() {
    let all = [SHARED_P0, SHARED_P1, SHARED_P2, SHARED_P3, SHARED_P4, SHARED_P5];
    for input in all {
        let graph = ok(input);
        let t = items(&graph, root(&graph));
        assert_eq!(t.len(), 4);
        assert_eq!(t[0], t[1], "same list twice");
        assert_eq!(t[2], t[3], "same dict twice");
        // The dict was memoized empty and filled afterwards: the memo hit sees
        // the filled node.
        assert_eq!(graph.repr(t[3], 100), r#"{"k": [1]}"#);
        assert_eq!(show(&graph), r#"([1, 2], [1, 2], {"k": [1]}, {"k": [1]})"#);
    }
    // LONG_BINPUT / LONG_BINGET with the largest key, DUP.
    let graph = ok(b"]r\xff\xff\xff\xffj\xff\xff\xff\xff\x86.");
    let t = items(&graph, root(&graph));
    assert_eq!(t[0], t[1]);
    let graph = ok(b"]2\x86.");
    let t = items(&graph, root(&graph));
    assert_eq!(t[0], t[1]);
    // A list containing itself renders finitely.
    let graph = ok(b"]\x94h\x00a.");
    assert!(show(&graph).ends_with('…'));
}

#[test]
fn ordered_dict_reduce_setitems() {
    let graph = ok(ORDERED_P2);
    assert_eq!(
        show(&graph),
        r#"obj(collections.OrderedDict, (), items={"x": 1, "y": 2})"#
    );
    assert_eq!(
        graph.dict_get(root(&graph), "y").map(|id| graph.node(id)),
        Some(&Node::Int(2))
    );
}

#[test]
fn namespace_newobj_build() {
    let state = r#"{"lr": 0.1, "name": "mlp"}"#;
    assert_eq!(
        render(NAMESPACE_P2),
        format!("obj(argparse.Namespace, (), state={state})")
    );
    // Protocols 0 and 1: copyreg._reconstructor + REDUCE, then BUILD.
    let reconstructed =
        format!("obj(copy_reg._reconstructor, (argparse.Namespace, __builtin__.object, None), state={state})");
    assert_eq!(render(NAMESPACE_P0), reconstructed);
    assert_eq!(render(NAMESPACE_P1), reconstructed);
}

#[test]
fn newobj_ex_stack_global() {
    assert_eq!(
        render(NEWOBJ_EX_P4),
        r#"obj(__main__.C, (7,), kwargs={"b": 8}, state={"a": 7, "b": 8})"#
    );
}

#[test]
fn sets_and_bytearray() {
    assert_eq!(render(SETS_P4), "({1, 2, 3}, frozenset({4, 5}))");
    assert_eq!(render(b"\x8f."), "set()");
    let graph = ok(BYTEARRAY_P5);
    assert_eq!(graph.protocol, 5);
    assert_eq!(show(&graph), r#"b"abc""#);
}

#[test]
fn calls_and_rare_opcodes() {
    // INST and OBJ (protocol 0/1 old-style classes).
    assert_eq!(render(b"(I1\nI2\nimymod\nMyClass\n."), "obj(mymod.MyClass, (1, 2))");
    assert_eq!(render(b"(cmymod\nK\nI3\no."), "obj(mymod.K, (3,))");
    // Extension codes.
    assert_eq!(
        render(b"\x80\x02\x82\x05\x83\x00\x01\x84\x00\x00\x01\x00\x87."),
        "(copyreg.ext.5, copyreg.ext.256, copyreg.ext.65536)"
    );
    // Persistent ids.
    assert_eq!(render(b"Pabc\n."), r#"persid("abc")"#);
    assert_eq!(render(b"X\x01\x00\x00\x00kQ."), r#"persid("k")"#);
    // SETITEM(S) / APPEND(S) on an object, BUILD keeps the last state.
    assert_eq!(
        render(b"cm\nf\n)R(K\x01K\x02eK\x03aK\x04K\x05s(K\x06K\x07uNbK\x08b."),
        "obj(m.f, (), state=8, items={4: 5, 6: 7}, list=[1, 2, 3])"
    );
    // BUILD on a non-object is accepted and ignored.
    assert_eq!(render(b"]K\x01b."), "[]");
    // POP, POP_MARK, POP at a fence discards the mark, READONLY_BUFFER.
    assert_eq!(render(b"(K\x01K\x021N."), "None");
    assert_eq!(render(b"K\x01K\x020."), "1");
    assert_eq!(render(b"K\x01(0."), "1");
    assert_eq!(render(b"C\x02ab\x98."), r#"b"ab""#);
    // DICT, LIST, TUPLE from marks; ADDITEMS to a set.
    assert_eq!(render(b"(K\x01K\x02d."), "{1: 2}");
    assert_eq!(render(b"(K\x01l."), "[1]");
    assert_eq!(render(b"\x8f(K\x01\x90."), "{1}");
}

#[test]
fn concatenated_pickles_report_consumed() {
    let first = ok(CONCAT_P2);
    assert_eq!(first.consumed, 5);
    assert_eq!(show(&first), "1");
    let rest = CONCAT_P2.get(first.consumed..).unwrap_or(&[]);
    let second = ok(rest);
    assert_eq!(second.consumed, rest.len());
    assert_eq!(show(&second), r#""two""#);
    // Garbage after STOP is never read.
    assert_eq!(ok(b"N.\xff\xff").consumed, 2);
}

// ----- Depth ------------------------------------------------------------------

const DEEP: usize = 200_000;

#[test]
fn deep_list_nesting() {
    let mut input = b"\x80\x02".to_vec();
    input.extend(std::iter::repeat_n(b']', DEEP));
    input.extend(std::iter::repeat_n(b'a', DEEP - 1));
    input.push(b'.');
    let graph = ok(&input);
    let mut depth = 1;
    let mut at = root(&graph);
    while let [inner] = items(&graph, at) {
        at = *inner;
        depth += 1;
    }
    assert_eq!(depth, DEEP);
    assert!(graph.repr(root(&graph), 100).ends_with('…'));
    drop(graph);
}

#[test]
fn deep_tuple_nesting_with_marks() {
    let mut input = b"\x80\x02".to_vec();
    input.extend(std::iter::repeat_n(b'(', DEEP));
    input.push(b')');
    input.extend(std::iter::repeat_n(b't', DEEP));
    input.push(b'.');
    let graph = ok(&input);
    let mut depth = 1;
    let mut at = root(&graph);
    while let [inner] = items(&graph, at) {
        at = *inner;
        depth += 1;
    }
    assert_eq!(depth, DEEP + 1);
    // Rendering the whole thing is iterative too.
    assert!(graph.repr(root(&graph), usize::MAX).len() > 2 * DEEP);
}

// ----- Errors -----------------------------------------------------------------

#[test]
fn error_variants() {
    use PickleError::*;
    assert_eq!(err(b""), Truncated { offset: 0 });
    assert_eq!(err(b"N"), Truncated { offset: 1 });
    assert_eq!(err(b"\x80\x02K"), Truncated { offset: 2 });
    assert_eq!(err(b"I12"), Truncated { offset: 0 });
    assert_eq!(
        err(b"\x80\x02\xff."),
        UnknownOpcode {
            opcode: 0xff,
            offset: 2
        }
    );
    assert_eq!(err(b"h\x05."), MemoMissing { key: 5, offset: 0 });
    assert_eq!(err(b"g7\n."), MemoMissing { key: 7, offset: 0 });
    assert_eq!(
        err(b"."),
        StackUnderflow {
            opcode: "STOP",
            offset: 0
        }
    );
    assert_eq!(
        err(b"\x80\x02a."),
        StackUnderflow {
            opcode: "APPEND",
            offset: 2
        }
    );
    assert_eq!(
        err(b"0."),
        StackUnderflow {
            opcode: "POP",
            offset: 0
        }
    );
    // A value below the mark is out of reach.
    assert_eq!(
        err(b"]K\x01(a."),
        StackUnderflow {
            opcode: "APPEND",
            offset: 4
        }
    );
    assert_eq!(
        err(b"(o."),
        StackUnderflow {
            opcode: "OBJ",
            offset: 1
        }
    );
    assert_eq!(
        err(b"(e."),
        StackUnderflow {
            opcode: "APPENDS",
            offset: 1
        }
    );
    assert_eq!(
        err(b"t."),
        MarkMissing {
            opcode: "TUPLE",
            offset: 0
        }
    );
    assert_eq!(
        err(b"1."),
        MarkMissing {
            opcode: "POP_MARK",
            offset: 0
        }
    );
    assert_eq!(
        err(b"]K\x01e."),
        MarkMissing {
            opcode: "APPENDS",
            offset: 3
        }
    );
    assert_eq!(
        err(b"}K\x01a."),
        TypeMismatch {
            opcode: "APPEND",
            expected: "a list or object",
            found: "dict",
            offset: 3
        }
    );
    assert_eq!(
        err(b"]K\x01K\x02s."),
        TypeMismatch {
            opcode: "SETITEM",
            expected: "a dict or object",
            found: "list",
            offset: 5
        }
    );
    assert_eq!(
        err(b"(\x91(K\x01\x90."),
        TypeMismatch {
            opcode: "ADDITEMS",
            expected: "a set or object",
            found: "frozenset",
            offset: 5
        }
    );
    assert!(matches!(
        err(b"K\x01K\x02\x93."),
        TypeMismatch {
            opcode: "STACK_GLOBAL",
            ..
        }
    ));
    assert_eq!(err(b"\x80\x06N."), UnsupportedProtocol { protocol: 6, offset: 0 });
    assert_eq!(err(b"\x97."), OutOfBandBuffer { offset: 0 });
    for bad in [
        &b"(K\x01d."[..],
        b"}(K\x01u.",
        b"T\xff\xff\xff\xff.",
        b"\x8b\xfe\xff\xff\xff.",
        b"Iabc\n.",
        b"I0x10\n.",
        b"Fxyz\n.",
        b"S'abc\n.",
        b"S'abc\\'\n.",
        b"S'\\x4'\n.",
        b"V\\u12\n.",
        b"V\\U00110000\n.",
        b"\x82\x00.",
        b"\x84\xff\xff\xff\xff.",
        b"N\x94p-1\n.",
    ] {
        assert!(
            matches!(err(bad), Invalid { .. }),
            "{:?}",
            bad.escape_ascii().to_string()
        );
    }
    // Lengths are checked against the input before anything is allocated.
    assert_eq!(err(b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7f."), Truncated { offset: 0 });
    assert_eq!(err(b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff."), Truncated { offset: 0 });
    assert_eq!(err(b"\x96\x00\x00\x00\x00\x01\x00\x00\x00."), Truncated { offset: 0 });
    assert_eq!(err(b"X\xff\xff\xff\xff."), Truncated { offset: 0 });
    assert_eq!(err(b"B\x10\x00\x00\x00abc."), Truncated { offset: 0 });
    assert_eq!(err(b"\x8b\xff\xff\xff\x7f."), Truncated { offset: 0 });
    assert_eq!(
        err(b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN."),
        Truncated { offset: 2 }
    );
}

#[test]
fn error_messages() {
    assert_eq!(
        PickleError::Truncated { offset: 123 }.to_string(),
        "pickle truncated at byte 123"
    );
    let all = [
        err(b"\xff"),
        err(b"a."),
        err(b"t."),
        err(b"h\x01."),
        err(b"}K\x01a."),
        err(b"\x80\x09."),
        err(b"\x97."),
        err(b"Ix\n."),
        err_with(
            b"]]]",
            &Limits {
                max_nodes: 1,
                ..Limits::default()
            },
        ),
    ];
    for e in all {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
        assert!(msg.contains(&format!("byte {}", e.offset())), "{msg}");
    }
}

#[test]
fn limits() {
    let limits = |max_nodes, max_stack, max_memo| Limits {
        max_nodes,
        max_stack,
        max_memo,
    };
    assert_eq!(
        err_with(b"]]].", &limits(2, 100, 100)),
        PickleError::LimitExceeded {
            what: "nodes",
            limit: 2,
            offset: 2
        }
    );
    assert_eq!(
        err_with(b"((((.", &limits(100, 3, 100)),
        PickleError::LimitExceeded {
            what: "stack",
            limit: 3,
            offset: 3
        }
    );
    assert_eq!(
        err_with(b"K\x01(((.", &limits(100, 3, 100)),
        PickleError::LimitExceeded {
            what: "stack",
            limit: 3,
            offset: 4
        }
    );
    assert_eq!(
        err_with(b"]q\x00q\x01.", &limits(100, 100, 1)),
        PickleError::LimitExceeded {
            what: "memo",
            limit: 1,
            offset: 3
        }
    );
    // Re-storing an existing key does not count twice; GET adds no node.
    assert!(parse(b"]q\x00q\x00h\x00h\x00\x87.", &limits(2, 100, 1)).is_ok());
}

#[test]
fn every_truncation_is_an_error() {
    for input in [
        SCALARS_P0,
        SCALARS_P2,
        SCALARS_P5,
        NAMESPACE_P0,
        SHARED_P4,
        NEWOBJ_EX_P4,
        BYTEARRAY_P5,
    ] {
        for cut in 0..input.len() {
            let prefix = input.get(..cut).unwrap_or(&[]);
            match parse(prefix, &Limits::default()) {
                Err(PickleError::Truncated { .. }) => {}
                other => panic!("prefix {cut}: {other:?}"),
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds = [
        SCALARS_P0,
        SCALARS_P1,
        SCALARS_P2,
        SCALARS_P5,
        NAMESPACE_P0,
        NAMESPACE_P2,
        NEWOBJ_EX_P4,
        SETS_P4,
        ORDERED_P2,
        SHARED_P1,
    ];
    let limits = Limits {
        max_nodes: 10_000,
        max_stack: 10_000,
        max_memo: 10_000,
    };
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut oks, mut errs) = (0, 0);
    for round in 0..6000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % input.len() as u64) as usize;
            let byte = next() as u8;
            match next() % 4 {
                0 => input.insert(at, byte),
                1 => {
                    input.remove(at);
                }
                _ => input[at] = byte,
            }
            if input.is_empty() {
                input.push(b'.');
            }
        }
        match parse(&input, &limits) {
            Ok(graph) => {
                oks += 1;
                assert!(graph.consumed <= input.len());
                let _ = graph.repr(root(&graph), 200);
            }
            Err(e) => {
                errs += 1;
                assert!(e.offset() <= input.len());
            }
        }
    }
    assert!(oks > 0 && errs > 0, "{oks} ok, {errs} err");
}

// ----- Real checkpoints -----------------------------------------------------

#[test]
fn torch_zoo_data_pkl() {
    let input = include_bytes!("testdata/zoo_data.pkl");
    let graph = ok(input);
    assert_eq!(graph.consumed, input.len());
    assert_eq!(graph.protocol, 2);
    let r = root(&graph);
    let Node::Dict(pairs) = graph.node(r) else {
        panic!("root is not a dict")
    };
    let keys: Vec<&str> = pairs.iter().filter_map(|&(k, _)| graph.str_at(k)).collect();
    for key in ["f32", "tied_a", "tied_b", "param", "bf16", "c64"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(graph.globals().contains(&("torch._utils", "_rebuild_tensor_v2")));
    let pids = graph
        .nodes
        .iter()
        .filter(|n| matches!(n, Node::PersistentId(_)))
        .count();
    assert!(pids > 0);
    // Tied tensors are one object reached twice through the memo.
    assert_eq!(graph.dict_get(r, "tied_a"), graph.dict_get(r, "tied_b"));
    let f32 = graph.dict_get(r, "f32").expect("f32");
    assert_eq!(
        graph.repr(f32, 1000),
        r#"obj(torch._utils._rebuild_tensor_v2, (persid(("storage", torch.FloatStorage, "0", "cpu", 20)), 0, (4, 5), (5, 1), False, obj(collections.OrderedDict, ())))"#
    );
}

#[test]
fn lightning_checkpoint_data_pkl() {
    let input = include_bytes!("testdata/mlp_epoch03_data.pkl");
    let graph = ok(input);
    assert_eq!(graph.consumed, input.len());
    let r = root(&graph);
    let get = |key| graph.dict_get(r, key).map(|id| graph.node(id));
    assert_eq!(get("epoch"), Some(&Node::Int(3)));
    assert_eq!(get("global_step"), Some(&Node::Int(32)));
    assert_eq!(get("pytorch-lightning_version"), Some(&Node::Str("2.6.6".into())));
    let state_dict = graph.dict_get(r, "state_dict").expect("state_dict");
    let Node::Object {
        callable, dict_items, ..
    } = graph.node(state_dict)
    else {
        panic!("state_dict is not an object")
    };
    assert_eq!(graph.repr(*callable, 100), "collections.OrderedDict");
    assert_eq!(
        dict_items.first().and_then(|&(k, _)| graph.str_at(k)),
        Some("encoder.weight")
    );
    assert!(graph.dict_get(state_dict, "encoder.bias").is_some());
    for key in [
        "loops",
        "callbacks",
        "optimizer_states",
        "lr_schedulers",
        "hyper_parameters",
    ] {
        assert!(graph.dict_get(r, key).is_some(), "{key}");
    }
}

#[test]
fn memo_keys_in_any_order() {
    use super::memo::Memo;
    let mut memo = Memo::default();
    for key in [2u64, 0, u64::MAX, 1, 3, 1 << 40] {
        memo.insert(key, NodeId(key as u32));
    }
    assert_eq!(memo.len(), 6);
    for key in [0u64, 1, 2, 3, u64::MAX, 1 << 40] {
        assert_eq!(memo.get(key), Some(NodeId(key as u32)));
    }
    memo.insert(2, NodeId(9));
    memo.insert(1 << 40, NodeId(8));
    assert_eq!(
        (memo.get(2), memo.get(1 << 40), memo.len()),
        (Some(NodeId(9)), Some(NodeId(8)), 6)
    );
    assert_eq!(memo.get(4), None);
    // Through the machine: a sparse key overwritten, then MEMOIZE uses
    // `len(memo)` (1) as its key, as CPython does.
    assert_eq!(
        render(b"K\x01r\x00\x00\x00\x80K\x02r\x00\x00\x00\x80K\x03\x94j\x00\x00\x00\x80h\x01\x87."),
        "(3, 2, 3)"
    );
}
