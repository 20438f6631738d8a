//! `reg_pickle::parse` on arbitrary bytes, with the limits `inspect` uses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = reg_pickle::Limits::default();
    if let Ok(graph) = reg_pickle::parse(data, &limits) {
        // Walk what a caller walks: the globals and a bounded repr of the root.
        let _ = graph.globals();
        if let Some(root) = graph.root {
            let _ = graph.repr(root, 4096);
        }
    }
});
