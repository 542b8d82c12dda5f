//! What to generate: [`SynthConfig`], the [`WorldKind`] customers live in,
//! the starting [`SegmentMix`] and the [`Hostility`] of the stream. Everything
//! is validated without I/O by [`SynthConfig::validate`] before a single
//! record is written.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Context};

/// 2026-01-05T00:00:00Z (a Monday) in milliseconds: the default first day.
pub const DEFAULT_START_MS: i64 = 1_767_571_200_000;

/// How far before `start_ms` a capture's event times reach: a hostile
/// capture's TTL expiries and late events are dated up to 120 days back.
pub const BACK_DATED_MS: i64 = 121 * pulse_schemas::DAY_MS;
/// How far after the capture's end its event times reach: future-dated
/// events up to three days and an hour after their record's creation.
pub const FORWARD_DATED_MS: i64 = 4 * pulse_schemas::DAY_MS;
/// The earliest `start_ms`: the decoder's first plausible time (2000-01-01,
/// [`pulse_schemas::validate::EARLIEST_MS`]) plus [`BACK_DATED_MS`], 2000-05-01.
pub const EARLIEST_START_MS: i64 = pulse_schemas::validate::EARLIEST_MS + BACK_DATED_MS;
/// The latest end (`start_ms + days`): the end of the decoder's plausible
/// range (2200-01-01, excluded, [`pulse_schemas::validate::LATEST_MS`]) less
/// [`FORWARD_DATED_MS`], 2199-12-28.
pub const LATEST_END_MS: i64 = pulse_schemas::validate::LATEST_MS - FORWARD_DATED_MS;

/// The whole configuration of one synthetic capture.
///
/// Same configuration, same bytes: the output depends on nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of customers (`stu_000000` ...).
    pub customers: usize,
    /// Number of days of activity.
    pub days: u32,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The first day's midnight UTC, in milliseconds since the epoch.
    pub start_ms: i64,
    /// How customers behave: [`WorldKind::Classic`] (the default) or
    /// [`WorldKind::Lifecycle`], a world simulated differently to test whether
    /// a model trained on the first generalises.
    pub world: WorldKind,
    /// Segment shares of the customers on the first day (Classic); in
    /// Lifecycle, the shares of the intents customers have when they enter
    /// (on the first day or at signup), see [`WorldKind::Lifecycle`].
    pub mix: SegmentMix,
    /// Which imperfections of a real stream to add.
    pub hostility: Hostility,
    /// Table name, used in `eventSourceARN` (DynamoDB rules: 3 to 255 of `[A-Za-z0-9_.-]`).
    pub table_name: String,
    /// What event items carry besides the contract's attributes, so how
    /// large each record is.
    pub record_profile: RecordProfile,
    /// A change of behaviour from a day on (a drift for the model monitor to
    /// see); `None` for none.
    pub shift: Option<Shift>,
}

/// From day `from_day` (0-based) on, every customer's chance of a session on
/// a day is multiplied by `session_factor` (Classic world). Every random draw
/// before that day is the same as without the shift, so a capture with a
/// shift equals the one without up to the shift's first day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    /// The first day of the new behaviour (0-based, like the generator's days).
    pub from_day: u32,
    /// The factor on the daily chance of a session, in `[0, 4]`.
    pub session_factor: f64,
}

impl Shift {
    /// The factor on the chance of a session on `day`.
    pub fn session_factor_on(shift: Option<Shift>, day: u32) -> f64 {
        match shift {
            Some(s) if day >= s.from_day => s.session_factor,
            _ => 1.0,
        }
    }
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            customers: 10_000,
            days: 60,
            seed: 0,
            start_ms: DEFAULT_START_MS,
            world: WorldKind::Classic,
            mix: SegmentMix::default(),
            hostility: Hostility::default(),
            table_name: "marketplace-events".to_owned(),
            record_profile: RecordProfile::Compact,
            shift: None,
        }
    }
}

