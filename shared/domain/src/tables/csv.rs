//! CSV out of and into tables (RFC 4180: `,` separated, `"` quoted, CRLF line ends).
//!
//! [`export`] pages through a table and writes each page as it comes, so a large table is never held
//! in memory as one text; a byte limit turns an export that grows too large into
//! [`TableError::TooLarge`] as soon as it passes the limit. [`import`] reads records one at a time
//! from any reader and writes them in small concurrent batches, which the SQLite store commits
//! together.
//!
//! Cells: `null` is an empty cell, numbers and booleans as JSON writes them, datetimes as stored, json
//! columns as compact JSON. On import an empty cell is `null`.
//!
//! Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula, and table data often
//! comes from outside (user names from the System Log). [`ExportOptions::guard_formulas`] prefixes such
//! text cells with `'`, which spreadsheets show as text; exports meant for people (the `export_csv`
//! card) turn it on, raw dumps meant for re-import leave it off.

use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use super::{
    Column, ColumnType, OnDuplicate, RowQuery, TableError, TableSchema, TableStore, check_value,
};

/// Rows read per page while exporting.
const EXPORT_PAGE: u32 = 500;
/// Rows written at once while importing: the store commits them together.
const IMPORT_BATCH: usize = 256;

/// How [`export`] writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportOptions {
    /// Prefix text cells that a spreadsheet would run as a formula with `'`.
    pub guard_formulas: bool,
    /// Stop with [`TableError::TooLarge`] once more than this many bytes are written.
    pub max_bytes: Option<usize>,
    /// Only these columns, in this order (default: every column).
    pub columns: Option<Vec<String>>,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportReport {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes the rows matching `filters` of `query` (its `limit` and `cursor` are ignored: every
/// matching row is written) as CSV with a header line, page by page.
pub async fn export<W: Write + Send>(
    store: &dyn TableStore,
    schema: &TableSchema,
    query: &RowQuery,
    options: &ExportOptions,
    out: &mut W,
) -> Result<ExportReport, TableError> {
    let columns: Vec<&Column> = match &options.columns {
        None => schema.columns.iter().collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                schema.column(name).ok_or_else(|| TableError::InvalidQuery {
                    field: "columns".into(),
                    message: format!(
                        "table `{}` has no column `{name}` (columns: {})",
                        schema.name,
                        schema.column_names().join(", ")
                    ),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut writer = Counting {
        out,
        bytes: 0,
        max: options.max_bytes,
    };
    let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    writer.record(header.iter().map(String::as_str))?;
    let mut report = ExportReport::default();
    let mut page_query = RowQuery {
        filters: query.filters.clone(),
        limit: EXPORT_PAGE,
        cursor: None,
    };
    loop {
        let page = store.search(schema, &page_query).await?;
        let mut cells = Vec::with_capacity(columns.len());
        for row in &page.rows {
            cells.clear();
            for column in &columns {
                let value = row.values.get(&column.name).unwrap_or(&Value::Null);
                cells.push(cell(column.kind, value, options.guard_formulas));
            }
            writer.record(cells.iter().map(String::as_str))?;
            report.rows += 1;
        }
        match page.cursor {
            Some(cursor) => page_query.cursor = Some(cursor),
            None => break,
        }
    }
    writer.out.flush().map_err(write_error)?;
    report.bytes = writer.bytes as u64;
    Ok(report)
}

/// A writer that counts bytes and refuses to pass a limit.
struct Counting<'a, W> {
    out: &'a mut W,
    bytes: usize,
    max: Option<usize>,
}

impl<W: Write> Counting<'_, W> {
    fn record<'c>(&mut self, cells: impl Iterator<Item = &'c str>) -> Result<(), TableError> {
        let mut line = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                line.push(',');
            }
            quote_into(&mut line, cell);
        }
        line.push_str("\r\n");
        self.bytes += line.len();
        if let Some(max) = self.max
            && self.bytes > max
        {
            return Err(TableError::TooLarge { limit: max });
        }
        self.out.write_all(line.as_bytes()).map_err(write_error)
    }
}

fn write_error(source: std::io::Error) -> TableError {
    TableError::Io {
        context: "cannot write the CSV export".into(),
        source,
    }
}

/// A value as a CSV cell (before quoting).
pub fn cell(kind: ColumnType, value: &Value, guard_formulas: bool) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::String(text) if kind != ColumnType::Json => text.clone(),
        Value::Number(n) if kind != ColumnType::Json => n.to_string(),
        Value::Bool(b) if kind != ColumnType::Json => b.to_string(),
        other => other.to_string(),
    };
    let guarded = guard_formulas
        && matches!(kind, ColumnType::Text | ColumnType::Json)
        && text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guarded { format!("'{text}") } else { text }
}

fn quote_into(line: &mut String, cell: &str) {
    if cell.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&cell.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(cell);
    }
}

/// A problem in a CSV file, with the line it is on (1-based).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Syntax { line: u64, message: String },
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
}

/// Reads CSV records one at a time from a buffered reader. Quoted cells may hold commas, doubled
/// quotes and line breaks; a UTF-8 byte-order mark at the start is skipped.
pub struct CsvReader<R> {
    input: R,
    /// Physical lines read so far.
    line: u64,
    buffer: String,
}

