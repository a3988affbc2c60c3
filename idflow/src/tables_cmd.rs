//! `idflow tables`: list, show and import the rows of the tables declared in `idflow.yaml` and
//! `tables/*.yaml`, straight
//! from the local data directory.
//!
//! The table declarations come from the flows directory (`--flows`), the rows from the SQLite file of
//! `idflow serve` (`--data`). Opening the file while a server runs is safe: SQLite in WAL mode lets
//! this process read beside it, and writes (an import) take turns with the server's.

use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use domain::tables::csv::{ExportOptions, ImportProgress, cell, export, import};
use domain::tables::{OnDuplicate, RowQuery, TableError, TableSchema, TableStore, schemas};
use local::sqlite::{SqliteDb, SqliteTableStore};

/// The database file inside the data directory (as `idflow serve` names it).
const DB_FILE: &str = "idflow.db";

/// Where the declarations and the rows are.
#[derive(Debug, Args)]
pub struct Location {
    /// Directory with idflow.yaml and tables/*.yaml (the table declarations).
    #[arg(long, default_value = "./flows")]
    flows: PathBuf,
    /// Data directory of `idflow serve`.
    #[arg(long, default_value = "./.idflow")]
    data: PathBuf,
}

/// `idflow tables ...`.
#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Lists the declared tables with their columns and row counts.
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Shows a table's rows (the first ones as text, or every row as CSV).
    Show {
        table: String,
        /// Write every row as CSV to standard output.
        #[arg(long)]
        csv: bool,
        /// Rows shown as text.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only rows matching these conditions, as in `table.search_rows` (JSON).
        #[arg(long = "where")]
        conditions: Option<String>,
        #[command(flatten)]
        location: Location,
    },
    /// Imports a CSV file whose header names columns of the table.
    Import {
        table: String,
        file: PathBuf,
        /// Replace rows whose key is already in the table instead of stopping.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        location: Location,
    },
}

/// Runs a `tables` subcommand.
pub async fn run(command: TablesCommand) -> Result<ExitCode> {
    match command {
        TablesCommand::List { location } => list(&location).await,
        TablesCommand::Show {
            table,
            csv,
            limit,
            conditions,
            location,
        } => show(&location, &table, csv, limit, conditions.as_deref()).await,
        TablesCommand::Import {
            table,
            file,
            replace,
            location,
        } => import_file(&location, &table, &file, replace).await,
    }
}

/// The declared tables; declaration errors are printed, not fatal.
fn declared(location: &Location) -> Result<std::collections::BTreeMap<String, TableSchema>> {
    let config = location.flows.join(domain::flowfile::PROJECT_FILE);
    let tables = location.flows.join(domain::flowfile::TABLES_DIR);
    if !config.is_file() && !tables.is_dir() {
        bail!(
            "neither {} nor {} exists: tables are declared under `tables:` in the first or one per file in the second (use --flows)",
            config.display(),
            tables.display()
        );
    }
    let project = domain::flowfile::load_dir(&location.flows);
    let (tables, errors) = schemas(&project.config);
    for error in errors {
        eprintln!("warning: {error}");
    }
    Ok(tables)
}