impl SynthConfig {
    /// The end of the capture (exclusive): `start_ms + days * day`.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.days) * pulse_schemas::DAY_MS
    }

    /// Checks every field; the error names the field and the rule.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.customers >= 1, "synth: customers must be at least 1");
        ensure!(
            self.customers <= 100_000_000,
            "synth: customers = {} is more than the supported 100,000,000",
            self.customers
        );
        ensure!(self.days >= 1, "synth: days must be at least 1");
        ensure!(self.days <= 3650, "synth: days = {} is more than the supported 3650", self.days);
        // Every time the capture holds must be one pulse's decoder accepts
        // (2000-01-01 to before 2200-01-01): a start of 0 (1970) made a
        // capture whose every record was an implausible_creation_time dead
        // letter in `pulse replay`.
        ensure!(
            self.start_ms >= EARLIEST_START_MS
                && self.start_ms <= LATEST_END_MS - i64::from(self.days) * pulse_schemas::DAY_MS,
            "synth: start_ms = {} is outside the range pulse decodes: records are plausible from 2000-01-01 to before \
             2200-01-01, so the capture, with its back-dated events up to 121 days before the start and its \
             future-dated ones up to 4 days after the end, must start on or after 2000-05-01 (start_ms >= {}) and \
             end (start + {} days) by 2199-12-28 (start_ms <= {})",
            self.start_ms,
            EARLIEST_START_MS,
            self.days,
            LATEST_END_MS - i64::from(self.days) * pulse_schemas::DAY_MS
        );
        self.mix.validate().context("synth: invalid mix")?;
        if let Some(s) = self.shift {
            ensure!(
                s.session_factor.is_finite() && (0.0..=4.0).contains(&s.session_factor),
                "synth: shift session_factor = {} must be in [0, 4]",
                s.session_factor
            );
            ensure!(self.world == WorldKind::Classic, "synth: a shift is only simulated in the classic world");
            // A shift from day 0 has no before to drift from; one from day
            // `days` on would change nothing: the capture ends before it.
            ensure!(
                s.from_day > 0,
                "synth: shift from day 0 leaves no day before it: a drift needs days to drift from{}",
                if self.days >= 2 { format!(" (use 1 to {})", self.days - 1) } else { " (and 2 days or more)".into() }
            );
            ensure!(
                s.from_day < self.days,
                "synth: shift from day {} is past the last day ({}): the capture would have no shift",
                s.from_day,
                self.days.saturating_sub(1)
            );
        }
        self.hostility.validate().context("synth: invalid hostility")?;
        let name = &self.table_name;
        ensure!(
            (3..=255).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
            "synth: table_name {name:?} must be 3 to 255 characters of [A-Za-z0-9_.-]"
        );
        Ok(())
    }
}

/// How large the records are: what an event item carries besides the
/// contract's attributes (§1: extra attributes are ignored, so the features
/// are the same under every profile; only the bytes to read differ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordProfile {
    /// Only the contract's attributes (records of about 710 to 810 bytes).
    /// The default, byte for byte what the generator always wrote.
    #[default]
    Compact,
    /// Event items also carry what a production table adds: the client
    /// (`source`, `app_version`, `locale`), tracing ids (`request_id`,
    /// `trace_id`), `ingested_at`, `schema_version`, a `client` map (device,
    /// OS, country, user agent) and a `tags` list, so a record is about 850
    /// to 1,000 bytes (twice that for a correction's two images). The values
    /// derive from `(seed, customer, event)`: a duplicate or a correction's
    /// old image carries the same ones as the original item.
    Realistic,
}

impl RecordProfile {
    /// The name used on the command line: `compact` or `realistic`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordProfile::Compact => "compact",
            RecordProfile::Realistic => "realistic",
        }
    }
}

impl FromStr for RecordProfile {
    type Err = anyhow::Error;

    /// `compact` or `realistic`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "compact" => Ok(RecordProfile::Compact),
            "realistic" => Ok(RecordProfile::Realistic),
            other => bail!("record profile {other:?}: expected compact or realistic"),
        }
    }
}

impl fmt::Display for RecordProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the synthetic customers behave. The stream machinery (record shape,
/// ingest delays, [`Hostility`]) is the same in every world; only what the
/// customers do differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorldKind {
    /// Every customer exists from the first day in one of four segments
    /// (§7), moves between segments by a daily Markov chain and drifts toward
    /// its segment's behaviour.
    #[default]
    Classic,
    /// Customers sign up over the whole run (a cohort a day, more at term
    /// start) and go through onboarding; a customer's sessions fall on its own
    /// weekly slots, shaped by a school calendar (term-start surge, a
    /// 10-day spring break, summer) and by how well it matches its tutor;
    /// churn is a hazard raised, with a lag, by bad experiences (tutor
    /// cancellations, no-shows, low ratings, failed payments, negative support
    /// calls), some leaving at once and others fading over weeks; some come
    /// back. The segment of a customer is read from its latent state (expected
    /// sessions per week and risk of leaving). The [`SegmentMix`] is the mix
    /// of *intents* customers enter with: on the first day for customers
    /// already there, at signup for the others (a `churned` intent at signup
    /// is a customer who never books a first session).
    Lifecycle,
}

