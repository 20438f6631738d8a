//! Tags, and versions brought in from elsewhere (import).

/// Why a tag could not be set or removed.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// A tag already points elsewhere.
    #[error("tag {tag} already points at {name}@v{number}")]
    Exists {
        /// Model name.
        name: String,
        /// The tag.
        tag: String,
        /// Where it points now.
        number: u32,
    },
    /// The version was removed after it was resolved.
    #[error("{version} was removed meanwhile; not tagged")]
    VersionRemoved {
        /// `NAME@vN`.
        version: String,
    },
    /// The name has no such tag.
    #[error("{name} has no tag {tag}; tags: {}", if tags.is_empty() { "none".to_string() } else { tags.join(", ") })]
    NoSuchTag {
        /// Model name.
        name: String,
        /// The tag asked for.
        tag: String,
        /// The tags it has.
        tags: Vec<String>,
    },
}

/// Why an archive or a remote's version could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A manifest of a newer schema than this reg reads.
    #[error("{origin}: manifest schema {schema} is newer than this reg understands ({known}); upgrade reg")]
    SchemaTooNew {
        /// Where the manifest came from.
        origin: String,
        /// Its schema.
        schema: u32,
        /// The newest schema this reg reads.
        known: u32,
    },
}
