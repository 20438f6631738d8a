//! The JSON twins: exactly what the CLI prints with `--json` (`diff` with
//! `--stats`), from the same library views and the same printer.

use crate::failure::Failure;
use crate::state::AppState;
use crate::urls;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use reg_registry::{DiffOptions, Only};
use serde::{Deserialize, Serialize};

/// `?a=REF&b=REF` of a diff.
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    /// The older side.
    pub a: Option<String>,
    /// The newer side.
    pub b: Option<String>,
}

impl DiffQuery {
    /// Both refs, or a 400 saying what is missing.
    pub fn sides(&self) -> Result<(String, String), Failure> {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Ok((a.clone(), b.clone())),
            _ => Err(Failure::bad_request("a diff needs a=NAME@REF and b=NAME@REF")),
        }
    }
}

/// Exactly what `reg ... --json` prints ([`reg_registry::report::to_json_text`]).
pub fn json<T: Serialize>(value: &T) -> Result<Response, Failure> {
    let text = reg_registry::report::to_json_text(value).map_err(|e| Failure::internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        text,
    )
        .into_response())
}

/// `/api/ls` = `reg ls --json`.
pub async fn ls(State(state): State<AppState>) -> Result<Response, Failure> {
    json(&state.access.read(|reg| reg.ls_view()).await?)
}

/// `/api/log/NAME` = `reg log NAME --json`.
pub async fn log(
    State(state): State<AppState>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, Failure> {
    let Path(name) = name.map_err(bad_path)?;
    urls::model_name(&name)?;
    json(&state.access.read(move |reg| reg.log_view(&name)).await?)
}

/// `/api/show/NAME@REF` = `reg show NAME@REF --json`.
pub async fn show(
    State(state): State<AppState>,
    reference: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, Failure> {
    let Path(reference) = reference.map_err(bad_path)?;
    let wanted = urls::parse_ref(&reference)?;
    json(
        &state
            .access
            .read(move |reg| reg.show_view(&reg.resolve(&wanted)?))
            .await?,
    )
}

/// `/api/diff?a=A&b=B` = `reg diff A B --stats --json`.
pub async fn diff(
    State(state): State<AppState>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) = query.map_err(|e| Failure::bad_request(e.body_text()))?;
    let (a, b) = query.sides()?;
    let (a, b) = (urls::parse_ref(&a)?, urls::parse_ref(&b)?);
    let d = state
        .access
        .read(move |reg| {
            let (va, vb) = (reg.resolve(&a)?, reg.resolve(&b)?);
            reg.diff(
                &va,
                &vb,
                DiffOptions {
                    stats: true,
                    only: Only::All,
                },
            )
        })
        .await?;
    json(&d)
}

/// A path that does not decode (bad percent-encoding, not UTF-8): 400.
pub fn bad_path(e: axum::extract::rejection::PathRejection) -> Failure {
    Failure::bad_request(format!("bad URL: {}", e.body_text()))
}
