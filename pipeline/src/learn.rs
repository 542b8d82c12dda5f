//! Training data made by pulse's own engine, labelled from the future.
//!
//! A synthetic marketplace is generated and streamed straight through the
//! same decode → engine path as `pulse replay` (daily timers on), so every
//! training row is a vector pulse itself would serve: no feature is computed
//! by a second code path. Rows are then labelled with what the customer did
//! *after* the vector's `as_of` (definitions in `docs/LABELS.md`), and only
//! rows whose 30-day label horizon lies inside the data are kept.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use pulse_model::{Dataset, Targets};
use pulse_operators::{Engine, EngineConfig};
use pulse_schemas::capture::decode_line;
use pulse_schemas::{EventKind, Features, Source, StreamChange, Trigger, DAY_MS};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use xxhash_rust::xxh3::xxh3_64;

use pulse_runtime::process::{Processor, Produced};
use pulse_synth::{generate, SynthConfig};

/// How to make the data set.
#[derive(Clone, Debug)]
pub struct DatasetConfig {
    /// The marketplace to simulate (default: 10,000 customers over 90 days).
    pub synth: SynthConfig,
    /// Rows start this many days into the data, once windows have filled.
    pub burn_in_days: i64,
    /// Keep one event-triggered vector in this many (all timer vectors are kept).
    pub event_sample_every: u64,
    /// Customers for training / validation; the rest are held out for testing.
    pub train_customers: usize,
    /// See `train_customers`.
    pub valid_customers: usize,
    /// Seeds the customer split.
    pub split_seed: u64,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            synth: SynthConfig { customers: 10_000, days: 90, seed: 42, ..SynthConfig::default() },
            burn_in_days: 21,
            event_sample_every: 4,
            train_customers: 7_000,
            valid_customers: 1_500,
            split_seed: 7,
        }
    }
}

/// Label horizons.
const H14: i64 = 14 * DAY_MS;
const H30: i64 = 30 * DAY_MS;

/// A customer's future as the labels read it.
#[derive(Debug, Default)]
struct Future {
    /// Completed sessions: (ts, tutor).
    sessions: Vec<(i64, String)>,
    /// Ratings: (ts, tutor, rating).
    ratings: Vec<(i64, String, f64)>,
    /// Every event's ts (any type).
    activity: Vec<i64>,
}

/// The labels of a vector of this customer as of `t` (see `docs/LABELS.md`).
fn label(f: &Future, t: i64) -> Targets {
    let after = f.sessions.partition_point(|(ts, _)| *ts <= t);
    let within = |h: i64| f.sessions[after..].iter().take_while(|(ts, _)| *ts <= t + h).count();
    let (n14, n30) = (within(H14), within(H30));
    let churn_14 = n14 == 0;
    let churn_30 = n30 == 0;
    let velocity = n14 as f64 / 2.0;
    // The first session after T within 14 days, rated >= 4 by the first rating
    // of that tutor in the day after it.
    let first_success = f.sessions.get(after).filter(|(ts, _)| *ts <= t + H14).is_some_and(|(ts, tutor)| {
        f.ratings
            .iter()
            .find(|(rts, rtutor, _)| rts >= ts && *rts <= ts + DAY_MS && rtutor == tutor)
            .is_some_and(|(_, _, r)| *r >= 4.0)
    });
    Targets {
        first_session_success: f32::from(u8::from(first_success)),
        session_velocity: velocity as f32,
        churn_risk_14d: f32::from(u8::from(churn_14)),
        churn_risk_30d: f32::from(u8::from(churn_30)),
        health_score: health(n30, active_days(&f.activity, t, H30)) as f32,
    }
}

/// Distinct days (UTC) with any event in (t, t + horizon].
fn active_days(activity: &[i64], t: i64, horizon: i64) -> usize {
    let from = activity.partition_point(|&ts| ts <= t);
    let mut days: Vec<i64> =
        activity[from..].iter().take_while(|&&ts| ts <= t + horizon).map(|ts| ts.div_euclid(DAY_MS)).collect();
    days.dedup();
    days.len()
}

