//! What pulse costs per day on AWS, next to the five-minute rescan it
//! replaces: one set of prices and one set of formulas, used by
//! `pulse loadtest` (which prints the model from its measured rates) and
//! described line by line in `docs/COST.md`.
//!
//! Prices are public on-demand list prices of us-east-1 as known to the
//! author on 2026-12-03, **not fetched** (no network where this was written):
//! check them against the AWS pricing pages before relying on a figure.
//!
//! What pulse does per event, read from the code (`aws/src/stamps.rs`,
//! `aws/src/due.rs`, `aws/src/output/`):
//!
//! * **stamps and due items**: after each batch, one `PutItem` (`sk = DUE`)
//!   per customer the batch applied a record to, holding both its stamp and
//!   its next due time, and before it a consistent `BatchGetItem` of the
//!   same customers (1 read unit each); `due_hour` (the due time's UTC day,
//!   as its first hour) is the key of a sparse index projecting `next_due`,
//!   so the write also writes the index: once when the day stays (the
//!   projected `next_due` changed), twice when it moves (delete + put),
//!   which it does at a customer's first event of a day
//!   ([`due_day_moves_per_event`]);
//! * **predictions**: one conditional `UpdateItem` (`sk = PRED#latest`) per
//!   prediction (under 1 KB with the customer's monitor ring, 92 base64
//!   characters);
//! * **anchors**: one conditional `UpdateItem` (`sk = MEM#anchors`, just over
//!   1 KB: 2 write units) per customer per week, when its weekly reference
//!   vector turns;
//! * **read-back**: each new function environment reads both items of each
//!   customer it meets, once (2 read units, consistent);
//! * all three go to the event table, whose stream hands them back to the
//!   function as records it reads and skips (trigger reads are free, the
//!   function's time is not);
//! * the hourly scheduled run Queries the due index (today's partition
//!   whole, filtered to those due) and rescores the silent customers: a
//!   Query of each one's history, a prediction and a due write;
//! * metrics as Embedded Metric Format log lines (no `PutMetricData`), alerts
//!   to SNS.
//!
//! A batch of the stream holds records of different customers (a customer
//! writes a few events a day), so the stamp-and-due item is one write per
//! event: with the index, about 2.4 of the 3.6 write units pulse spends per
//! event at 2.25 events a day (3 of 4.2 while the index was keyed by the
//! hour, 4 of 5.2 while the stamp was an item of its own).

use std::fmt::Write as _;

/// On-demand prices, us-east-1 (see the module's note on their date).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    /// Lambda, per GB-second (arm64, the template's default architecture).
    pub lambda_gb_second: f64,
    /// Lambda, per million requests.
    pub lambda_per_million_requests: f64,
    /// DynamoDB on-demand, per million write request units.
    pub dynamodb_per_million_wru: f64,
    /// DynamoDB on-demand, per million read request units.
    pub dynamodb_per_million_rru: f64,
    /// DynamoDB Streams, per 100,000 `GetRecords` read request units (free
    /// when a Lambda trigger reads the stream, which is how pulse reads it).
    pub streams_per_100k_reads: f64,
    /// SageMaker real-time inference, ml.m5.large, per instance-hour.
    pub sagemaker_m5_large_hour: f64,
    /// CloudWatch, per custom metric per month.
    pub cloudwatch_metric_month: f64,
    /// CloudWatch `PutMetricData`, per 1,000 requests.
    pub cloudwatch_per_1000_put: f64,
    /// SNS, per million publishes.
    pub sns_per_million_publishes: f64,
}

/// us-east-1 on-demand list prices as the author knew them on 2026-12-03.
/// DynamoDB on-demand throughput is the price after AWS halved it in
/// November 2024 ($0.625 and $0.125 per million; it was $1.25 and $0.25).
pub const US_EAST_1: Prices = Prices {
    lambda_gb_second: 0.000_013_333_4,
    lambda_per_million_requests: 0.20,
    dynamodb_per_million_wru: 0.625,
    dynamodb_per_million_rru: 0.125,
    streams_per_100k_reads: 0.02,
    sagemaker_m5_large_hour: 0.115,
    cloudwatch_metric_month: 0.30,
    cloudwatch_per_1000_put: 0.01,
    sns_per_million_publishes: 0.50,
};

/// The fleet's size and activity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Customers in the table.
    pub customers: f64,
    /// Events each customer writes per day (pulse's synthetic marketplace: about 2.2).
    pub events_per_customer_day: f64,
}

