//! `NAME@REF`: naming a version.
//!
//! REF forms: `vN`, `latest` (the default), `epoch=N`, `step=N`, `best`,
//! `best:METRIC`, a tag, or a unique prefix (6+ hex digits) of a version id.

use std::fmt;

/// Whether lower or higher monitored scores are better (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

impl ScoreMode {
    /// True for [`ScoreMode::Min`].
    pub fn lower_is_better(self) -> bool {
        self == ScoreMode::Min
    }

    /// `min` or `max`, as ModelCheckpoint spells it.
    pub fn name(self) -> &'static str {
        match self {
            ScoreMode::Min => "min",
            ScoreMode::Max => "max",
        }
    }
}

/// What comes after `@`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefSpec {
    /// The newest version.
    Latest,
    /// Version number N.
    Number(u32),
    /// The newest version whose checkpoint says this epoch.
    Epoch(i64),
    /// The newest version whose checkpoint says this global step.
    Step(i64),
    /// The best monitored score: of a named metric (`best:METRIC`), and
    /// with the direction overridden (`--mode`).
    Best {
        /// Metric name; `None` means the monitor the checkpoints name.
        metric: Option<String>,
        /// Which scores are better; `None`: the callback's own mode.
        mode: Option<ScoreMode>,
    },
    /// A tag, or failing that a version id prefix.
    TagOrId(String),
}

/// A parsed `NAME@REF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRef {
    /// The model name.
    pub name: crate::ids::ModelName,
    /// Which of its versions.
    pub spec: RefSpec,
}

/// A string that is not a valid ref.
#[derive(Debug, thiserror::Error)]
#[error("bad ref {input:?}: {reason}")]
pub struct BadRef {
    /// What was given.
    pub input: String,
    /// Why it is wrong.
    pub reason: &'static str,
}

impl VersionRef {
    /// Parse `NAME`, `NAME@REF`.
    pub fn parse(input: &str) -> Result<VersionRef, BadRef> {
        let bad = |reason| BadRef {
            input: input.to_string(),
            reason,
        };
        let (name, spec) = match input.split_once('@') {
            Some((n, r)) => (n, r),
            None => (input, "latest"),
        };
        if name.is_empty() {
            return Err(bad("missing model name before '@'"));
        }
        let name = crate::ids::ModelName::new(name).map_err(|_| bad("invalid model name"))?;
        Ok(VersionRef {
            name,
            spec: RefSpec::parse(spec).map_err(bad)?,
        })
    }
}

impl VersionRef {
    /// Apply `--by METRIC` / `--mode min|max`: they turn any ref into a
    /// `best` ref (or refine one).
    pub fn with_best(mut self, by: Option<&str>, mode: Option<ScoreMode>) -> VersionRef {
        if by.is_none() && mode.is_none() {
            return self;
        }
        let metric = match &self.spec {
            RefSpec::Best { metric, .. } => metric.clone(),
            _ => None,
        };
        self.spec = RefSpec::Best {
            metric: by.map(String::from).or(metric),
            mode,
        };
        self
    }
}

impl RefSpec {
    /// Parse the part after `@`.
    pub fn parse(spec: &str) -> Result<RefSpec, &'static str> {
        if spec.is_empty() {
            return Err("empty ref after '@'");
        }
        if spec == "latest" {
            return Ok(RefSpec::Latest);
        }
        if let Some(n) = spec
            .strip_prefix('v')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            return n.parse().map(RefSpec::Number).map_err(|_| "version number too large");
        }
        if let Some(n) = spec.strip_prefix("epoch=") {
            return n.parse().map(RefSpec::Epoch).map_err(|_| "epoch=N needs an integer");
        }
        if let Some(n) = spec.strip_prefix("step=") {
            return n.parse().map(RefSpec::Step).map_err(|_| "step=N needs an integer");
        }
        if spec == "best" {
            return Ok(RefSpec::Best {
                metric: None,
                mode: None,
            });
        }
        if let Some(m) = spec.strip_prefix("best:") {
            if m.is_empty() {
                return Err("best:METRIC needs a metric name");
            }
            return Ok(RefSpec::Best {
                metric: Some(m.to_string()),
                mode: None,
            });
        }
        if spec.chars().any(|c| c.is_whitespace() || c == '@' || c == '/') {
            return Err("a tag may not contain spaces, '@' or '/'");
        }
        Ok(RefSpec::TagOrId(spec.to_string()))
    }
}

impl fmt::Display for RefSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefSpec::Latest => f.write_str("latest"),
            RefSpec::Number(n) => write!(f, "v{n}"),
            RefSpec::Epoch(e) => write!(f, "epoch={e}"),
            RefSpec::Step(s) => write!(f, "step={s}"),
            RefSpec::Best { metric: None, .. } => f.write_str("best"),
            RefSpec::Best { metric: Some(m), .. } => write!(f, "best:{m}"),
            RefSpec::TagOrId(w) => f.write_str(w),
        }
    }
}