impl<R: BufRead> CsvReader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> CsvReader<R> {
        CsvReader {
            input,
            line: 0,
            buffer: String::new(),
        }
    }

    /// The line the last record started on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next record and the line it starts on, or `None` at the end of the input.
    pub fn record(&mut self) -> Result<Option<(u64, Vec<String>)>, CsvError> {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut closed = false;
        let start = self.line + 1;
        loop {
            self.buffer.clear();
            let read = self
                .input
                .read_line(&mut self.buffer)
                .map_err(CsvError::Read)?;
            if read == 0 {
                if quoted {
                    return Err(CsvError::Syntax {
                        line: start,
                        message: "a quoted cell is not closed".into(),
                    });
                }
                if self.line < start {
                    return Ok(None);
                }
                fields.push(field);
                return Ok(Some((start, fields)));
            }
            self.line += 1;
            let text = if self.line == 1 {
                self.buffer.strip_prefix('\u{feff}').unwrap_or(&self.buffer)
            } else {
                &self.buffer
            };
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if quoted {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            quoted = false;
                            closed = true;
                        }
                    } else {
                        field.push(c);
                    }
                    continue;
                }
                match c {
                    ',' => {
                        fields.push(std::mem::take(&mut field));
                        closed = false;
                    }
                    '"' if field.is_empty() && !closed => quoted = true,
                    '\r' | '\n' => {}
                    _ if closed => {
                        return Err(CsvError::Syntax {
                            line: self.line,
                            message: "text after the closing quote of a cell".into(),
                        });
                    }
                    _ => field.push(c),
                }
            }
            if !quoted {
                fields.push(field);
                return Ok(Some((start, fields)));
            }
        }
    }
}

/// A CSV cell as a value of `column`: an empty cell is `null`; numbers, booleans (`true`/`false`,
/// `yes`/`no`, `1`/`0`) and JSON are parsed; datetimes are checked and normalised.
pub fn value_from_cell(column: &Column, text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let value = match column.kind {
        ColumnType::Text | ColumnType::Datetime => Value::String(text.to_owned()),
        ColumnType::Number => {
            let number: serde_json::Number = text
                .trim()
                .parse()
                .map_err(|_| format!("expected a number, got `{text}`"))?;
            Value::Number(number)
        }
        ColumnType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err(format!("expected true or false, got `{text}`")),
        },
        ColumnType::Json => {
            serde_json::from_str(text).map_err(|e| format!("expected JSON ({e}), got `{text}`"))?
        }
    };
    check_value(column, &value)
}

/// Errors of [`import`]: where in the file, and what.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("line {line}: {source}")]
    Row {
        line: u64,
        #[source]
        source: TableError,
    },
    #[error("line {line}: expected {expected} cells as in the header, got {found}")]
    Cells {
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("the file is empty: expected a header line naming the columns")]
    NoHeader,
    #[error("header: {0}")]
    Header(String),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// How far an import got: reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportProgress {
    /// Rows written so far.
    pub rows: u64,
    /// Lines of the file read so far.
    pub lines: u64,
}

/// Imports CSV with a header line naming columns of `schema` (in any order; columns left out are
/// `null`). Rows are written in batches; the first bad row stops the import, after the rows before
/// its batch were written. `progress` is called after each batch.
pub async fn import<R: BufRead + Send>(
    store: &dyn TableStore,
    schema: &TableSchema,
    input: R,
    on_duplicate: OnDuplicate,
    mut progress: impl FnMut(ImportProgress) + Send,
) -> Result<ImportProgress, ImportError> {
    let mut reader = CsvReader::new(input);
    let Some((_, header)) = reader.record()? else {
        return Err(ImportError::NoHeader);
    };
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.trim();
        let column = schema.column(name).ok_or_else(|| {
            ImportError::Header(format!(
                "table `{}` has no column `{name}` (columns: {})",
                schema.name,
                schema.column_names().join(", ")
            ))
        })?;
        if columns.iter().any(|c: &&Column| c.name == column.name) {
            return Err(ImportError::Header(format!(
                "column `{name}` appears twice"
            )));
        }
        columns.push(column);
    }
    let mut done = ImportProgress::default();
    let mut batch: Vec<(u64, Map<String, Value>)> = Vec::with_capacity(IMPORT_BATCH);
    loop {
        let record = reader.record()?;
        let end = record.is_none();
        if let Some((line, cells)) = record {
            // A blank line (often the last one) is no row.
            if !(cells.len() == 1 && cells[0].is_empty()) {
                batch.push((line, row_of(&columns, line, &cells)?));
            }
        }
        if batch.len() >= IMPORT_BATCH || (end && !batch.is_empty()) {
            let writes = batch
                .iter()
                .map(|(_, row)| store.insert(schema, row, on_duplicate));
            let results = futures::future::join_all(writes).await;
            for ((line, _), result) in batch.iter().zip(results) {
                match result {
                    Ok(_) => done.rows += 1,
                    Err(source) => {
                        return Err(ImportError::Row {
                            line: *line,
                            source,
                        });
                    }
                }
            }
            batch.clear();
            done.lines = reader.line();
            progress(done);
        }
        if end {
            done.lines = reader.line();
            return Ok(done);
        }
    }
}

fn row_of(
    columns: &[&Column],
    line: u64,
    cells: &[String],
) -> Result<Map<String, Value>, ImportError> {
    if cells.len() != columns.len() {
        return Err(ImportError::Cells {
            line,
            expected: columns.len(),
            found: cells.len(),
        });
    }
    let mut row = Map::new();
    for (column, text) in columns.iter().zip(cells) {
        let value = value_from_cell(column, text).map_err(|message| ImportError::Row {
            line,
            source: TableError::InvalidValue {
                column: column.name.clone(),
                message,
            },
        })?;
        row.insert(column.name.clone(), value);
    }
    Ok(row)
}
