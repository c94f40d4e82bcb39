//! Reading PostgreSQL rows: how sqlx reads a column. Which columns make which model is
//! `decode`'s.

use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::StoreError;
use crate::decode::Columns;

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

impl Columns for Row<'_> {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.get(name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(name)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.get(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.get(name)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(name)
    }
}

/// Decodes `row` with `decode`.
pub(crate) fn decode<T>(
    row: &PgRow,
    decode: impl FnOnce(&dyn Columns) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    decode(&Row(row))
}