/// True for a ref word that is (a prefix of) a version id: 6 or more hex
/// digits, either case.
pub fn looks_like_id(word: &str) -> bool {
    word.len() >= 6 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A tag name (`prod`, `best`): checked by [`check_tag`] when it comes
/// from a user, so no tag takes the place of another ref form or of a
/// version id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagName(String);

impl TagName {
    /// A tag name a user gave, checked.
    pub fn new(tag: &str) -> Result<TagName, BadRef> {
        check_tag(tag)?;
        Ok(TagName(tag.to_string()))
    }

    /// A tag name as the index holds it: set by a check when it was
    /// made (an older reg's rules may have been looser, and a stored tag
    /// must stay removable), so only UTF-8 is required.
    pub fn stored(tag: String) -> TagName {
        TagName(tag)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for TagName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TagName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TagName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for TagName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validate a tag name for `reg tag` / `push --tag`: not another ref form
/// and not a version id ([`looks_like_id`]), so no tag can take the
/// place of a version's permalink.
pub fn check_tag(tag: &str) -> Result<(), BadRef> {
    let bad = |reason| BadRef {
        input: tag.to_string(),
        reason,
    };
    if tag.chars().any(char::is_control) {
        return Err(bad("a tag may not hold control characters (ESC, CR, tab, ...)"));
    }
    match RefSpec::parse(tag) {
        Ok(RefSpec::TagOrId(_)) if looks_like_id(tag) => Err(bad(
            "a tag may not look like a version id (6 or more hex digits): NAME@<hex> always names the version whose id starts with it",
        )),
        Ok(RefSpec::TagOrId(_)) if tag.len() <= 128 => Ok(()),
        // `best` may be a tag too (the Lightning plugin sets it); `@best`
        // falls back to it when no version records a score.
        Ok(RefSpec::Best { metric: None, .. }) => Ok(()),
        Ok(_) => Err(bad(
            "a tag may not look like another ref form (vN, latest, epoch=, step=, best)",
        )),
        Err(reason) => Err(bad(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = |s: &str| VersionRef::parse(s).map(|r| r.spec).ok();
        assert_eq!(p("m"), Some(RefSpec::Latest));
        assert_eq!(p("m@v12"), Some(RefSpec::Number(12)));
        assert_eq!(p("m@epoch=3"), Some(RefSpec::Epoch(3)));
        assert_eq!(p("m@step=900"), Some(RefSpec::Step(900)));
        assert_eq!(
            p("m@best"),
            Some(RefSpec::Best {
                metric: None,
                mode: None
            })
        );
        assert_eq!(
            p("m@best:val_loss"),
            Some(RefSpec::Best {
                metric: Some("val_loss".into()),
                mode: None
            })
        );
        assert_eq!(p("m@prod"), Some(RefSpec::TagOrId("prod".into())));
        assert!(VersionRef::parse("@v1").is_err());
        assert!(VersionRef::parse("m@").is_err());
        assert!(VersionRef::parse("m@epoch=x").is_err());
        assert!(check_tag("v2").is_err());
        assert!(check_tag("best").is_ok());
        assert!(check_tag("best:loss").is_err());
        assert!(check_tag("release-1").is_ok());
    }

    #[test]
    fn near_misses_of_a_form_are_words_or_errors() {
        let p = RefSpec::parse;
        let word = |w: &str| Ok(RefSpec::TagOrId(w.into()));
        // Only `v` and digits is a number; anything else is a tag or id prefix.
        assert_eq!(p("v"), word("v"));
        assert_eq!(p("v1x"), word("v1x"));
        assert_eq!(p("V3"), word("V3"));
        assert_eq!(p("latest2"), word("latest2"));
        assert_eq!(p("bestest"), word("bestest"));
        assert_eq!(p("v0"), Ok(RefSpec::Number(0)));
        assert_eq!(p("v4294967295"), Ok(RefSpec::Number(u32::MAX)));
        assert_eq!(p("v4294967296"), Err("version number too large"));
        assert_eq!(p("epoch=-1"), Ok(RefSpec::Epoch(-1)));
        assert_eq!(p("step="), Err("step=N needs an integer"));
        assert_eq!(p("best:"), Err("best:METRIC needs a metric name"));
        for bad in ["a b", "a@b", "a/b", "tab\t"] {
            assert!(p(bad).is_err(), "{bad:?} parsed");
        }
        // Every form prints as it parses.
        for form in ["latest", "v7", "epoch=3", "step=900", "best", "best:val_loss", "prod"] {
            assert_eq!(p(form).map(|s| s.to_string()).as_deref(), Ok(form));
        }
    }

    #[test]
    fn by_and_mode_turn_any_ref_into_best() {
        let parsed = |s: &str| VersionRef::parse(s).expect("ref");
        let best = |metric: Option<&str>, mode: Option<ScoreMode>| RefSpec::Best {
            metric: metric.map(String::from),
            mode,
        };
        assert_eq!(parsed("m@v3").with_best(None, None).spec, RefSpec::Number(3));
        assert_eq!(
            parsed("m@v3").with_best(Some("acc"), None).spec,
            best(Some("acc"), None)
        );
        assert_eq!(
            parsed("m").with_best(None, Some(ScoreMode::Max)).spec,
            best(None, Some(ScoreMode::Max))
        );
        // `--mode` keeps the metric of `best:METRIC`; `--by` replaces it.
        assert_eq!(
            parsed("m@best:loss").with_best(None, Some(ScoreMode::Min)).spec,
            best(Some("loss"), Some(ScoreMode::Min))
        );
        assert_eq!(
            parsed("m@best:loss").with_best(Some("acc"), None).spec,
            best(Some("acc"), None)
        );
    }
}