impl WorldKind {
    /// The name used on the command line: `classic` or `lifecycle`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorldKind::Classic => "classic",
            WorldKind::Lifecycle => "lifecycle",
        }
    }
}

impl FromStr for WorldKind {
    type Err = anyhow::Error;

    /// `classic` or `lifecycle`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "classic" => Ok(WorldKind::Classic),
            "lifecycle" => Ok(WorldKind::Lifecycle),
            other => bail!("world {other:?}: expected classic or lifecycle"),
        }
    }
}

impl fmt::Display for WorldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The share of customers in each segment on the first day (§7).
///
/// Each share lies in `[0, 1]` and the four sum to 1 (within `1e-6`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegmentMix {
    /// Share of `thriving` customers.
    pub thriving: f64,
    /// Share of `healthy` customers.
    pub healthy: f64,
    /// Share of `at_risk` customers.
    pub at_risk: f64,
    /// Share of `churned` customers.
    pub churned: f64,
}

impl Default for SegmentMix {
    /// The §7 mix: thriving .30, healthy .40, at_risk .20, churned .10.
    fn default() -> Self {
        SegmentMix { thriving: 0.30, healthy: 0.40, at_risk: 0.20, churned: 0.10 }
    }
}

impl SegmentMix {
    /// A validated mix.
    pub fn new(thriving: f64, healthy: f64, at_risk: f64, churned: f64) -> anyhow::Result<Self> {
        let mix = SegmentMix { thriving, healthy, at_risk, churned };
        mix.validate()?;
        Ok(mix)
    }

    /// The shares in segment order (thriving, healthy, at_risk, churned).
    pub fn shares(&self) -> [f64; 4] {
        [self.thriving, self.healthy, self.at_risk, self.churned]
    }

    /// Checks that each share is in `[0, 1]` and that they sum to 1.
    pub fn validate(&self) -> anyhow::Result<()> {
        let names = ["thriving", "healthy", "at_risk", "churned"];
        for (name, share) in names.iter().zip(self.shares()) {
            ensure!(
                share.is_finite() && (0.0..=1.0).contains(&share),
                "segment mix: {name} = {share} is outside [0, 1]"
            );
        }
        // Rounded so that the message reads 1.1, not 1.0999999999999999.
        let sum = (self.shares().iter().sum::<f64>() * 1e9).round() / 1e9;
        ensure!((sum - 1.0).abs() <= 1e-6, "segment mix: the shares sum to {sum}, they must sum to 1");
        Ok(())
    }
}

impl FromStr for SegmentMix {
    type Err = anyhow::Error;

    /// Parses `0.3,0.4,0.2,0.1` (segment order) or
    /// `thriving=0.3,healthy=0.4,at_risk=0.2,churned=0.1` (any order, all four).
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        ensure!(parts.len() == 4, "segment mix {s:?}: expected four comma-separated shares");
        let mut shares = [f64::NAN; 4];
        for (i, part) in parts.iter().enumerate() {
            let (slot, value) = match part.split_once('=') {
                Some((name, value)) => {
                    let slot = match name.trim() {
                        "thriving" => 0,
                        "healthy" => 1,
                        "at_risk" | "at-risk" => 2,
                        "churned" => 3,
                        other => bail!("segment mix {s:?}: unknown segment {other:?}"),
                    };
                    (slot, value.trim())
                }
                None => (i, *part),
            };
            ensure!(shares[slot].is_nan(), "segment mix {s:?}: a segment is given twice");
            shares[slot] = value.parse().with_context(|| format!("segment mix {s:?}: {value:?} is not a number"))?;
        }
        SegmentMix::new(shares[0], shares[1], shares[2], shares[3])
    }
}