fn schema(location: &Location, name: &str) -> Result<TableSchema> {
    let mut tables = declared(location)?;
    match tables.remove(name) {
        Some(schema) => Ok(schema),
        None => {
            let names: Vec<&String> = tables.keys().collect();
            bail!(
                "table `{name}` is not declared in {} or {} (declared: {})",
                location
                    .flows
                    .join(domain::flowfile::PROJECT_FILE)
                    .display(),
                location.flows.join(domain::flowfile::TABLES_DIR).display(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        }
    }
}

/// The store, or `None` when the data directory has no database yet.
fn open_existing(data: &Path) -> Result<Option<SqliteTableStore>> {
    let path = data.join(DB_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    open(data).map(Some)
}

fn open(data: &Path) -> Result<SqliteTableStore> {
    let db = SqliteDb::open(data.join(DB_FILE))
        .with_context(|| format!("cannot open {}", data.join(DB_FILE).display()))?;
    Ok(SqliteTableStore::new(db))
}

async fn list(location: &Location) -> Result<ExitCode> {
    let tables = declared(location)?;
    if tables.is_empty() {
        println!("no tables declared");
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_existing(&location.data)?;
    let mut lines = vec![[
        "TABLE".to_owned(),
        "ROWS".to_owned(),
        "KEY".to_owned(),
        "COLUMNS".to_owned(),
    ]];
    for schema in tables.values() {
        let rows = match &store {
            Some(store) => store.count(schema).await?,
            None => 0,
        };
        let columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{}:{}", c.name, c.kind.as_str()))
            .collect();
        lines.push([
            schema.name.clone(),
            rows.to_string(),
            schema.key.clone().unwrap_or_else(|| "-".into()),
            columns.join(" "),
        ]);
    }
    print!("{}", aligned(&lines));
    if store.is_none() {
        eprintln!(
            "note: no data in {} yet (start idflow serve or import a file)",
            location.data.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(
    location: &Location,
    table: &str,
    csv: bool,
    limit: u32,
    conditions: Option<&str>,
) -> Result<ExitCode> {
    let schema = schema(location, table)?;
    let conditions: Option<serde_json::Value> = conditions
        .map(serde_json::from_str)
        .transpose()
        .context("--where is not valid JSON")?;
    let limit = limit.clamp(1, domain::tables::MAX_LIMIT);
    let query = RowQuery::parse(
        &schema,
        conditions.as_ref(),
        Some(&serde_json::json!(limit)),
        None,
    )?;
    let Some(store) = open_existing(&location.data)? else {
        if csv {
            println!("{}", schema.column_names().join(","));
        } else {
            println!("no rows");
        }
        return Ok(ExitCode::SUCCESS);
    };
    if csv {
        // Streamed page by page: a large table is never held in memory.
        let mut out = std::io::BufWriter::new(std::io::stdout());
        match export(&store, &schema, &query, &ExportOptions::default(), &mut out).await {
            Ok(_) => {}
            Err(TableError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(error) => return Err(error.into()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let page = store.search(&schema, &query).await?;
    let total = store.count(&schema).await?;
    let mut lines = vec![{
        let mut header = vec!["VERSION".to_owned()];
        header.extend(schema.columns.iter().map(|c| c.name.to_uppercase()));
        header
    }];
    for row in &page.rows {
        let mut line = vec![row.version.to_string()];
        for column in &schema.columns {
            let value = row
                .values
                .get(&column.name)
                .unwrap_or(&serde_json::Value::Null);
            line.push(short(&cell(column.kind, value, false)));
        }
        lines.push(line);
    }
    print!("{}", aligned(&lines));
    let shown = page.rows.len() as u64;
    if page.cursor.is_some() {
        eprintln!("… more rows match ({total} rows in the table); use --csv for all of them");
    } else if conditions.is_none() && shown != total {
        eprintln!("{shown} of {total} rows");
    } else {
        eprintln!("{shown} {}", if shown == 1 { "row" } else { "rows" });
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_file(
    location: &Location,
    table: &str,
    file: &Path,
    replace: bool,
) -> Result<ExitCode> {
    let schema = schema(location, table)?;
    let handle =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Arc::new(AtomicU64::new(0));
    let input = BufReader::with_capacity(
        64 * 1024,
        Counting {
            inner: handle,
            read: read.clone(),
        },
    );
    let store = open(&location.data)?;
    let on_duplicate = if replace {
        OnDuplicate::Replace
    } else {
        OnDuplicate::Fail
    };
    let mut bar = Progress::new(table, size, read);
    let result = import(&store, &schema, input, on_duplicate, |p| bar.update(p)).await;
    match result {
        Ok(done) => {
            bar.finish(done.rows);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            bar.clear();
            eprintln!(
                "error: {}: {error}\n(rows before the failing batch were imported; fix the line and import again with --replace)",
                file.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A reader that counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A progress bar on stderr: bytes of the file read, rows written, rows per second. Drawn only on a
/// terminal, at most ten times a second.
struct Progress {
    table: String,
    size: u64,
    read: Arc<AtomicU64>,
    started: Instant,
    drawn: Option<Instant>,
    terminal: bool,
}

impl Progress {
    fn new(table: &str, size: u64, read: Arc<AtomicU64>) -> Progress {
        Progress {
            table: table.to_owned(),
            size,
            read,
            started: Instant::now(),
            drawn: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, progress: ImportProgress) {
        if !self.terminal {
            return;
        }
        let now = Instant::now();
        if self
            .drawn
            .is_some_and(|at| now - at < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(now);
        let line = bar_line(
            &self.table,
            self.read.load(Ordering::Relaxed),
            self.size,
            progress.rows,
            now - self.started,
        );
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.terminal && self.drawn.is_some() {
            eprint!("\r\x1b[K");
        }
    }

    fn finish(&self, rows: u64) {
        self.clear();
        let elapsed = self.started.elapsed();
        eprintln!(
            "imported {} {} into {} in {:.1}s ({} rows/s)",
            thousands(rows),
            if rows == 1 { "row" } else { "rows" },
            self.table,
            elapsed.as_secs_f64(),
            thousands(rate(rows, elapsed))
        );
    }
}

fn rate(rows: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return rows;
    }
    (rows as f64 / seconds) as u64
}

/// `importing logins [########------------]  40%  12,000 rows  8,000 rows/s`
fn bar_line(table: &str, read: u64, size: u64, rows: u64, elapsed: Duration) -> String {
    const WIDTH: u64 = 24;
    let fraction = if size == 0 {
        1.0
    } else {
        (read.min(size) as f64) / (size as f64)
    };
    let filled = ((fraction * WIDTH as f64).round() as u64).min(WIDTH);
    format!(
        "importing {table} [{}{}] {:>3}%  {} rows  {} rows/s",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        (fraction * 100.0).floor() as u64,
        thousands(rows),
        thousands(rate(rows, elapsed)),
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cell for the text view: one line, at most 40 characters.
fn short(text: &str) -> String {
    let one_line = text.replace(['\r', '\n'], " ");
    if one_line.chars().count() > 40 {
        let mut cut: String = one_line.chars().take(39).collect();
        cut.push('…');
        cut
    } else {
        one_line
    }
}

/// Rows of cells as left-aligned columns.
fn aligned<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells = row.as_ref();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_share_rows_and_rate() {
        let check = |read: u64, size: u64, rows: u64, ms: u64, expected: &str| {
            assert_eq!(
                bar_line("logins", read, size, rows, Duration::from_millis(ms)),
                expected
            );
        };
        check(
            0,
            100,
            0,
            0,
            "importing logins [------------------------]   0%  0 rows  0 rows/s",
        );
        check(
            50,
            100,
            12_000,
            1500,
            "importing logins [############------------]  50%  12,000 rows  8,000 rows/s",
        );
        check(
            100,
            100,
            1_234_567,
            1000,
            "importing logins [########################] 100%  1,234,567 rows  1,234,567 rows/s",
        );
        check(
            5,
            0,
            1,
            1000,
            "importing logins [########################] 100%  1 rows  1 rows/s",
        );
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["A".to_owned(), "BB".to_owned()],
            vec!["ccc".to_owned(), "d".to_owned()],
        ];
        assert_eq!(aligned(&rows), "A    BB\nccc  d\n");
    }
}
