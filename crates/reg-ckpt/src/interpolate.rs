//! OmegaConf interpolations in hyperparameters (`${model.dim}`), resolved
//! as `OmegaConf.to_container(resolve=True)` does: one job, used by both
//! the metadata extraction (`meta`) and the value view (`view`).

use serde_json::Value;

/// Resolve OmegaConf interpolations that are a whole string (`${model.dim}`)
/// against the same tree, as `OmegaConf.to_container(resolve=True)` does;
/// anything else (resolvers, partial strings, missing keys) stays as text.
pub fn resolve_interpolations(mut root: Value) -> Value {
    fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
        path.split('.').try_fold(root, |v, key| match v {
            Value::Object(m) => m.get(key),
            Value::Array(a) => a.get(key.parse::<usize>().ok()?),
            _ => None,
        })
    }
    // Up to a few rounds, so chained interpolations resolve too.
    for _ in 0..4 {
        let snapshot = root.clone();
        let mut changed = false;
        let mut stack = vec![&mut root];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => stack.extend(m.values_mut()),
                Value::Array(a) => stack.extend(a.iter_mut()),
                Value::String(s) => {
                    let inner = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
                    if let Some(path) = inner.filter(|p| !p.contains(['$', ':', '{'])) {
                        if let Some(found) = lookup(&snapshot, path) {
                            *v = found.clone();
                            changed = true;
                        }
                    }
                }
                _ => {}
            }
        }
        if !changed {
            break;
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::resolve_interpolations;
    use serde_json::json;

    #[test]
    fn whole_string_interpolations_resolve_against_the_tree() {
        let v = json!({"model": {"dim": 4, "alias": "${model.dim}"}, "ref": "${model.alias}",
                       "partial": "dim=${model.dim}", "missing": "${nope.x}", "resolver": "${oc.env:HOME}"});
        let r = resolve_interpolations(v);
        assert_eq!(r["model"]["alias"], 4);
        assert_eq!(r["ref"], 4);
        assert_eq!(r["partial"], "dim=${model.dim}");
        assert_eq!(r["missing"], "${nope.x}");
        assert_eq!(r["resolver"], "${oc.env:HOME}");
    }
}