/// Rates measured by a run (`pulse loadtest`, `pulse demo`), or their defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Records pulse decodes and applies per second of one core (the
    /// engine: also the pace at which the rescan's function rebuilds a
    /// history's features).
    pub records_per_core_second: f64,
    /// Seconds of one core the function spends scoring each prediction with
    /// the embedded model (inference, the reasons' attribution, the stage's
    /// bookkeeping); none when pulse scores on an endpoint.
    pub scoring_core_seconds_per_prediction: f64,
    /// Predictions written per event (coalescing keeps it at or below 1 per
    /// vector).
    pub predictions_per_event: f64,
    /// Model calls per event (batches of rows: what an endpoint is called).
    pub model_calls_per_event: f64,
    /// Alerts per customer per day.
    pub alerts_per_customer_day: f64,
}

impl Default for Measured {
    /// Measured figures: 830,000 records/s decoded and applied on one core
    /// (`pulse loadtest --in-process --customers 5000 --days 30`: 827,528 to
    /// 843,550 in the middle three of five runs on 2026-12-05; the engine
    /// alone, the scoring being counted apart: the 130,000 this was before
    /// came from `pulse demo`, whose rate includes scoring), 1,585,503
    /// predictions and 4,334 alerts (with a new customer judged from its
    /// first week on; 5,237 when it was judged at its first session, 998
    /// when a new customer's first prediction past its defaults was a
    /// baseline too, 20,983 before any first prediction was; 2026-12-05)
    /// for 1,359,546 records of 20,000 customers over 30 days (`pulse demo
    /// --customers 20000 --days 30`), 16 µs of scoring per prediction with
    /// reasons (`pulse loadtest --in-process` measured 15.1 to 16.0,
    /// docs/COST.md), model calls as many as predictions (the live worst
    /// case: one call per vector).
    fn default() -> Self {
        Measured {
            records_per_core_second: 830_000.0,
            scoring_core_seconds_per_prediction: 16e-6,
            predictions_per_event: 1_585_503.0 / 1_359_546.0,
            model_calls_per_event: 1.0,
            alerts_per_customer_day: 4_334.0 / (20_000.0 * 30.0),
        }
    }
}

/// How pulse and the rescan are deployed: assumptions, not measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deployment {
    /// Function memory (GB); the template's default is 1,024 MB.
    pub lambda_memory_gb: f64,
    /// Records per invocation at most (`BatchSize`, template default 500).
    pub batch_size: f64,
    /// `MaximumBatchingWindowInSeconds` (template default 2).
    pub batching_window_s: f64,
    /// Stream shards (one per table partition; a table grows one per
    /// ~1,000 writes/s).
    pub shards: f64,
    /// Time an invocation waits on DynamoDB (stamp read, stamp, due and
    /// prediction writes), ms: an assumption, the function is billed for it.
    pub io_ms_per_batch: f64,
    /// How long a function environment lives before it is recycled, hours:
    /// an assumption (AWS does not say; a few hours is commonly seen). Each
    /// new environment reads back each customer it meets once.
    pub environment_hours: f64,
    /// Read units of a Query of one customer's 30-day history, per event in
    /// it (eventually consistent: 0.5 per 4 KB; an event item is ~250 B).
    pub rru_per_history_event: f64,
    /// Endpoint calls per second one ml.m5.large serves (small model, JSON).
    pub endpoint_calls_per_instance_second: f64,
    /// Whether pulse scores on a SageMaker endpoint (else in the function,
    /// the embedded model: no endpoint at all).
    pub pulse_uses_endpoint: bool,
    /// Custom metrics pulse publishes: 8 fleet + 14 health
    /// (`aws/src/output/metrics.rs`) + 12 of model quality (6 for each
    /// churn head, the `Head` dimension making each its own metric).
    pub pulse_metrics: f64,
    /// Metrics the rescan publishes (the 8 fleet metrics, by `PutMetricData`
    /// once per rescan).
    pub rescan_metrics: f64,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            lambda_memory_gb: 1.0,
            batch_size: 500.0,
            batching_window_s: 2.0,
            shards: 1.0,
            io_ms_per_batch: 50.0,
            environment_hours: 6.0,
            rru_per_history_event: 0.5 * 250.0 / 4096.0,
            endpoint_calls_per_instance_second: 200.0,
            pulse_uses_endpoint: false,
            pulse_metrics: 34.0,
            rescan_metrics: 8.0,
        }
    }
}