/// Health, 0–100, from what the customer does in the 30 days after T: half
/// from completed sessions (saturating at 3, one every ten days), half from
/// days active on the platform (saturating at 8, twice a week).
/// Saturation makes "engaged enough" full health instead of rewarding
/// volume, and keeps the label from following the noise of a few sessions.
pub fn health(sessions_30: usize, active_days_30: usize) -> f64 {
    let sessions = (sessions_30 as f64 / 3.0).min(1.0);
    let active = (active_days_30 as f64 / 8.0).min(1.0);
    100.0 * (0.5 * sessions + 0.5 * active)
}

/// Rows of one customer group.
#[derive(Debug, Default)]
pub struct Split {
    /// The labelled rows.
    pub data: Dataset,
    /// Distinct customers.
    pub customers: usize,
}

/// The three customer-disjoint splits.
#[derive(Debug, Default)]
pub struct Splits {
    /// For fitting.
    pub train: Split,
    /// For choosing the epoch.
    pub valid: Split,
    /// Held out for the evaluation.
    pub test: Split,
    /// Records streamed through the engine.
    pub records: u64,
}

/// Feeds complete lines written to it to a closure (so generation and
/// replay run in one pass, with no file in between).
struct LineSink<F: FnMut(&[u8])> {
    pending: Vec<u8>,
    on_line: F,
}

impl<F: FnMut(&[u8])> Write for LineSink<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
            for line in self.pending[..last].split(|&b| b == b'\n') {
                (self.on_line)(line);
            }
            self.pending.drain(..=last);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Generates, replays and labels; `progress` gets records streamed so far.
