//! osmesh-api: the HTTP API's request bodies and answers, in one place that regiond's handlers
//! (which parse and render them) and the CLI (which sends and reads them) both use, so a field
//! is named once. Plain serde types, with `utoipa::ToSchema` under the `openapi` feature.
//!
//! What it must not know: actors, the store or HTTP. Conversions from the region's records
//! live with the service functions that make them (`osmesh-actors`).

pub mod images;
pub mod license;
pub mod nodes;
pub mod osystems;
pub mod preseeds;
pub mod regions;
pub mod settings;
pub mod tokens;

/// Power parameters as `Debug` shows them: the parameter names, no values.
pub struct MaskedParams<'a>(pub &'a Option<serde_json::Value>);

impl std::fmt::Debug for MaskedParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            Some(serde_json::Value::Object(map)) => f
                .debug_map()
                .entries(map.keys().map(|k| (k, "***")))
                .finish(),
            Some(_) => f.write_str("***"),
        }
    }
}