/// One line of a bill: a quantity per day and what it costs.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// What is paid for.
    pub item: &'static str,
    /// How many per day.
    pub quantity: f64,
    /// The unit of `quantity`.
    pub unit: &'static str,
    /// Dollars per day.
    pub dollars: f64,
}

/// A daily bill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bill {
    /// Its lines.
    pub lines: Vec<Line>,
}

impl Bill {
    fn add(&mut self, item: &'static str, quantity: f64, unit: &'static str, dollars: f64) {
        self.lines.push(Line { item, quantity, unit, dollars });
    }

    /// Dollars per day.
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|l| l.dollars).sum()
    }

    /// The share of the bill spent on stamps and due items (reads and writes).
    pub fn stamps_and_due_share(&self) -> f64 {
        let part: f64 =
            self.lines.iter().filter(|l| l.item.contains("stamp") || l.item.contains("due")).map(|l| l.dollars).sum();
        part / self.total().max(1e-12)
    }

    /// The line that costs the most.
    pub fn dominant(&self) -> Option<&Line> {
        self.lines.iter().max_by(|a, b| a.dollars.total_cmp(&b.dollars))
    }
}

const DAY_S: f64 = 86_400.0;
const MONTH_DAYS: f64 = 30.0;

/// The share of events that move their customer's due item to another day
/// of the index: a customer's first event of a day does (its due time, a
/// day after its vector, lands on the next day), the others of that day do
/// not. With Poisson events, `N` a day: `(1 − e^−N) / N` of them (0.40 at
/// N = 2.25; 1 as N goes to 0).
pub fn due_day_moves_per_event(events_per_customer_day: f64) -> f64 {
    let n = events_per_customer_day;
    if n < 1e-9 {
        1.0
    } else {
        (-(-n).exp_m1() / n).min(1.0)
    }
}

/// Bytes of one entry of the due index as a Query reads it (`customer_id`,
/// `sk`, `due_hour`, `next_due`: names and values).
const DUE_ENTRY_BYTES: f64 = 64.0;

/// pulse's bill per day. The table's own event writes (one per event) are
/// paid with or without pulse and left out of both bills.
pub fn pulse_daily(w: &Workload, m: &Measured, d: &Deployment, p: &Prices) -> Bill {
    let events = w.customers * w.events_per_customer_day;
    let predictions = events * m.predictions_per_event;
    // Customers silent for a day get one timer prediction from the hourly run.
    let silent = w.customers * (-w.events_per_customer_day).exp();
    let stamps = events; // one per customer per batch: customers rarely repeat in a batch
                         // The batch's customers' due times ride on their stamps' items; the
                         // hourly run writes the silent customers' alone.
    let items = stamps + silent;
    // A customer's anchors turn once a week (timer predictions keep even a
    // silent customer's turning).
    let anchors = w.customers / 7.0;
    // pulse's own writes (items, predictions, anchors) come back on the
    // stream, but the mapping's filter (entity_type = event) drops them
    // before an invocation: the function reads the events alone.
    let records = events;
    let batches_full = records / d.batch_size;
    let batches_window = d.shards * DAY_S / d.batching_window_s;
    let stream_batches = batches_full.max(batches_window.min(records));
    let scheduled = 24.0;
    let invocations = stream_batches + scheduled;
    // Scoring in the function: its predictions' CPU (the timer predictions
    // of the hourly run included).
    let scoring_s =
        if d.pulse_uses_endpoint { 0.0 } else { (predictions + silent) * m.scoring_core_seconds_per_prediction };
    let seconds = records / m.records_per_core_second + scoring_s + invocations * d.io_ms_per_batch / 1000.0;
    let gb_s = seconds * d.lambda_memory_gb;
    let mut b = Bill::default();
    b.add("Lambda duration", gb_s, "GB-s", gb_s * p.lambda_gb_second);
    b.add("Lambda requests", invocations, "invocations", invocations / 1e6 * p.lambda_per_million_requests);
    let wru = |n: f64| n / 1e6 * p.dynamodb_per_million_wru;
    let rru = |n: f64| n / 1e6 * p.dynamodb_per_million_rru;
    b.add("DynamoDB stamp + due item writes", items, "WRU", wru(items));
    b.add("DynamoDB stamp reads", stamps, "RRU", rru(stamps));
    // The index: an update when the day stays, delete + put when it moves
    // (the silent customers' items always move: their next timer is a day on).
    let index_writes = stamps * (1.0 + due_day_moves_per_event(w.events_per_customer_day)) + 2.0 * silent;
    b.add("DynamoDB due index writes", index_writes, "WRU", wru(index_writes));
    // The hourly run reads today's partition whole: everyone due before
    // midnight, on average half the customers (a customer's due time is
    // within a day of its last vector), eventually consistent.
    let index_reads = 24.0 * (0.5 * w.customers * DUE_ENTRY_BYTES / 4096.0).ceil() * 0.5;
    b.add("DynamoDB due index reads (hourly run)", index_reads, "RRU", rru(index_reads));
    b.add("DynamoDB prediction writes", predictions + silent, "WRU", wru(predictions + silent));
    b.add("DynamoDB anchors writes", 2.0 * anchors, "WRU", wru(2.0 * anchors));
    let read_back = 2.0 * w.customers * 24.0 / d.environment_hours;
    b.add("DynamoDB read-back after a cold start", read_back, "RRU", rru(read_back));
    let history = silent * w.events_per_customer_day * 30.0 * d.rru_per_history_event;
    b.add("DynamoDB hourly-run history reads", history, "RRU", rru(history));
    b.add("DynamoDB Streams reads (Lambda trigger)", stream_batches, "GetRecords", 0.0);
    let calls = events * m.model_calls_per_event + silent;
    let instances = if d.pulse_uses_endpoint {
        (calls / DAY_S / d.endpoint_calls_per_instance_second).ceil().max(1.0)
    } else {
        0.0
    };
    b.add("SageMaker instance-hours", instances * 24.0, "ml.m5.large h", instances * 24.0 * p.sagemaker_m5_large_hour);
    let metrics = d.pulse_metrics * p.cloudwatch_metric_month / MONTH_DAYS;
    b.add("CloudWatch metrics (EMF)", d.pulse_metrics, "metrics", metrics);
    let alerts = w.customers * m.alerts_per_customer_day;
    b.add("SNS alerts", alerts, "publishes", alerts / 1e6 * p.sns_per_million_publishes);
    b
}

