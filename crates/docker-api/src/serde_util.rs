//! Serde helpers for the Engine API's JSON habits.

use serde::{Deserialize, Deserializer};

/// Docker sends `null` for many empty lists and maps; treat it as empty.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
