//! Lists: a JSON array, newest first, paged by keyset. The next page's URL travels in a
//! `Link: <…>; rel="next"` header (RFC 8288), so the body stays the plain list clients expect.

use poem_openapi::{ApiResponse, payload::Json, types::ToJSON};

/// One page of a list.
#[derive(ApiResponse)]
pub enum Page<T: ToJSON + Send + Sync> {
    /// The items, newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<T>>,
        /// `<path?…&before=ID&limit=N>; rel="next"` while older items remain; absent on the
        /// last page.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

/// Builds the page from `rows` (fetched with `limit + 1`, to know whether more remain):
/// keeps `limit` of them, maps each with `respond`, and links the next page by the last
/// row's `id`. `query` holds the filters to repeat (already validated, URL-safe values).
pub fn next_link<R, T: ToJSON + Send + Sync>(
    mut rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> i64,
    path: &str,
    query: Vec<(&str, String)>,
    respond: impl FnMut(R) -> T,
) -> Page<T> {
    let keep = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    let link = more.then(|| rows.last().map(&id)).flatten().map(|last| {
        let mut params: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        params.push(format!("before={last}"));
        params.push(format!("limit={limit}"));
        format!("<{path}?{}>; rel=\"next\"", params.join("&"))
    });
    Page::Ok(Json(rows.into_iter().map(respond).collect()), link)
}
