//! The HTML pages. Each gathers what it shows in one registry read
//! ([`crate::access::RegistryAccess::read`]), then renders it with maud
//! (which escapes every value it interpolates).

pub mod diff;
pub mod index;
pub mod layout;
pub mod model;
mod summary;
pub mod version;