/// Rates of the imperfections added to the stream. Each is a probability in
/// `[0, 1]`; all but `non_event_rate` apply per generated event.
///
/// The three presets: [`Hostility::none`] (a perfect stream, handy for golden
/// tests), [`Hostility::realistic`] (the default: what a healthy production
/// stream looks like) and [`Hostility::hostile`] (every kind of trouble of §2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hostility {
    /// An event delivered again in a new record (same image, same `event_id`),
    /// seconds to minutes after the first.
    pub duplicate_rate: f64,
    /// An event that reaches the stream minutes to hours after its `ts`
    /// (others arrive after milliseconds to seconds), so arrival is out of `ts` order.
    pub delayed_rate: f64,
    /// A correction: a `MODIFY` of the event minutes to days later (a changed
    /// rating, duration, amount, status, sentiment or `ts`).
    pub correction_rate: f64,
    /// A retraction: a user `REMOVE` of the event minutes to days later.
    pub retraction_rate: f64,
    /// A TTL expiry: a service `REMOVE` of an event some 90 to 120 days old.
    pub ttl_remove_rate: f64,
    /// A late record: an `INSERT` or `REMOVE` of an event more than 30 days
    /// older than the customer's clock.
    pub late_rate: f64,
    /// A future event: an `INSERT` whose `ts` is more than an hour after the
    /// record's creation time.
    pub future_rate: f64,
    /// An invalid item: an event image breaking a rule of §1 (missing or
    /// mistyped attribute, value out of range or not allowed, bad `event_id`,
    /// fractional `ts`, unknown `event_type`).
    pub invalid_rate: f64,
    /// Per customer-day: a write of a non-event item (the pipeline's own
    /// `PRED#latest` prediction, a `PROFILE` item).
    pub non_event_rate: f64,
}

impl Default for Hostility {
    fn default() -> Self {
        Hostility::realistic()
    }
}

impl Hostility {
    /// A perfect stream: no duplicates, every event arrives within seconds.
    pub fn none() -> Self {
        Hostility {
            duplicate_rate: 0.0,
            delayed_rate: 0.0,
            correction_rate: 0.0,
            retraction_rate: 0.0,
            ttl_remove_rate: 0.0,
            late_rate: 0.0,
            future_rate: 0.0,
            invalid_rate: 0.0,
            non_event_rate: 0.0,
        }
    }

    /// A healthy production stream: 0.5% duplicate redeliveries and 2% of
    /// events arriving minutes to hours late; nothing invalid.
    pub fn realistic() -> Self {
        Hostility { duplicate_rate: 0.005, delayed_rate: 0.02, ..Hostility::none() }
    }

    /// Everything §2 warns about, at rates high enough to show in a small run.
    pub fn hostile() -> Self {
        Hostility {
            duplicate_rate: 0.02,
            delayed_rate: 0.05,
            correction_rate: 0.01,
            retraction_rate: 0.005,
            ttl_remove_rate: 0.005,
            late_rate: 0.004,
            future_rate: 0.003,
            invalid_rate: 0.006,
            non_event_rate: 0.03,
        }
    }

    fn rates(&self) -> [(&'static str, f64); 9] {
        [
            ("duplicate_rate", self.duplicate_rate),
            ("delayed_rate", self.delayed_rate),
            ("correction_rate", self.correction_rate),
            ("retraction_rate", self.retraction_rate),
            ("ttl_remove_rate", self.ttl_remove_rate),
            ("late_rate", self.late_rate),
            ("future_rate", self.future_rate),
            ("invalid_rate", self.invalid_rate),
            ("non_event_rate", self.non_event_rate),
        ]
    }

    /// Checks that every rate is a probability.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, rate) in self.rates() {
            ensure!(rate.is_finite() && (0.0..=1.0).contains(&rate), "hostility: {name} = {rate} is outside [0, 1]");
        }
        ensure!(
            self.correction_rate + self.retraction_rate <= 1.0,
            "hostility: correction_rate + retraction_rate must not exceed 1"
        );
        Ok(())
    }
}

impl FromStr for Hostility {
    type Err = anyhow::Error;

    /// `none`, `realistic` or `hostile`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "none" => Ok(Hostility::none()),
            "realistic" => Ok(Hostility::realistic()),
            "hostile" => Ok(Hostility::hostile()),
            other => bail!("hostility {other:?}: expected none, realistic or hostile"),
        }
    }
}

impl fmt::Display for SegmentMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thriving={},healthy={},at_risk={},churned={}",
            self.thriving, self.healthy, self.at_risk, self.churned
        )
    }
}
