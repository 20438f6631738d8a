//! Hooks that let tests act at moments a race would need luck to hit.
//! Compiled only with the `test-hooks` feature (the crate's own tests
//! enable it; the `reg` binary never does).

use std::path::Path;
use std::sync::Mutex;

type Hook = Box<dyn Fn(&Path) + Send + Sync>;

static AFTER_WALK: Mutex<Option<Hook>> = Mutex::new(None);

/// Run `hook` with the folder being pushed after it is listed and before
/// its files are opened (`None` removes it). For tests of a folder that
/// changes under a push.
pub fn set_after_walk(hook: Option<Hook>) {
    if let Ok(mut h) = AFTER_WALK.lock() {
        *h = hook;
    }
}

pub(crate) fn after_walk(dir: &Path) {
    if let Ok(h) = AFTER_WALK.lock() {
        if let Some(hook) = h.as_ref() {
            hook(dir);
        }
    }
}
