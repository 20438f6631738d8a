//! Tag operations: each one short index transaction.

use crate::error::{RegistryError, TagError};
use crate::registry::{versions_of, Registry};
use crate::resolve::Resolved;
use reg_format::{ModelName, TagName, VersionNumber};

impl Registry {
    /// Point `tag` at a version. Returns the version number it pointed at
    /// before when it was moved (`force`); an existing tag elsewhere without
    /// `force` is an error.
    pub fn tag(&self, v: &Resolved, tag: &TagName, force: bool) -> Result<Option<VersionNumber>, RegistryError> {
        let name = &v.manifest.name;
        self.with_index(&format!("reg tag of {name}"), |idx| {
            let existing = idx.tags(name)?.into_iter().find(|(t, _)| t == tag).map(|(_, n)| n);
            match existing {
                Some(n) if n == v.manifest.number => return Ok(None),
                Some(n) if !force => {
                    return Err(TagError::Exists {
                        name: name.to_string(),
                        tag: tag.to_string(),
                        number: n.get(),
                    }
                    .into())
                }
                _ => {}
            }
            // The version may have been removed since it was resolved.
            if !versions_of(idx, name)?.iter().any(|r| r.id == v.record.id) {
                return Err(TagError::VersionRemoved {
                    version: v.manifest.label().to_string(),
                }
                .into());
            }
            idx.set_tag(name, tag, v.manifest.version_number())?;
            Ok(existing)
        })
    }

    /// Delete `name@tag`.
    pub fn remove_tag(&self, name: &ModelName, tag: &TagName) -> Result<(), RegistryError> {
        self.with_index(&format!("reg tag -d of {name}"), |idx| {
            versions_of(idx, name)?;
            if !idx.remove_tag(name, tag)? {
                let tags: Vec<String> = idx.tags(name)?.into_iter().map(|(t, _)| t.to_string()).collect();
                return Err(TagError::NoSuchTag {
                    name: name.to_string(),
                    tag: tag.to_string(),
                    tags,
                }
                .into());
            }
            Ok(())
        })
    }
}
