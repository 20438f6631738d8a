//! Choosing what part of a version an export writes: some tensors by name
//! (`reg pull REF --tensors GLOB --format safetensors`), or only the
//! safetensors header. Only the blobs of the chosen tensors are read.
//!
//! ```
//! # fn main() -> Result<(), reg_registry::select::SelectionError> {
//! use reg_registry::select::TensorSelection;
//! let s = TensorSelection::new(&["encoder.*".to_string(), "head.bias".to_string()])?;
//! assert!(s.matches("encoder.layers.0.weight"));
//! assert!(s.matches("head.bias"));
//! assert!(!s.matches("head.weight"));
//! # Ok(())
//! # }
//! ```

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use thiserror::Error;

/// Tensor names chosen by globs: `*` matches any characters (`/` and `.`
/// included), `?` one, `[abc]` a class; a backslash escapes the next
/// character, so an exact name with such characters can be given.
#[derive(Clone, Debug)]
pub struct TensorSelection {
    patterns: Vec<String>,
    each: Vec<globset::GlobMatcher>,
    set: GlobSet,
}

/// What is wrong with a tensor selection.
#[derive(Debug, Error)]
pub enum SelectionError {
    /// A pattern that is not a glob.
    #[error("tensor pattern {pattern:?} is not a glob: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A pattern that no tensor of the version matches.
    #[error("tensor pattern {pattern:?} matches no tensor of {version} (its {count} tensors include {examples})")]
    NoMatch {
        /// The pattern.
        pattern: String,
        /// The version (`NAME@vN`).
        version: String,
        /// How many tensors the export has.
        count: usize,
        /// A few of their names.
        examples: String,
    },
    /// A selection asked of an export that cannot hold one.
    #[error("{version}: tensors can be chosen only for a safetensors export")]
    NotSafetensors {
        /// The version (`NAME@vN`).
        version: String,
    },
}

impl TensorSelection {
    /// A selection of the tensors any of `patterns` matches.
    pub fn new(patterns: &[String]) -> Result<TensorSelection, SelectionError> {
        let mut builder = GlobSetBuilder::new();
        let mut each = Vec::with_capacity(patterns.len());
        for p in patterns {
            let glob: Glob = GlobBuilder::new(p)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| SelectionError::BadPattern {
                    pattern: p.clone(),
                    reason: e.kind().to_string(),
                })?;
            each.push(glob.compile_matcher());
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| SelectionError::BadPattern {
            pattern: patterns.join(" "),
            reason: e.to_string(),
        })?;
        Ok(TensorSelection {
            patterns: patterns.to_vec(),
            each,
            set,
        })
    }

    /// Whether `name` is chosen.
    pub fn matches(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// The items whose name is chosen, in their order; every pattern must
    /// match at least one (a typo is an error, not an empty file).
    pub(crate) fn keep<T>(
        &self,
        version: &str,
        items: Vec<T>,
        name: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, SelectionError> {
        for (pattern, matcher) in self.patterns.iter().zip(&self.each) {
            if !items.iter().any(|t| matcher.is_match(name(t))) {
                let examples: Vec<String> = items.iter().take(4).map(|t| format!("{:?}", name(t))).collect();
                return Err(SelectionError::NoMatch {
                    pattern: pattern.clone(),
                    version: version.to_string(),
                    count: items.len(),
                    examples: if examples.is_empty() {
                        "none".into()
                    } else {
                        examples.join(", ")
                    },
                });
            }
        }
        Ok(items.into_iter().filter(|t| self.matches(name(t))).collect())
    }
}

/// What part of an export to write (default: all of it).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportScope<'s> {
    /// Only these tensors (safetensors exports only).
    pub tensors: Option<&'s TensorSelection>,
    /// Only the safetensors header (8-byte length and JSON, data offsets
    /// as in the whole file): what a lazy reader needs to list the tensors.
    pub header_only: bool,
}