/// The five-minute rescan's bill per day: every 5 minutes, a Query of every
/// customer's 30-day history and one endpoint call per customer, run by a
/// function (`records_per_core_second` of the same work).
pub fn rescan_daily(w: &Workload, m: &Measured, d: &Deployment, p: &Prices) -> Bill {
    let rescans = DAY_S / 300.0;
    let held = w.events_per_customer_day * 30.0;
    let reads = rescans * w.customers * (held * d.rru_per_history_event).max(0.5);
    let calls = rescans * w.customers;
    let records = rescans * w.customers * held;
    let seconds = records / m.records_per_core_second + calls / d.endpoint_calls_per_instance_second;
    let gb_s = seconds * d.lambda_memory_gb;
    let mut b = Bill::default();
    b.add("Lambda duration", gb_s, "GB-s", gb_s * p.lambda_gb_second);
    b.add("Lambda requests", rescans, "invocations", rescans / 1e6 * p.lambda_per_million_requests);
    b.add("DynamoDB Query reads", reads, "RRU", reads / 1e6 * p.dynamodb_per_million_rru);
    let instances = (calls / DAY_S / d.endpoint_calls_per_instance_second).ceil().max(1.0);
    b.add("SageMaker instance-hours", instances * 24.0, "ml.m5.large h", instances * 24.0 * p.sagemaker_m5_large_hour);
    let metrics =
        d.rescan_metrics * p.cloudwatch_metric_month / MONTH_DAYS + rescans / 1000.0 * p.cloudwatch_per_1000_put;
    b.add("CloudWatch metrics (PutMetricData)", d.rescan_metrics, "metrics", metrics);
    let alerts = w.customers * m.alerts_per_customer_day;
    b.add("SNS alerts", alerts, "publishes", alerts / 1e6 * p.sns_per_million_publishes);
    b
}

/// The date of [`US_EAST_1`]'s prices.
pub const PRICES_AS_OF: &str = "2026-12-03";

/// The fleet sizes both bills are drawn up for.
pub const FLEETS: [f64; 3] = [10_000.0, 100_000.0, 1_000_000.0];

