//! Reading SQLite rows: how rusqlite reads a column, and the two shapes of a query's
//! result (at most one row, all rows). Which columns make which model is `decode`'s.

use rusqlite::{Connection, Params};

use super::pool::Failure;
use crate::StoreError;
use crate::decode::{Columns, columns_by_get};

/// One rusqlite row.
pub(crate) struct Row<'a, 'b>(pub &'a rusqlite::Row<'b>);

impl Row<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> Result<T, StoreError> {
        Ok(self.0.get(name)?)
    }
}

columns_by_get!(Row<'_, '_>);

/// The first row `sql` returns, decoded, if any; the statement is prepared once per
/// connection and kept.
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Option<T>, Failure> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    match rows.next()? {
        Some(row) => Ok(Some(decode(&Row(row))?)),
        None => Ok(None),
    }
}

/// Every row `sql` returns, decoded.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl Fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Vec<T>, Failure> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(&Row(row))?);
    }
    Ok(out)
}
