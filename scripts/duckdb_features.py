"""Eight of the 46 features of FEATURES.md §4 over a capture, the way a data
scientist would compute them with DuckDB's point-in-time window SQL.

    python scripts/duckdb_features.py CAPTURE [THREADS]     # THREADS defaults to 2

For every INSERT of an event item (NewImage, entity_type = event), as of its
own ts, per customer, over RANGE windows of 7, 14 and 30 days:

    sessions_7d, sessions_14d, sessions_30d       (features 1, 2, 3)
    session_minutes_7d, session_minutes_30d       (features 5, 6)
    avg_rating_30d                                (feature 16)
    logins_7d                                     (feature 20)
    payment_failures_30d                          (feature 25)

None of the contract's stream rules: duplicates count twice, MODIFY and
REMOVE are ignored, late and future events and invalid items are not told
apart (a value that is not a number is NULL), no timers. RANGE ... PRECEDING
includes the row exactly N days back, where the contract's W_N excludes it.
The rows are reduced to one line of sums (so every window is computed) and
otherwise discarded. Run by scripts/duckdb-compare.sh against pulse replay.
"""

import sys
import time

import duckdb

COLUMNS = {
    "eventName": "VARCHAR",
    "dynamodb": "STRUCT(NewImage STRUCT("
    "customer_id STRUCT(S VARCHAR), entity_type STRUCT(S VARCHAR), event_type STRUCT(S VARCHAR), "
    "ts STRUCT(N VARCHAR), duration_min STRUCT(N VARCHAR), rating STRUCT(N VARCHAR), status STRUCT(S VARCHAR)))",
}

QUERY = """
WITH events AS (
    SELECT
        dynamodb.NewImage.customer_id.S AS customer_id,
        dynamodb.NewImage.event_type.S AS event_type,
        epoch_ms(TRY_CAST(dynamodb.NewImage.ts.N AS BIGINT)) AS t,
        nullif(TRY_CAST(dynamodb.NewImage.duration_min.N AS DOUBLE), 'NaN') AS duration_min,
        nullif(TRY_CAST(dynamodb.NewImage.rating.N AS DOUBLE), 'NaN') AS rating,
        dynamodb.NewImage.status.S AS status
    FROM read_json($capture, format = 'newline_delimited', columns = $columns)
    WHERE eventName = 'INSERT'
      AND dynamodb.NewImage.entity_type.S = 'event'
      AND TRY_CAST(dynamodb.NewImage.ts.N AS BIGINT) IS NOT NULL
),
features AS (
    SELECT
        customer_id,
        t,
        count(*) FILTER (WHERE event_type = 'session_completed') OVER w7 AS sessions_7d,
        count(*) FILTER (WHERE event_type = 'session_completed') OVER w14 AS sessions_14d,
        count(*) FILTER (WHERE event_type = 'session_completed') OVER w30 AS sessions_30d,
        coalesce(sum(duration_min) FILTER (WHERE event_type = 'session_completed') OVER w7, 0) AS session_minutes_7d,
        coalesce(sum(duration_min) FILTER (WHERE event_type = 'session_completed') OVER w30, 0) AS session_minutes_30d,
        coalesce(avg(rating) FILTER (WHERE event_type = 'session_rated') OVER w30, 0) AS avg_rating_30d,
        count(*) FILTER (WHERE event_type = 'login') OVER w7 AS logins_7d,
        count(*) FILTER (WHERE event_type = 'payment' AND status = 'failed') OVER w30 AS payment_failures_30d
    FROM events
    WINDOW
        w7 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW),
        w14 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN INTERVAL 14 DAYS PRECEDING AND CURRENT ROW),
        w30 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW)
)
SELECT count(*), sum(sessions_7d), sum(sessions_14d), sum(sessions_30d), sum(session_minutes_7d),
       sum(session_minutes_30d), sum(avg_rating_30d), sum(logins_7d), sum(payment_failures_30d)
FROM features
"""


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: duckdb_features.py CAPTURE [THREADS]")
    capture = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) == 3 else 2
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    row = con.execute(QUERY, {"capture": capture, "columns": COLUMNS}).fetchone()
    seconds = time.perf_counter() - started
    print(f"duckdb {duckdb.__version__}: {row[0]} vectors of 8 features in {seconds:.3f} s ({threads} threads); sums {row[1:]}")


if __name__ == "__main__":
    main()
