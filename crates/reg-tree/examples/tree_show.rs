//! Print what `reg_tree::inspect_tree` reads from a directory:
//! `cargo run -p reg-ckpt --example tree_show -- DIR`.

use std::path::Path;

use reg_tree::{inspect_tree, TreeFile};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if let Some(rel) = path.strip_prefix(root).ok().and_then(|p| p.to_str()) {
            out.push((rel.replace('\\', "/"), std::fs::read(&path)?));
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).ok_or("usage: tree_show DIR")?;
    let mut files = Vec::new();
    walk(Path::new(&root), Path::new(&root), &mut files)?;
    files.sort();
    let list: Vec<TreeFile> = files.iter().map(|(p, b)| TreeFile { path: p, bytes: b }).collect();
    let tree = inspect_tree(&list)?;
    println!(
        "layout {}  epoch {:?}  step {:?}",
        tree.layout, tree.epoch, tree.meta.global_step
    );
    for f in &tree.files {
        println!(
            "file {} {} bytes {} ({} segments)",
            f.path,
            f.size,
            f.format.name(),
            f.segments.len()
        );
    }
    for t in &tree.tensors {
        let chunks: Vec<String> = t
            .chunks
            .iter()
            .map(|c| {
                format!(
                    "{}@{:?}+{:?}/{:?}",
                    tree.files[c.file].path, c.offsets, c.sizes, c.stride
                )
            })
            .collect();
        println!(
            "tensor {} {} {:?} {:?} {}",
            t.name,
            t.dtype,
            t.shape,
            t.role,
            chunks.join(" ")
        );
    }
    for o in &tree.meta.optimizers {
        println!(
            "optimizer {} {} params with state, keys {:?}",
            o.kind, o.params_with_state, o.state_keys
        );
    }
    for s in &tree.meta.schedulers {
        println!("scheduler {}", s.kind);
    }
    if let Some(h) = &tree.meta.hyper_parameters {
        println!("hparams {h}");
    }
    for (k, s) in &tree.meta.scores {
        println!("score {k} = {} ({})", s.value, s.mode);
    }
    for g in tree
        .globals
        .iter()
        .filter(|g| g.verdict != reg_ckpt::safety::Verdict::Safe)
    {
        println!("global {} {:?}", g.global, g.verdict);
    }
    for n in &tree.notes {
        println!("note {n}");
    }
    Ok(())
}
