//! [`PageToken`]: a place in a provider's list, for contact and chat pages alike.

use serde::{Deserialize, Serialize};

/// An opaque position in a provider's list: an offset, a page number or a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken(pub String);
