//! Reading PostgreSQL rows: how sqlx reads a column. Which columns make which model is
//! `decode`'s.

use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::StoreError;
use crate::decode::{Columns, columns_by_get};

/// One sqlx row.
pub(crate) struct Row<'a>(pub &'a PgRow);

impl Row<'_> {
    fn get<T>(&self, name: &str) -> Result<T, StoreError>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        Ok(self.0.try_get(name)?)
    }
}

columns_by_get!(Row<'_>);

/// Decodes `row` with `decode`.
pub(crate) fn decode<T>(
    row: &PgRow,
    decode: impl FnOnce(&dyn Columns) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    decode(&Row(row))
}