pub fn build(config: &DatasetConfig, progress: &mut dyn FnMut(u64)) -> Result<Splits> {
    let start = config.synth.start_ms;
    let end = config.synth.end_ms();
    let (first_row, last_row) = (start + config.burn_in_days * DAY_MS, end - H30);
    anyhow::ensure!(first_row < last_row, "--days must exceed the burn-in plus the 30-day label horizon");

    let engine = Arc::new(Engine::new(EngineConfig::default()));
    let mut processor = Processor::new(engine);
    let mut futures: HashMap<String, Future> = HashMap::new();
    // Event ids already counted, per customer: a redelivered event is one event.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut rows: Vec<(String, i64, Features)> = Vec::new();
    let mut records = 0u64;
    let mut produced = Produced::default();
    let mut sink = LineSink {
        pending: Vec::new(),
        on_line: |line: &[u8]| {
            records += 1;
            let decoded = decode_line(line);
            if let Ok(record) = &decoded {
                if let StreamChange::Insert(e) = &record.change {
                    let key = (xxh3_64(e.customer_id.as_bytes()), xxh3_64(e.event_id.as_bytes()));
                    if seen.insert(key) {
                        let f = futures.entry(e.customer_id.to_string()).or_default();
                        f.activity.push(e.ts.0);
                        match &e.kind {
                            EventKind::SessionCompleted { tutor_id, .. } => {
                                f.sessions.push((e.ts.0, tutor_id.to_string()))
                            }
                            EventKind::SessionRated { tutor_id, rating } => {
                                f.ratings.push((e.ts.0, tutor_id.to_string(), *rating))
                            }
                            _ => {}
                        }
                    }
                }
            }
            processor.process(decoded, Source::default(), line, &mut produced);
            for v in produced.vectors.drain(..) {
                let key = xxh3_64(v.customer_id.as_str().as_bytes()) ^ v.as_of as u64;
                let keep_event =
                    key.wrapping_mul(0x9E37_79B9_7F4A_7C15).is_multiple_of(config.event_sample_every.max(1));
                if v.as_of >= first_row && v.as_of <= last_row && (v.trigger == Trigger::Timer || keep_event) {
                    rows.push((v.customer_id.to_string(), v.as_of, v.features));
                }
            }
            produced.dead.clear();
        },
    };
    generate(&config.synth, &mut sink, &mut |n| progress(n))?;
    drop(sink);

    for f in futures.values_mut() {
        f.sessions.sort();
        f.activity.sort_unstable();
        f.ratings.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    }
    let mut customers: Vec<&String> = futures.keys().collect();
    customers.sort();
    customers.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(config.split_seed));
    let group: HashMap<&str, usize> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let g = if i < config.train_customers {
                0
            } else if i < config.train_customers + config.valid_customers {
                1
            } else {
                2
            };
            (c.as_str(), g)
        })
        .collect();

    let mut splits = Splits { records, ..Splits::default() };
    let empty = Future::default();
    for (customer, as_of, features) in &rows {
        let target = label(futures.get(customer).unwrap_or(&empty), *as_of);
        let split = match group.get(customer.as_str()) {
            Some(0) => &mut splits.train,
            Some(1) => &mut splits.valid,
            _ => &mut splits.test,
        };
        split.data.push(*features, target);
    }
    let counts = group.values().fold([0usize; 3], |mut acc, &g| {
        acc[g] += 1;
        acc
    });
    splits.train.customers = counts[0];
    splits.valid.customers = counts[1];
    splits.test.customers = counts[2];
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(sessions: &[i64], ratings: &[(i64, f64)]) -> Future {
        Future {
            activity: sessions.to_vec(),
            sessions: sessions.iter().map(|&t| (t, "tut".to_string())).collect(),
            ratings: ratings.iter().map(|&(t, r)| (t, "tut".to_string(), r)).collect(),
        }
    }

    #[test]
    fn labels_look_only_after_as_of() {
        let t = 100 * DAY_MS;
        // A session at T itself is the past; one at T+1ms is the future.
        let f = future(&[t, t + 1, t + 20 * DAY_MS], &[(t + 1 + 3_600_000, 4.5)]);
        let y = label(&f, t);
        assert_eq!(y.churn_risk_14d, 0.0);
        assert_eq!(y.churn_risk_30d, 0.0);
        assert_eq!(y.session_velocity, 0.5);
        assert_eq!(y.first_session_success, 1.0);
        // Exactly T+14d is inside (T, T+14d].
        let y = label(&future(&[t + H14], &[]), t);
        assert_eq!((y.churn_risk_14d, y.session_velocity, y.first_session_success), (0.0, 0.5, 0.0));
        let y = label(&future(&[t + H14 + 1], &[]), t);
        assert_eq!((y.churn_risk_14d, y.churn_risk_30d), (1.0, 0.0));
        let y = label(&future(&[t - 1], &[]), t);
        assert_eq!((y.churn_risk_14d, y.churn_risk_30d), (1.0, 1.0));
    }

    #[test]
    fn a_low_rating_is_no_success() {
        let t = 0;
        let y = label(&future(&[DAY_MS], &[(DAY_MS + 60_000, 3.5)]), t);
        assert_eq!(y.first_session_success, 0.0);
    }

    #[test]
    fn health_spans_0_to_100() {
        assert_eq!(health(0, 0), 0.0);
        assert_eq!(health(3, 8), 100.0);
        assert_eq!(health(9, 30), 100.0);
        assert_eq!(health(1, 4), 100.0 * (0.5 / 3.0 + 0.25));
    }

    #[test]
    fn active_days_counts_distinct_days_after_t() {
        let t = 10 * DAY_MS;
        let a = [t - 1, t, t + 1, t + 2, t + DAY_MS, t + 30 * DAY_MS, t + 30 * DAY_MS + 1];
        // (t, t+30d]: t+1 and t+2 share day 10; t+1d is day 11; t+30d is day 40.
        assert_eq!(active_days(&a, t, H30), 3);
    }

    #[test]
    fn build_makes_customer_disjoint_labelled_splits() {
        let config = DatasetConfig {
            synth: SynthConfig { customers: 60, days: 60, seed: 3, ..SynthConfig::default() },
            burn_in_days: 14,
            event_sample_every: 2,
            train_customers: 40,
            valid_customers: 10,
            split_seed: 1,
        };
        let splits = build(&config, &mut |_| {}).unwrap();
        assert_eq!((splits.train.customers, splits.valid.customers, splits.test.customers), (40, 10, 10));
        assert!(splits.train.data.len() > splits.test.data.len());
        assert!(!splits.test.data.is_empty());
        let churned = splits.train.data.targets.iter().filter(|t| t.churn_risk_14d == 1.0).count();
        assert!(churned > 0 && churned < splits.train.data.len(), "both classes present");
    }
}