/// Per fleet size of [`FLEETS`]: the customers, pulse's bill, the rescan's.
fn bills(
    events_per_customer_day: f64,
    m: &Measured,
    d: &Deployment,
    p: &Prices,
) -> impl Iterator<Item = (f64, Bill, Bill)> {
    let (m, d, p) = (*m, *d, *p);
    FLEETS.into_iter().map(move |customers| {
        let w = Workload { customers, events_per_customer_day };
        (customers, pulse_daily(&w, &m, &d, &p), rescan_daily(&w, &m, &d, &p))
    })
}

/// [`report`] as JSON, for a program (`pulse loadtest --summary-json`):
/// the rates and, per fleet size, both bills with their lines.
pub fn report_json(events_per_customer_day: f64, m: &Measured, d: &Deployment, p: &Prices) -> serde_json::Value {
    let bill = |b: &Bill| {
        let lines: Vec<_> = b
            .lines
            .iter()
            .map(|l| serde_json::json!({"item": l.item, "quantity": l.quantity, "unit": l.unit, "dollars": l.dollars}))
            .collect();
        serde_json::json!({"dollars_per_day": b.total(), "lines": lines})
    };
    let fleets: Vec<_> = bills(events_per_customer_day, m, d, p)
        .map(|(customers, pulse, rescan)| {
            serde_json::json!({
                "customers": customers,
                "pulse": bill(&pulse),
                "rescan": bill(&rescan),
                "rescan_over_pulse": rescan.total() / pulse.total().max(1e-12),
                "stamps_and_due_share": pulse.stamps_and_due_share(),
            })
        })
        .collect();
    serde_json::json!({
        "prices": format!("us-east-1 on-demand list prices as of {PRICES_AS_OF} (not fetched: docs/COST.md)"),
        "events_per_customer_day": events_per_customer_day,
        "records_per_core_second": m.records_per_core_second,
        "scoring_core_seconds_per_prediction": m.scoring_core_seconds_per_prediction,
        "predictions_per_event": m.predictions_per_event,
        "model_calls_per_event": m.model_calls_per_event,
        "alerts_per_customer_day": m.alerts_per_customer_day,
        "scoring": if d.pulse_uses_endpoint { "endpoint" } else { "function" },
        "fleets": fleets,
    })
}

