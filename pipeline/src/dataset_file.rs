//! Training rows on disk: Parquet (for pandas, Spark, SageMaker training
//! jobs) or CSV, chosen by the file's extension, written a row group at a
//! time so memory stays bounded whatever the capture's size.
//!
//! Columns, in order: `customer_id` (string), `as_of` (timestamp, ms, UTC),
//! `trigger` (`event`/`timer`), `split` (`train`/`valid`/`test`, by
//! customer), `period` (`before_cut`/`after_cut`/`straddles_cut`), the 46
//! features under their contract names (float64), then the five labels
//! (float64; empty when the label horizon is not inside the capture).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use pulse_model::Targets;
use pulse_runtime::io::Staged;
use pulse_schemas::{Trigger, FEATURE_COUNT, FEATURE_NAMES};

use crate::dataset::Row;

/// The five label columns, in order.
pub const LABELS: [&str; 5] =
    ["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score"];

/// Rows per row group (and per CSV batch).
const BATCH_ROWS: usize = 65_536;

fn label_values(t: &Targets) -> [f32; 5] {
    [t.first_session_success, t.session_velocity, t.churn_risk_14d, t.churn_risk_30d, t.health_score]
}

/// The file's schema.
pub fn schema() -> Schema {
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("as_of", DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())), false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("period", DataType::Utf8, false),
    ];
    fields.extend(FEATURE_NAMES.iter().map(|n| Field::new(*n, DataType::Float64, false)));
    fields.extend(LABELS.iter().map(|n| Field::new(*n, DataType::Float64, true)));
    Schema::new(fields)
}

/// A file written beside `path` and renamed over it only by [`commit`]
/// (`pulse_runtime::io::Staged`): a run that fails, or is killed, leaves
/// what `path` held before untouched.
pub fn create_beside(path: &Path) -> Result<(File, Staged)> {
    Staged::create(path)
}

/// Renames the file [`create_beside`] made over its path (written and flushed).
pub fn commit(temp: Staged) -> Result<()> {
    temp.commit()
}

enum Sink {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv(arrow_csv::Writer<BufWriter<File>>),
}

/// Columns being filled for the next batch.
struct Columns {
    customer: StringBuilder,
    as_of: TimestampMillisecondBuilder,
    trigger: StringBuilder,
    split: StringBuilder,
    period: StringBuilder,
    features: Vec<Float64Builder>,
    labels: Vec<Float64Builder>,
    rows: usize,
}

impl Columns {
    fn new() -> Columns {
        Columns {
            customer: StringBuilder::new(),
            as_of: TimestampMillisecondBuilder::new().with_timezone("+00:00"),
            trigger: StringBuilder::new(),
            split: StringBuilder::new(),
            period: StringBuilder::new(),
            features: (0..FEATURE_COUNT).map(|_| Float64Builder::with_capacity(BATCH_ROWS)).collect(),
            labels: (0..LABELS.len()).map(|_| Float64Builder::with_capacity(BATCH_ROWS)).collect(),
            rows: 0,
        }
    }

    fn push(&mut self, row: &Row) {
        self.customer.append_value(&row.customer_id);
        self.as_of.append_value(row.as_of);
        self.trigger.append_value(match row.trigger {
            Trigger::Event => "event",
            Trigger::Timer => "timer",
        });
        self.split.append_value(row.split.name());
        self.period.append_value(row.period.name());
        for (b, &x) in self.features.iter_mut().zip(row.features.iter()) {
            b.append_value(x);
        }
        match &row.targets {
            Some(t) => {
                for (b, y) in self.labels.iter_mut().zip(label_values(t)) {
                    b.append_value(f64::from(y));
                }
            }
            None => self.labels.iter_mut().for_each(|b| b.append_null()),
        }
        self.rows += 1;
    }

    fn batch(&mut self, schema: &Arc<Schema>) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer.finish()),
            Arc::new(self.as_of.finish()),
            Arc::new(self.trigger.finish()),
            Arc::new(self.split.finish()),
            Arc::new(self.period.finish()),
        ];
        columns.extend(self.features.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.extend(self.labels.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        self.rows = 0;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// A dataset file being written. Call [`DatasetWriter::finish`]: a Parquet
/// file without its footer is unreadable.
pub struct DatasetWriter {
    path: PathBuf,
    /// Where the rows go until [`DatasetWriter::finish`] renames it over `path`.
    temp: Staged,
    schema: Arc<Schema>,
    sink: Sink,
    columns: Columns,
    /// Rows written so far.
    pub rows: u64,
}

impl std::fmt::Debug for DatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetWriter").field("path", &self.path).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl DatasetWriter {
    /// Starts `path`: Parquet (zstd) for `.parquet`, CSV with a header for
    /// `.csv`. The rows go to a temporary file beside it, renamed over `path`
    /// by [`DatasetWriter::finish`]; dropped unfinished (a failed run), the
    /// writer removes it and leaves `path` as it was.
    pub fn create(path: &Path) -> Result<DatasetWriter> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        anyhow::ensure!(
            ext == "parquet" || ext == "csv",
            "{}: the dataset's format comes from its extension: .parquet or .csv",
            path.display()
        );
        let (file, temp) = create_beside(path)?;
        let file = BufWriter::with_capacity(1 << 20, file);
        let schema = Arc::new(schema());
        let sink = if ext == "parquet" {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                .set_max_row_group_row_count(Some(BATCH_ROWS))
                .build();
            Sink::Parquet(ArrowWriter::try_new(file, schema.clone(), Some(props))?)
        } else {
            Sink::Csv(arrow_csv::WriterBuilder::new().with_header(true).build(file))
        };
        Ok(DatasetWriter { path: path.to_owned(), temp, schema, sink, columns: Columns::new(), rows: 0 })
    }

    /// Adds a row.
    pub fn write(&mut self, row: &Row) -> Result<()> {
        self.columns.push(row);
        self.rows += 1;
        if self.columns.rows >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        let batch = self.columns.batch(&self.schema)?;
        match &mut self.sink {
            Sink::Parquet(w) => w.write(&batch),
            Sink::Csv(w) => w.write(&batch).map_err(Into::into),
        }
        .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Writes what is pending, closes the file and renames it over the path.
    pub fn finish(mut self) -> Result<()> {
        if self.columns.rows > 0 {
            self.flush_batch()?;
        }
        let path = self.path.clone();
        let context = || format!("cannot finish {}", path.display());
        match self.sink {
            Sink::Parquet(w) => {
                w.close().with_context(context)?;
            }
            Sink::Csv(w) => {
                use std::io::Write;
                w.into_inner().flush().with_context(context)?;
            }
        }
        commit(self.temp)
    }
}