/// One head's figures on the held-out customers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HeadReport {
    /// The head.
    pub head: &'static str,
    /// What is measured (`AUC`, `accuracy`, `MAE`).
    pub metric: &'static str,
    /// The network.
    pub model: f64,
    /// A constant: the training median for MAE, the training base rate for
    /// accuracy (AUC 0.5 by definition).
    pub constant: f64,
    /// Logistic regression on the same features (binary heads only).
    pub logistic: Option<f64>,
    /// What today's system publishes, where it does.
    pub published: Option<&'static str>,
}

/// The evaluation of a model on held-out rows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    /// Rows evaluated.
    pub rows: usize,
    /// Customers they belong to.
    pub customers: usize,
    /// Per head and metric.
    pub heads: Vec<HeadReport>,
}

/// Scores the test split with the model and the baselines.
pub fn evaluate(model: &pulse_model::EmbeddedModel, train: &Dataset, test: &Split) -> Result<Evaluation> {
    use pulse_model::metrics::{accuracy, auc, mae};
    use pulse_model::train::Logistic;
    let rows = &test.data.rows;
    let truth = &test.data.targets;
    let mut scores = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(4096) {
        scores.extend(model.score_now(chunk)?);
    }
    let mean = |f: &dyn Fn(&Targets) -> f32| {
        train.targets.iter().map(|t| f64::from(f(t))).sum::<f64>() / train.len().max(1) as f64
    };
    let mut heads = Vec::new();
    type Pick = fn(&Targets) -> f32;
    type Out = fn(&pulse_schemas::prediction::Scores) -> f64;
    let binary: [(&'static str, Pick, Out, Option<&'static str>); 3] = [
        (
            "first_session_success",
            |t| t.first_session_success,
            |s| s.first_session_success,
            Some("accuracy \"100%\" (suggests leakage)"),
        ),
        ("churn_risk_14d", |t| t.churn_risk_14d, |s| s.churn_risk_14d, None),
        ("churn_risk_30d", |t| t.churn_risk_30d, |s| s.churn_risk_30d, None),
    ];
    for (head, pick, out, published) in binary {
        let labels: Vec<bool> = truth.iter().map(|t| pick(t) >= 0.5).collect();
        let p: Vec<f64> = scores.iter().map(out).collect();
        let logistic = Logistic::fit(train, pick)?.predict(rows)?;
        let base = mean(&pick);
        let constant = vec![base; rows.len()];
        heads.push(HeadReport {
            head,
            metric: "AUC",
            model: auc(&p, &labels).unwrap_or(f64::NAN),
            constant: 0.5,
            logistic: auc(&logistic, &labels),
            published: None,
        });
        heads.push(HeadReport {
            head,
            metric: "accuracy",
            model: accuracy(&p, &labels),
            constant: accuracy(&constant, &labels),
            logistic: Some(accuracy(&logistic, &labels)),
            published,
        });
    }
    let regression: [(&'static str, Pick, Out, Option<&'static str>); 2] = [
        ("session_velocity", |t| t.session_velocity, |s| s.session_velocity, None),
        ("health_score", |t| t.health_score, |s| s.health_score, Some("MAE ≈ 5.7")),
    ];
    for (head, pick, out, published) in regression {
        let y: Vec<f64> = truth.iter().map(|t| f64::from(pick(t))).collect();
        let p: Vec<f64> = scores.iter().map(out).collect();
        // The best constant under absolute error: the training median.
        let mut train_y: Vec<f64> = train.targets.iter().map(|t| f64::from(pick(t))).collect();
        train_y.sort_by(f64::total_cmp);
        let base = train_y.get(train_y.len() / 2).copied().unwrap_or(0.0);
        heads.push(HeadReport {
            head,
            metric: "MAE",
            model: mae(&p, &y),
            constant: mae(&vec![base; y.len()], &y),
            logistic: None,
            published,
        });
    }
    Ok(Evaluation { rows: rows.len(), customers: test.customers, heads })
}

impl Evaluation {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Held-out customers: {} ({} vectors).\n\n| head | metric | model | constant | logistic regression | today's published |\n|---|---|---|---|---|---|\n",
            self.customers, self.rows
        );
        for h in &self.heads {
            s += &format!(
                "| {} | {} | {:.4} | {:.4} | {} | {} |\n",
                h.head,
                h.metric,
                h.model,
                h.constant,
                h.logistic.map_or("–".into(), |v| format!("{v:.4}")),
                h.published.unwrap_or("–")
            );
        }
        s
    }
}