/// Both bills at 10k, 100k and 1M customers, as a text table.
pub fn report(events_per_customer_day: f64, m: &Measured, d: &Deployment, p: &Prices) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cost per day, us-east-1 on-demand list prices as of {PRICES_AS_OF} (not fetched: see docs/COST.md), \
         {events_per_customer_day:.2} events per customer per day, {:.0} records/s per core, \
         {:.1} µs of a core per prediction scored in the function, \
         {:.2} predictions and {:.2} model calls per event, scoring {}",
        m.records_per_core_second,
        m.scoring_core_seconds_per_prediction * 1e6,
        m.predictions_per_event,
        m.model_calls_per_event,
        if d.pulse_uses_endpoint { "on a SageMaker endpoint" } else { "in the function" }
    );
    for (customers, pulse, rescan) in bills(events_per_customer_day, m, d, p) {
        let _ = writeln!(
            out,
            "  {customers:>9.0} customers  pulse ${:>10.2}/day   5-min rescan ${:>10.2}/day   ({:.1}x)",
            pulse.total(),
            rescan.total(),
            rescan.total() / pulse.total().max(1e-12)
        );
        let _ =
            writeln!(out, "      stamps and due items: {:.0}% of pulse's bill", 100.0 * pulse.stamps_and_due_share());
        for (name, bill) in [("pulse", &pulse), ("rescan", &rescan)] {
            for l in bill.lines.iter().filter(|l| l.quantity > 0.0) {
                let _ = writeln!(
                    out,
                    "      {name:<6} {:<38} {:>16.0} {:<14} ${:>10.2}",
                    l.item, l.quantity, l.unit, l.dollars
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10,000 customers, 2 events a day, every rate 1, in the function.
    #[test]
    fn one_case_computed_by_hand() {
        let w = Workload { customers: 10_000.0, events_per_customer_day: 2.0 };
        let m = Measured {
            records_per_core_second: 100_000.0,
            scoring_core_seconds_per_prediction: 1e-5,
            predictions_per_event: 1.0,
            model_calls_per_event: 1.0,
            alerts_per_customer_day: 0.01,
        };
        let d = Deployment::default();
        let b = pulse_daily(&w, &m, &d, &US_EAST_1);
        let get = |item: &str| b.lines.iter().find(|l| l.item == item).unwrap().clone();
        // 20,000 events; silent customers 10,000 * e^-2 = 1,353.35.
        let silent = 10_000.0 * (-2.0f64).exp();
        // Items (stamp + due) 20,000 + silent WRU; their index: one write
        // each, and one more for the 43.2% of events that move their day
        // ((1 - e^-2) / 2) and for every silent customer's; stamp reads
        // 20,000 RRU = $0.0025.
        let items = 20_000.0 + silent;
        assert!((get("DynamoDB stamp + due item writes").dollars - items * 0.625e-6).abs() < 1e-12);
        let moves = (1.0 - (-2.0f64).exp()) / 2.0;
        assert!((moves - 0.432_332).abs() < 1e-6);
        assert!((get("DynamoDB due index writes").quantity - (20_000.0 * (1.0 + moves) + 2.0 * silent)).abs() < 1e-9);
        // Today's partition, half of 10,000 entries of 64 B: 79 pages of
        // 4 KB at 0.5, 24 times.
        assert!((get("DynamoDB due index reads (hourly run)").quantity - 24.0 * 79.0 * 0.5).abs() < 1e-9);
        assert!((get("DynamoDB stamp reads").dollars - 0.0025).abs() < 1e-12);
        // Records: the 20,000 events (pulse's own writes are filtered out
        // by the mapping); batches: 20,000 (one event a 2-s window: the
        // 43,200 windows are more than the records) + 24 scheduled.
        let records = 20_000.0;
        // Read-back: 2 items of each customer, in 4 environments a day.
        assert!((get("DynamoDB read-back after a cold start").quantity - 80_000.0).abs() < 1e-9);
        assert!((get("Lambda requests").quantity - 20_024.0).abs() < 1e-9);
        // Duration: records / 100,000 + 21,353.35 predictions (the silent
        // customers' included) * 10 µs + 20,024 * 0.05 s = 0.2 + 0.214 +
        // 1,001.2 s at 1 GB.
        let gb_s = records / 100_000.0 + (20_000.0 + silent) * 1e-5 + 20_024.0 * 0.05;
        assert!((get("Lambda duration").quantity - gb_s).abs() < 1e-9);
        assert!((get("Lambda duration").dollars - gb_s * 0.000_013_333_4).abs() < 1e-12);
        assert_eq!(get("SageMaker instance-hours").quantity, 0.0);
        // Scoring on an endpoint: the function no longer spends the
        // predictions' CPU, the endpoint's instances are paid instead.
        let on_endpoint = pulse_daily(&w, &m, &Deployment { pulse_uses_endpoint: true, ..d }, &US_EAST_1);
        let get_e = |item: &str| on_endpoint.lines.iter().find(|l| l.item == item).unwrap().clone();
        let without_scoring = records / 100_000.0 + 20_024.0 * 0.05;
        assert!((get_e("Lambda duration").quantity - without_scoring).abs() < 1e-9);
        assert_eq!(get_e("SageMaker instance-hours").quantity, 24.0);
        // The rescan: 288 * 10,000 endpoint calls = 33.3/s: one instance, $2.76 a day.
        let r = rescan_daily(&w, &m, &d, &US_EAST_1);
        let sm = r.lines.iter().find(|l| l.item == "SageMaker instance-hours").unwrap();
        assert!((sm.dollars - 24.0 * 0.115).abs() < 1e-12);
        assert!(r.total() > b.total());
        let share = b.stamps_and_due_share();
        assert!(share > 0.0 && share < 1.0);
    }

    #[test]
    fn due_days_move_at_a_customers_first_event_of_a_day() {
        assert!((due_day_moves_per_event(2.25) - 0.397_6).abs() < 1e-4);
        assert_eq!(due_day_moves_per_event(0.0), 1.0);
        assert!((due_day_moves_per_event(1e-6) - 1.0).abs() < 1e-6);
        // Busier customers move less per event, never more than once per event.
        let rates: Vec<f64> = [0.1, 0.5, 1.0, 2.0, 5.0, 20.0].map(due_day_moves_per_event).to_vec();
        assert!(rates.windows(2).all(|w| w[0] > w[1] && w[0] <= 1.0), "{rates:?}");
    }

    #[test]
    fn the_report_names_every_scale() {
        let text = report(2.2, &Measured::default(), &Deployment::default(), &US_EAST_1);
        for n in ["10000", "100000", "1000000", "stamp + due item writes", "5-min rescan"] {
            assert!(text.contains(n), "{n}: {text}");
        }
    }
}
